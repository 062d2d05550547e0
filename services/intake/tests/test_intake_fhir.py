"""intake's FHIR mappers and the reading of an imported QuestionnaireResponse, pure: every resource
validates as FHIR (``fhir.resources``, R4B: the nearest to R4 it ships), codes come from the instrument
definitions, references resolve among what one assessment makes."""

import uuid
from datetime import UTC, date, datetime

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.errors import Invalid
from careloop_shared.fhir import LOINC, SDOH_CATEGORY, SNOMED
from intake.domain.scoring import ChoiceItem, score
from intake.fhir import assessments, resources
from intake.fhir.codes import fhir_codes
from intake.fhir.imports import imported_answers
from intake.fhir.schemas import QuestionnaireResponseIn

CODES = fhir_codes()
PATIENT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HRSN_ALL_NEEDS = {
    "71802-3": "LA31995-6",
    "96778-6": ["LA31996-4", "LA28580-1"],
    "88122-7": "LA28397-0",
    "88123-5": "LA28398-8",
    "93030-5": "LA33-6",
    "96779-4": "LA32002-0",
    "95618-5": "LA6482-9",
    "95617-7": "LA6482-9",
    "95616-9": "LA16644-9",
    "95615-1": "LA6270-8",
}
PATIENT_ROW = {
    "id": PATIENT_ID,
    "given_name": "Marisol",
    "family_name": "Etxeberria",
    "birth_date": date(1958, 3, 14),
    "preferred_language": "es",
    "contact_preference": "text",
    "phone": "+1 555 0100",
    "email": None,
    "postal_code": "94110",
    "care_manager_id": "cm-ana",
}


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def assessment_row(rules, instrument: str, answers: dict) -> dict:
    scored = score(rules, instrument, answers)
    return {
        "id": uuid.uuid4(),
        "patient_id": PATIENT_ID,
        "instrument": instrument,
        "rules_version": scored.rules_version,
        "observations": scored.observations,
        "needs": scored.needs,
        "assessed_at": AT,
        "assessed_by": "cm-ana",
    }


def every_instrument(rules) -> list[tuple[str, dict]]:
    """Each instrument answered at its highest points (a need and a total band for each)."""
    answered = []
    for name, spec in rules.instruments.items():
        answers = (
            HRSN_ALL_NEEDS
            if name == "ahc-hrsn"
            else {code: item.max for code, item in spec.items.items() if not isinstance(item, ChoiceItem)}
        )
        answered.append((name, answers))
    return answered


def made_of(rules, row) -> list[dict]:
    return [
        assessments.questionnaire_response(row, rules),
        *assessments.observations(row, rules, CODES),
        *assessments.conditions(row, rules, CODES),
    ]


def test_every_resource_made_of_every_instrument_validates_as_fhir(ctx):
    for instrument, answers in every_instrument(ctx.rules):
        row = assessment_row(ctx.rules, instrument, answers)
        made = [valid(r) for r in made_of(ctx.rules, row)]
        assert {r["resourceType"] for r in made} == {"QuestionnaireResponse", "Observation", "Condition"}
        assert all(len(r["id"]) <= 64 for r in made), instrument


def test_items_and_observations_carry_the_loinc_codes_of_the_instrument_definition(ctx):
    for instrument, answers in every_instrument(ctx.rules):
        spec = ctx.rules.instruments[instrument]
        row = assessment_row(ctx.rules, instrument, answers)
        qr = assessments.questionnaire_response(row, ctx.rules)
        totals = [t.code for t in spec.totals]
        assert [i["linkId"] for i in qr["item"]] == [*spec.items, *totals]
        observed = assessments.observations(row, ctx.rules, CODES)
        codes = {c["system"]: c["code"] for o in observed for c in o["code"]["coding"]}
        assert set(codes) == {LOINC}
        assert {c["code"] for o in observed for c in o["code"]["coding"]} == {*spec.items, *totals}
        for o in observed:  # a choice's answer is the LOINC answer code the rules know for that item
            item = spec.items.get(o["code"]["coding"][0]["code"])
            if isinstance(item, ChoiceItem):
                [answer] = o["valueCodeableConcept"]["coding"]
                assert answer["system"] == LOINC and answer["code"] in item.answers


def test_observations_are_filed_under_the_gravity_category_of_the_need_they_screen_for(ctx):
    row = assessment_row(ctx.rules, "ahc-hrsn", HRSN_ALL_NEEDS)
    by_code: dict[str, set[str]] = {}
    for o in assessments.observations(row, ctx.rules, CODES):
        sdoh = {c["coding"][0]["code"] for c in o["category"] if c["coding"][0]["system"] == SDOH_CATEGORY}
        by_code.setdefault(o["code"]["coding"][0]["code"], set()).update(sdoh)
    assert by_code["88122-7"] == {"food-insecurity"}
    assert by_code["71802-3"] == {"housing-instability"}
    assert by_code["95614-4"] == by_code["95618-5"] == {"intimate-partner-violence"}
    phq = assessment_row(ctx.rules, "phq-9", dict.fromkeys(ctx.rules.instruments["phq-9"].items, 3))
    for o in assessments.observations(phq, ctx.rules, CODES):  # depression: no Gravity category
        assert [c["coding"][0]["code"] for c in o["category"]] == ["survey"]


def coded_as_the_codes_file_says(need: str) -> list[dict]:
    """The SNOMED CT coding the codes file gives a need, or none: a need without one is text only."""
    words = CODES.needs.get(need)
    snomed = words.snomed if words else None
    return [{"system": SNOMED, "code": snomed.code, "display": snomed.display}] if snomed else []


def conditions_by_need(rules, row) -> dict[str, dict]:
    return {c["id"].removeprefix(f"{row['id']}-"): c for c in assessments.conditions(row, rules, CODES)}


def test_needs_are_sdoh_health_concerns_coded_only_where_the_codes_file_gives_a_code(ctx):
    row = assessment_row(ctx.rules, "ahc-hrsn", HRSN_ALL_NEEDS)
    found = conditions_by_need(ctx.rules, row)
    assert set(found) == {n["code"] for n in row["needs"]}
    for need, condition in found.items():
        assert condition["code"].get("coding", []) == coded_as_the_codes_file_says(need), need
        assert condition["code"]["text"] == CODES.need_text(need)
        categories = [c["coding"][0] for c in condition["category"]]
        assert categories[0]["code"] == "health-concern"
        assert categories[1] == {"system": SDOH_CATEGORY, "code": condition["id"][37:]}
        assert condition["verificationStatus"]["coding"][0]["code"] == "unconfirmed"
    # The HRSN identifies a need the codes file codes, and one it leaves as text.
    assert any(coded_as_the_codes_file_says(n) for n in found)
    assert not all(coded_as_the_codes_file_says(n) for n in found)


def test_every_need_the_codes_file_codes_is_a_gravity_category_with_its_source(ctx):
    coded = {need: words.snomed for need, words in CODES.needs.items() if words.snomed}
    assert coded and set(coded) <= CODES.sdoh_categories  # Gravity value sets are per SDOH category
    assert all("SDOH Clinical Care IG" in s.source or "domain.md" in s.source for s in coded.values())
    every_need = [{"code": need} for need in CODES.needs]  # as if one assessment identified them all
    row = {**assessment_row(ctx.rules, "phq-2", {"44250-9": 0, "44255-8": 0}), "needs": every_need}
    found = conditions_by_need(ctx.rules, row)
    for need in CODES.needs:
        valid(found[need])
        assert found[need]["code"].get("coding", []) == coded_as_the_codes_file_says(need), need


def test_every_reference_of_an_assessment_resolves_among_the_resources_made_of_it(ctx):
    for instrument, answers in every_instrument(ctx.rules):
        row = assessment_row(ctx.rules, instrument, answers)
        made = made_of(ctx.rules, row)
        known = {f"{r['resourceType']}/{r['id']}" for r in made} | {f"Patient/{PATIENT_ID}"}
        for r in made:
            refs = [r.get("subject"), *r.get("derivedFrom", []), *r.get("hasMember", [])]
            refs += [d for e in r.get("evidence", []) for d in e["detail"]]
            assert {x["reference"] for x in refs if x} <= known, r["id"]


def test_a_patient_shows_identifying_details_only_when_asked_to():
    full = valid(resources.patient(PATIENT_ROW, identifying=True))
    assert (full["name"][0]["family"], full["birthDate"]) == ("Etxeberria", "1958-03-14")
    assert {"system": "sms", "value": "+1 555 0100", "rank": 1} in full["telecom"]
    assert valid(resources.patient(PATIENT_ROW, identifying=False)) == {
        "resourceType": "Patient",
        "id": str(PATIENT_ID),
    }


def test_a_consent_is_shown_as_recorded_and_a_revoked_one_is_inactive():
    row = {
        "id": uuid.uuid4(),
        "patient_id": PATIENT_ID,
        "purpose": "referral",
        "agencies": ["agency-b"],
        "program_categories": ["food"],
        "period_start": AT,
        "period_end": None,
        "status": "active",
        "recorded_at": AT,
    }
    consent = valid(resources.consent(row, "agency-a"))
    assert consent["status"] == "active" and consent["provision"]["type"] == "permit"
    assert [a["reference"]["identifier"]["value"] for a in consent["provision"]["actor"]] == [
        "agency-b",
        "food",
    ]
    assert valid(resources.consent({**row, "status": "revoked"}, "agency-a"))["status"] == "inactive"


def qr_body(qr: dict) -> QuestionnaireResponseIn:
    body = {k: v for k, v in qr.items() if k not in ("author",)}
    return QuestionnaireResponseIn.model_validate(body)


def test_a_questionnaire_response_intake_serves_imports_back_to_the_same_answers(ctx):
    for instrument, answers in every_instrument(ctx.rules):
        row = assessment_row(ctx.rules, instrument, answers)
        qr = assessments.questionnaire_response(row, ctx.rules)
        assert imported_answers(qr_body(qr), ctx.rules) == (instrument, answers)


def test_an_import_that_does_not_fit_names_where_never_the_value(ctx):
    row = assessment_row(ctx.rules, "phq-2", {"44250-9": 1, "44255-8": 2})
    qr = assessments.questionnaire_response(row, ctx.rules)
    qr["item"][0]["answer"] = [{"valueInteger": 7}]
    with pytest.raises(Invalid) as refused:
        imported_answers(qr_body(qr), ctx.rules)
    assert refused.value.problems == [
        {"loc": ["body", "item", 0], "type": "invalid_answer", "msg": "44250-9: must be between 0 and 3"}
    ]
    with pytest.raises(Invalid) as unknown:
        imported_answers(qr_body({**qr, "questionnaire": "http://example.org/Questionnaire/x"}), ctx.rules)
    assert unknown.value.problems[0]["loc"] == ["body", "questionnaire"]
