"""The screening instruments as FHIR Questionnaires, pure: each validates as FHIR (``fhir.resources``,
R4B), asks exactly the items and answers the scoring rules know, is the one intake's
QuestionnaireResponses name, and a response filled in from it is read and scored."""

import re
import uuid
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.errors import Invalid
from careloop_shared.fhir import LOINC
from intake.domain.scoring import ChoiceItem, ScoreItem, score
from intake.fhir import assessments, questionnaires
from intake.fhir.imports import imported_answers
from intake.fhir.schemas import QuestionnaireResponseIn

PATIENT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
BASE = "http://intake/fhir/R4"
FHIR_NAME = re.compile(r"^[A-Z]([A-Za-z0-9_]){0,254}$")  # what FHIR's que-0 asks of a name


def served(rules, instrument: str) -> dict:
    made = questionnaires.questionnaire(rules, instrument)
    assert made is not None, instrument
    get_fhir_model_class("Questionnaire").model_validate(made)
    return made


def answerable(questionnaire: dict) -> list[dict]:
    return [i for i in questionnaire["item"] if i["type"] != "display" and not i.get("readOnly")]


def filled_in(questionnaire: dict, reference: str) -> tuple[QuestionnaireResponseIn, dict]:
    """A response answering every item from its options (a multiple choice: its first two that are not
    exclusive), naming the Questionnaire by ``reference``; and the answers it gives, by item."""
    items, given = [], {}
    for item in answerable(questionnaire):
        options = [o for o in item["answerOption"] if "extension" not in o]
        chosen = options[:2] if item.get("repeats") else options[-1:]
        answers = [{k: v for k, v in o.items() if k.startswith("value")} for o in chosen]
        items.append({"linkId": item["linkId"], "answer": answers})
        values = [a.get("valueInteger", a.get("valueCoding", {}).get("code")) for a in answers]
        given[item["linkId"]] = values if item.get("repeats") else values[0]
    body = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": reference,
        "status": "completed",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "item": items,
    }
    get_fhir_model_class("QuestionnaireResponse").model_validate(body)
    return QuestionnaireResponseIn.model_validate(body), given


def test_every_instrument_is_an_active_questionnaire_at_its_canonical_url_and_rules_version(ctx):
    for instrument, spec in ctx.rules.instruments.items():
        made = served(ctx.rules, instrument)
        assert (made["id"], made["url"]) == (instrument, questionnaires.canonical_url(instrument))
        assert (made["version"], made["status"], made["title"]) == (ctx.rules.version, "active", spec.title)
        assert made["code"] == [{"system": LOINC, "code": spec.panel}]
        assert FHIR_NAME.match(made["name"]), made["name"]
    assert questionnaires.questionnaire(ctx.rules, "no-such-instrument") is None
    assert FHIR_NAME.match(questionnaires.machine_name("9-item"))


def test_the_items_are_the_scored_items_with_the_answers_the_rules_know_then_the_totals(ctx):
    for instrument, spec in ctx.rules.instruments.items():
        made = served(ctx.rules, instrument)
        wording = spec.wording["en"]
        asked = answerable(made)
        assert [i["linkId"] for i in asked] == list(spec.items)
        for item in asked:
            rule = spec.items[item["linkId"]]
            assert item["code"] == [{"system": LOINC, "code": item["linkId"]}] and item["required"]
            assert item["text"] == wording.items[item["linkId"]]
            options = item["answerOption"]
            if isinstance(rule, ScoreItem):
                assert item["type"] == "integer"
                assert [o["valueInteger"] for o in options] == list(range(rule.min, rule.max + 1))
                continue
            assert isinstance(rule, ChoiceItem) and item["type"] == "choice"
            assert item.get("repeats", False) == rule.multiple
            assert [o["valueCoding"]["code"] for o in options] == list(rule.answers)
            assert {o["valueCoding"]["system"] for o in options} == {LOINC}
            assert [o["valueCoding"]["display"] for o in options] == [
                wording.answers[a] for a in rule.answers
            ]
            flagged = [o["valueCoding"]["code"] for o in options if o.get("extension")]
            assert flagged == [a for a in rule.answers if a in rule.exclusive]
        totals = [i for i in made["item"] if i.get("readOnly")]
        assert [(t["linkId"], t["type"]) for t in totals] == [(t.code, "integer") for t in spec.totals]
        [lead] = [i for i in made["item"] if i["type"] == "display"]
        assert made["item"][0] == lead and lead["text"] == wording.prompt


def assessment_row(rules, instrument: str, answers: dict) -> dict:
    """An assessment as intake stores it, scored from ``answers``."""
    scored = score(rules, instrument, answers)
    return {
        "id": uuid.uuid4(),
        "patient_id": PATIENT_ID,
        "instrument": instrument,
        "rules_version": scored.rules_version,
        "observations": scored.observations,
        "needs": scored.needs,
        "assessed_at": datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    }


def test_the_questionnaire_a_served_response_names_is_found_by_url_and_its_answers_fit_it(ctx):
    for instrument in ctx.rules.instruments:
        _, answers = filled_in(served(ctx.rules, instrument), questionnaires.canonical_url(instrument))
        response = assessments.questionnaire_response(
            assessment_row(ctx.rules, instrument, answers), ctx.rules
        )
        [made] = questionnaires.found(ctx.rules, url=response["questionnaire"])
        assert made == served(ctx.rules, instrument)
        assert response["questionnaire"] == f"{made['url']}|{made['version']}"
        items = {i["linkId"]: i for i in made["item"]}
        for answered in response["item"]:
            item = items[answered["linkId"]]
            if item.get("readOnly"):
                continue  # a total intake computed
            offered = [{k: v for k, v in o.items() if k.startswith("value")} for o in item["answerOption"]]
            assert all(a in offered for a in answered["answer"]), answered["linkId"]


def test_a_response_filled_in_from_a_served_questionnaire_is_read_and_scored(ctx):
    for instrument in ctx.rules.instruments:
        made = served(ctx.rules, instrument)
        references = (
            f"{made['url']}|{made['version']}",
            made["url"],
            f"Questionnaire/{made['id']}",
            f"{BASE}/Questionnaire/{made['id']}",
        )
        for reference in references:
            body, given = filled_in(made, reference)
            assert imported_answers(body, ctx.rules, BASE) == (instrument, given), reference
            assert score(ctx.rules, instrument, given).rules_version == made["version"]


def test_a_response_naming_another_servers_or_an_unknown_questionnaire_is_refused(ctx):
    made = served(ctx.rules, "phq-9")
    for reference in (
        "http://elsewhere.example/fhir/R4/Questionnaire/phq-9",
        "urn:careloop:questionnaire:gad-7",
        "Questionnaire/gad-7",
        "phq-9",
    ):
        body, _ = filled_in(made, reference)
        with pytest.raises(Invalid) as refused:
            imported_answers(body, ctx.rules, BASE)
        assert [p["loc"] for p in refused.value.problems] == [["body", "questionnaire"]], reference
    body, _ = filled_in(made, f"{BASE}/Questionnaire/phq-9")
    with pytest.raises(Invalid):  # an address is only this server's when the server's base is known
        imported_answers(body, ctx.rules)


def test_a_search_finds_by_url_with_or_without_its_version_and_by_the_start_of_a_name(ctx):
    everything = questionnaires.found(ctx.rules)
    assert [q["id"] for q in everything] == list(ctx.rules.instruments)
    for made in everything:
        assert questionnaires.found(ctx.rules, url=made["url"]) == [made]
        assert questionnaires.found(ctx.rules, url=f"{made['url']}|{made['version']}") == [made]
        assert questionnaires.found(ctx.rules, url=f"{made['url']}|another-version") == []
        by_name = questionnaires.found(ctx.rules, name=made["name"][:3].lower())
        assert made in by_name and all(q["name"].startswith(made["name"][:3]) for q in by_name)
        assert questionnaires.found(ctx.rules, url=made["url"], name=made["name"]) == [made]
    assert questionnaires.found(ctx.rules, name="no-such-name") == []
    assert questionnaires.found(ctx.rules, url="http://example.org/Questionnaire/phq-9") == []
