"""Instruments as forms, built from the rules that score them."""

from careloop_shared.rules import load_rules
from intake.domain.questionnaires import questionnaire
from intake.domain.scoring import RULES_FILE, ScreeningRules, score

RULES = load_rules(ScreeningRules, RULES_FILE)


def test_every_instrument_is_worded_in_english_with_every_item_and_answer():
    for name in RULES.instruments:
        asked = questionnaire(RULES, name, "en")
        assert asked is not None and asked["language"] == "en" and asked["prompt"]
        assert [i["code"] for i in asked["items"]] == list(RULES.instruments[name].items)
        for item in asked["items"]:
            assert item["text"] != item["code"] and item["options"]
            assert all(o["label"] != str(o["value"]) or item["type"] == "score" for o in item["options"])


def test_the_phq9_form_offers_the_four_frequencies_and_item_9_asks_about_self_harm():
    asked = questionnaire(RULES, "phq-9", "en")
    item_9 = next(i for i in asked["items"] if i["code"] == "44260-8")
    assert "hurting yourself" in item_9["text"]
    assert [o["label"] for o in item_9["options"]] == [
        "Not at all",
        "Several days",
        "More than half the days",
        "Nearly every day",
    ]


def test_answers_chosen_from_the_form_are_answers_the_scoring_accepts():
    for name in RULES.instruments:
        asked = questionnaire(RULES, name, "en")
        answers = {
            i["code"]: ([i["options"][-1]["value"]] if i["multiple"] else i["options"][0]["value"])
            for i in asked["items"]
        }
        assert score(RULES, name, answers).instrument == name


def test_an_instrument_not_written_in_the_language_is_asked_in_english_and_an_unknown_one_is_none():
    assert questionnaire(RULES, "ahc-hrsn", "vi")["language"] == "en"
    assert questionnaire(RULES, "no-such-instrument", "en") is None


def test_the_openapi_document_names_the_instruments_and_reasons_the_loaded_rules_know():
    from intake.main import build_app

    schemas = build_app().openapi()["components"]["schemas"]
    assert schemas["AssessmentIn"]["properties"]["instrument"]["enum"] == ["ahc-hrsn", "phq-2", "phq-9"]
    reason = schemas["ReassignmentIn"]["properties"]["reason"]["anyOf"][0]
    assert {"caseload-balance", "staff-leave"} <= set(reason["enum"])
    assert schemas["PatientIn"]["allOf"][0]["then"]["required"] == ["phone"]
