"""What an outcome does, pure: complete, retry, recur, ask for a reassessment, or refuse."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.rules import load_rules
from followup.domain.follow_up import Actor, FollowUp, InvalidInput, NotOutstanding, Outcome
from followup.domain.outcomes import outcome_problems
from followup.domain.outcomes import record_outcome as decide
from followup.domain.rules import RULES_FILE, FollowUpRules
from followup.domain.scheduling import check_reschedule

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
RULES = load_rules(FollowUpRules, RULES_FILE)
GOAL = uuid.uuid4()


def record_outcome(rules: FollowUpRules, follow_up: FollowUp, outcome: Outcome, now: datetime):
    return decide(rules, follow_up, outcome, now, by=Actor("care-manager-1", "care-manager"))


def due(**changes) -> FollowUp:
    base = {
        "id": uuid.uuid4(),
        "patient_id": uuid.uuid4(),
        "agency_id": "agency-a",
        "reason": "plan-cadence",
        "status": "due",
        "priority": "high",
        "due_at": NOW - timedelta(hours=1),
        "attempt": 1,
        "due_point": 1,
        "every_days": 7,
    }
    return FollowUp(**{**base, **changes})


def test_reached_completes_and_schedules_the_next_cadence_contact():
    decision = record_outcome(RULES, due(), Outcome(reached=True, goal_progress=[(GOAL, "improving")]), NOW)
    assert decision.completes and decision.reassessment is None
    assert decision.next_cadence_due_at == NOW + timedelta(days=7)


def test_a_referral_check_in_does_not_recur():
    decision = record_outcome(RULES, due(reason="referral-check-in", every_days=None), Outcome(True), NOW)
    assert decision.completes and decision.next_cadence_due_at is None


def test_not_reached_with_attempts_left_retries_after_the_delay_for_its_priority():
    decision = record_outcome(RULES, due(), Outcome(reached=False), NOW)
    assert not decision.completes
    assert decision.retry_due_at == NOW + RULES.retry_delay("high")
    assert decision.reassessment is None


def test_not_reached_on_the_last_attempt_requests_a_reassessment():
    decision = record_outcome(RULES, due(attempt=RULES.not_reached.max_attempts), Outcome(reached=False), NOW)
    assert decision.completes and decision.reassessment == "not-reached"


def test_a_worsening_goal_requests_a_reassessment():
    outcome = Outcome(reached=True, goal_progress=[(GOAL, "improving"), (uuid.uuid4(), "worsening")])
    assert record_outcome(RULES, due(), outcome, NOW).reassessment == "worsening"


def test_the_number_of_attempts_is_data():
    one_attempt = FollowUpRules.model_validate(
        {**_data(), "not_reached": {**_data()["not_reached"], "max_attempts": 1}}
    )
    assert record_outcome(one_attempt, due(), Outcome(False), NOW).reassessment == "not-reached"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("scheduled", "follow-up is not due yet"),
        ("completed", "follow-up is completed"),
        ("cancelled", "follow-up is cancelled"),
    ],
)
def test_an_outcome_for_a_follow_up_not_due_or_overdue_is_refused_with_the_reason(status, reason):
    with pytest.raises(NotOutstanding, match=reason):
        record_outcome(RULES, due(status=status), Outcome(True), NOW)


def test_an_overdue_follow_up_takes_an_outcome():
    assert record_outcome(RULES, due(status="overdue"), Outcome(True), NOW).completes


def test_unknown_codes_and_goals_are_named_by_position_never_by_value():
    outcome = Outcome(
        reached=True,
        goal_progress=[(GOAL, "Quartermaine"), (uuid.uuid4(), "improving")],
        barriers=["transportation", "Zelda"],
        next_step="call-Zelda",
    )
    problems = outcome_problems(RULES, outcome, frozenset({GOAL}))
    assert problems == [
        {"loc": ["body", "goal_progress", 0, "progress"], "msg": "unknown progress code"},
        {"loc": ["body", "goal_progress", 1, "goal_id"], "msg": "not a goal of the patient's plan"},
        {"loc": ["body", "barriers", 1], "msg": "unknown barrier code"},
        {"loc": ["body", "next_step"], "msg": "unknown next step code"},
    ]


def test_progress_needs_the_patient_to_be_reached():
    problems = outcome_problems(RULES, Outcome(False, goal_progress=[(GOAL, "improving")]), None)
    assert [p["msg"] for p in problems] == ["progress needs the patient to be reached"]


def test_reschedule_needs_a_known_reason_and_a_future_time_and_an_open_follow_up():
    with pytest.raises(InvalidInput) as refused:
        check_reschedule(RULES, due(), "because", NOW - timedelta(minutes=1), NOW)
    assert [p["loc"] for p in refused.value.problems] == [["body", "reason"], ["body", "due_at"]]
    with pytest.raises(NotOutstanding, match="completed"):
        check_reschedule(RULES, due(status="completed"), "patient-request", NOW + timedelta(days=1), NOW)
    check_reschedule(RULES, due(status="scheduled"), "patient-request", NOW + timedelta(days=1), NOW)


def _data() -> dict:
    return json.loads(RULES_FILE.read_text())
