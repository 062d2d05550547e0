import pytest

from intake.domain.scoring import InvalidAnswers, Rules, score

RULES = Rules.load()


def test_phq2_total_of_three_or_more_is_a_positive_depression_screen():
    result = score(RULES, "phq-2", {"44250-9": 2, "44255-8": 1})
    assert (result.total, result.risk_level) == (3, "moderate")
    assert result.needs == [{"code": "depression", "severity": "positive-screen"}]
    assert result.rules_version == RULES.version


def test_phq2_below_three_has_no_need():
    result = score(RULES, "phq-2", {"44250-9": 1, "44255-8": 1})
    assert (result.total, result.risk_level, result.needs) == (2, "low", [])


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
        ("phq-2", {"44250-9": 4, "44255-8": 1}, {"item": "44250-9", "reason": "must be 0..3"}),
        ("phq-2", {"44250-9": "2", "44255-8": 1}, {"item": "44250-9", "reason": "must be an integer"}),
        ("phq-2", {"44250-9": True, "44255-8": 1}, {"item": "44250-9", "reason": "must be an integer"}),
    ],
)
def test_bad_answers_name_the_item_and_reason(instrument, answers, problem):
    with pytest.raises(InvalidAnswers) as caught:
        score(RULES, instrument, answers)
    assert problem in caught.value.problems
