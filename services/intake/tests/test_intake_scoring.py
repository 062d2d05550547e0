"""Scoring tables: every band of every instrument, every HRSN domain, and the edges."""

import pytest

from careloop_shared.rules import load_rules
from intake.domain.scoring import RULES_FILE, InvalidAnswers, ScreeningRules, score

RULES = load_rules(ScreeningRules, RULES_FILE)
PHQ9_ITEMS = list(RULES.instruments["phq-9"].items)
ITEM_9 = "44260-8"


def phq9(total: int, item9: int = 0) -> dict[str, int]:
    """PHQ-9 answers adding up to ``total`` with item 9 set as given."""
    answers = dict.fromkeys(PHQ9_ITEMS, 0)
    answers[ITEM_9] = item9
    remaining = total - item9
    for item in PHQ9_ITEMS[:-1]:
        answers[item] = min(3, remaining)
        remaining -= answers[item]
    assert remaining == 0 and sum(answers.values()) == total
    return answers


@pytest.mark.parametrize(
    ("total", "interpretation", "risk", "severity"),
    [
        (0, "minimal", "low", None),
        (4, "minimal", "low", None),
        (5, "mild", "low", "mild"),
        (9, "mild", "low", "mild"),
        (10, "moderate", "moderate", "moderate"),
        (14, "moderate", "moderate", "moderate"),
        (15, "moderately-severe", "high", "moderately-severe"),
        (19, "moderately-severe", "high", "moderately-severe"),
        (20, "severe", "high", "severe"),
        (24, "severe", "high", "severe"),
    ],
)
def test_phq9_bands(total, interpretation, risk, severity):
    result = score(RULES, "phq-9", phq9(total))
    assert (result.total, result.interpretation, result.risk_level) == (total, interpretation, risk)
    assert result.needs == ([{"code": "depression", "severity": severity}] if severity else [])
    assert result.urgent_flags == []
    assert {"code": "44261-6", "value": total, "interpretation": interpretation} in result.observations


def test_phq9_maximum_is_severe_and_urgent_because_item_9_is_positive():
    result = score(RULES, "phq-9", dict.fromkeys(PHQ9_ITEMS, 3))
    assert (result.total, result.interpretation, result.risk_level) == (27, "severe", "urgent")


def test_phq9_item_9_of_one_with_a_low_total_is_urgent_whatever_the_total():
    result = score(RULES, "phq-9", phq9(1, item9=1))
    assert (result.total, result.interpretation) == (1, "minimal")
    assert result.urgent_flags == ["suicidal-ideation"]
    assert result.risk_level == "urgent"


@pytest.mark.parametrize(
    ("answers", "interpretation", "risk", "needs", "recommended"),
    [
        ((0, 0), "negative", "low", [], []),
        ((1, 1), "negative", "low", [], []),
        ((2, 1), "positive", "moderate", [{"code": "depression", "severity": "positive-screen"}], ["phq-9"]),
        ((3, 3), "positive", "moderate", [{"code": "depression", "severity": "positive-screen"}], ["phq-9"]),
    ],
)
def test_phq2_total_of_three_or_more_asks_for_a_phq9(answers, interpretation, risk, needs, recommended):
    result = score(RULES, "phq-2", dict(zip(["44250-9", "44255-8"], answers, strict=True)))
    assert (result.interpretation, result.risk_level, result.needs) == (interpretation, risk, needs)
    assert result.recommended_instruments == recommended
    assert {"code": "55758-7", "value": sum(answers), "interpretation": interpretation} in result.observations


NEVER, RARELY, SOMETIMES, FAIRLY_OFTEN, FREQUENTLY = (
    "LA6270-8",
    "LA10066-1",
    "LA10082-8",
    "LA16644-9",
    "LA6482-9",
)
SAFETY_ITEMS = ["95618-5", "95617-7", "95616-9", "95615-1"]


def hrsn(**overrides: object) -> dict[str, object]:
    """An AHC HRSN answer set with no need at all, changed as given (item codes with _ for -)."""
    answers: dict[str, object] = {
        "71802-3": "LA31993-1",
        "96778-6": ["LA9-3"],
        "88122-7": "LA28398-8",
        "88123-5": "LA28398-8",
        "93030-5": "LA32-8",
        "96779-4": "LA32-8",
        **dict.fromkeys(SAFETY_ITEMS, NEVER),
    }
    answers.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return answers


def needs_of(answers: dict[str, object]) -> list[str]:
    return [n["code"] for n in score(RULES, "ahc-hrsn", answers).needs]


def test_hrsn_with_no_positive_answer_is_low_risk_without_needs():
    result = score(RULES, "ahc-hrsn", hrsn())
    assert (result.needs, result.risk_level, result.urgent_flags) == ([], "low", [])


@pytest.mark.parametrize(
    ("overrides", "need"),
    [
        ({"71802_3": "LA31994-9"}, "housing-instability"),
        ({"71802_3": "LA31995-6"}, "housing-instability"),
        ({"96778_6": ["LA28580-1"]}, "inadequate-housing"),
        ({"96778_6": ["LA31996-4", "LA32001-2"]}, "inadequate-housing"),
        ({"88122_7": "LA28397-0"}, "food-insecurity"),
        ({"88123_5": "LA6729-3"}, "food-insecurity"),
        ({"93030_5": "LA33-6"}, "transportation-insecurity"),
        ({"96779_4": "LA33-6"}, "utility-insecurity"),
        ({"96779_4": "LA32002-0"}, "utility-insecurity"),
    ],
)
def test_each_hrsn_domain_turns_a_positive_answer_into_its_need(overrides, need):
    assert needs_of(hrsn(**overrides)) == [need]


def test_one_need_is_moderate_three_are_high_and_no_steady_place_is_high():
    assert score(RULES, "ahc-hrsn", hrsn(**{"93030_5": "LA33-6"})).risk_level == "moderate"
    three = hrsn(**{"93030_5": "LA33-6", "96779_4": "LA33-6", "88122_7": "LA6729-3"})
    assert score(RULES, "ahc-hrsn", three).risk_level == "high"
    assert score(RULES, "ahc-hrsn", hrsn(**{"71802_3": "LA31995-6"})).risk_level == "high"
    assert score(RULES, "ahc-hrsn", hrsn(**{"71802_3": "LA31994-9"})).risk_level == "moderate"


@pytest.mark.parametrize(
    ("answers", "total", "positive"),
    [
        ([NEVER, NEVER, NEVER, NEVER], 4, False),
        ([SOMETIMES, SOMETIMES, RARELY, RARELY], 10, False),
        ([SOMETIMES, SOMETIMES, SOMETIMES, RARELY], 11, True),
        ([FREQUENTLY, FREQUENTLY, FREQUENTLY, FREQUENTLY], 20, True),
        ([FAIRLY_OFTEN, RARELY, RARELY, RARELY], 10, False),
    ],
)
def test_interpersonal_safety_is_positive_when_the_four_scores_sum_to_more_than_10(answers, total, positive):
    result = score(
        RULES,
        "ahc-hrsn",
        hrsn(**{i.replace("-", "_"): a for i, a in zip(SAFETY_ITEMS, answers, strict=True)}),
    )
    assert {"code": "95614-4", "value": total} in result.observations
    assert ("intimate-partner-violence" in [n["code"] for n in result.needs]) is positive
    # A positive interpersonal-safety screen is urgent: a safety check is due within the hour.
    assert (result.risk_level == "urgent") is positive
    assert (result.urgent_flags == ["interpersonal-safety"]) is positive


def test_hrsn_observations_carry_answer_codes_and_points():
    result = score(RULES, "ahc-hrsn", hrsn(**{"95618_5": FAIRLY_OFTEN}))
    assert {"code": "95618-5", "value": FAIRLY_OFTEN, "points": 4} in result.observations
    assert {"code": "71802-3", "value": "LA31993-1"} in result.observations


def test_result_names_the_rules_version():
    assert score(RULES, "phq-2", {"44250-9": 0, "44255-8": 0}).rules_version == RULES.version


@pytest.mark.parametrize(
    ("instrument", "answers", "problem"),
    [
        ("phq-7", {}, {"item": "instrument", "reason": "unknown instrument"}),
        ("phq-2", {"44250-9": 1}, {"item": "44255-8", "reason": "missing"}),
        (
            "phq-2",
            {"44250-9": 1, "44255-8": 1, "1-1": 0},
            {"item": "1-1", "reason": "not an item of this instrument"},
        ),
        ("phq-2", {"44250-9": 4, "44255-8": 1}, {"item": "44250-9", "reason": "must be between 0 and 3"}),
        ("phq-2", {"44250-9": -1, "44255-8": 1}, {"item": "44250-9", "reason": "must be between 0 and 3"}),
        ("phq-2", {"44250-9": "2", "44255-8": 1}, {"item": "44250-9", "reason": "must be an integer score"}),
        ("phq-2", {"44250-9": True, "44255-8": 1}, {"item": "44250-9", "reason": "must be an integer score"}),
        ("phq-2", {"44250-9": 1.5, "44255-8": 1}, {"item": "44250-9", "reason": "must be an integer score"}),
        (
            "ahc-hrsn",
            hrsn(**{"93030_5": "LA31993-1"}),
            {"item": "93030-5", "reason": "is not an answer code of this item"},
        ),
        ("ahc-hrsn", hrsn(**{"93030_5": 1}), {"item": "93030-5", "reason": "must be a LOINC answer code"}),
        (
            "ahc-hrsn",
            hrsn(**{"96778_6": []}),
            {"item": "96778-6", "reason": "must be a LOINC answer code or a non-empty list of them"},
        ),
        (
            "ahc-hrsn",
            hrsn(**{"96778_6": ["LA9-3", "LA28580-1"]}),
            {"item": "96778-6", "reason": "combines an exclusive answer with others"},
        ),
        (
            "ahc-hrsn",
            hrsn(**{"96778_6": ["LA28580-1", "LA28580-1"]}),
            {"item": "96778-6", "reason": "lists an answer twice"},
        ),
    ],
)
def test_bad_answers_name_the_item_and_reason(instrument, answers, problem):
    with pytest.raises(InvalidAnswers) as caught:
        score(RULES, instrument, answers)
    assert problem in caught.value.by_item


def test_a_single_code_is_accepted_for_a_multiple_choice_item():
    assert needs_of(hrsn(**{"96778_6": "LA28580-1"})) == ["inadequate-housing"]
