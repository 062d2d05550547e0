"""Scheduling rules, pure: cadences by risk, check-in times, grace periods, due-point ids."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from careloop_shared.rules import InvalidRulesFile, load_rules
from followup.domain.follow_up import FollowUp
from followup.domain.rules import RULES_FILE, FollowUpRules
from followup.domain.schedule import due_event_id, next_cadence_due
from followup.domain.scheduling import revise_cadence

T = datetime(2026, 1, 1, tzinfo=UTC)
RULES = load_rules(FollowUpRules, RULES_FILE)


def test_due_event_id_is_the_same_for_the_same_due_point_in_any_timezone():
    follow_up = uuid.uuid4()
    other_zone = T.astimezone(ZoneInfo("America/Chicago"))
    assert due_event_id(follow_up, T) == due_event_id(follow_up, other_zone)
    assert due_event_id(follow_up, T) != due_event_id(follow_up, T + timedelta(days=1))


def test_moving_a_follow_up_back_to_a_time_it_already_fired_at_is_a_new_due_point():
    follow_up = uuid.uuid4()
    assert due_event_id(follow_up, T, 1) != due_event_id(follow_up, T, 3)


def test_next_due_is_the_cadence_after_the_anchor():
    assert next_cadence_due(T, 7) == T + timedelta(days=7)


@pytest.mark.parametrize(("risk", "days"), [("urgent", 1), ("high", 7), ("moderate", 30), ("low", 90)])
def test_cadence_defaults_by_risk_when_the_plan_gives_none(risk, days):
    assert RULES.cadence_days(None, risk) == days
    assert RULES.cadence_days(0, risk) == days


def test_urgent_default_falls_due_within_24_hours():
    assert next_cadence_due(T, RULES.cadence_days(None, "urgent")) - T <= timedelta(hours=24)


def test_the_plan_s_own_cadence_wins_over_the_default():
    assert RULES.cadence_days(14, "low") == 14


def test_referral_check_in_falls_after_the_response_deadline():
    assert RULES.referral_check_in_due(T) > T


def test_service_check_in_delay_after_completion_comes_from_the_rules_file():
    data = {**_data(), "service_check_in": {"days_after_completion": 3}}
    assert FollowUpRules.model_validate(data).service_check_in_due(T) == T + timedelta(days=3)


def test_grace_period_is_shorter_for_more_urgent_priorities():
    graces = [RULES.grace(p) for p in ("urgent", "high", "moderate", "low")]
    assert graces == sorted(graces)
    assert RULES.overdue_at(T, "urgent") == T + RULES.grace("urgent")


def test_rules_missing_a_priority_are_refused_on_load(tmp_path):
    data = _data()
    data["grace_hours_by_priority"] = {"high": 1}
    with pytest.raises(ValueError, match="grace_hours_by_priority"):
        FollowUpRules.model_validate(data)
    own = tmp_path / "follow-up-rules.json"
    own.write_text(json.dumps(data))
    with pytest.raises(InvalidRulesFile, match="grace_hours_by_priority lacks"):
        load_rules(FollowUpRules, own)


@pytest.mark.parametrize(
    ("part", "change", "problem"),
    [
        ("cadence_days_by_risk", {"urgent": 1}, "cadence_days_by_risk lacks"),
        (
            "not_reached",
            {"max_attempts": 3, "retry_after_hours_by_priority": {}},
            "retry_after_hours_by_priority",
        ),
        ("not_reached", {"max_attempts": 0, "retry_after_hours_by_priority": {}}, "max_attempts"),
    ],
)
def test_rules_without_a_value_for_every_priority_or_any_attempt_are_refused(part, change, problem):
    with pytest.raises(ValueError, match=problem):
        FollowUpRules.model_validate({**_data(), part: change})


def _follow_up(**changes) -> FollowUp:
    base = {
        "id": uuid.uuid4(),
        "patient_id": uuid.uuid4(),
        "agency_id": "agency-a",
        "reason": "plan-cadence",
        "status": "scheduled",
        "priority": "moderate",
        "due_at": T + timedelta(days=30),
        "attempt": 1,
        "due_point": 1,
        "every_days": 30,
    }
    return FollowUp(**{**base, **changes})


def test_a_cadence_change_moves_the_waiting_follow_up_from_its_anchor():
    assert revise_cadence(_follow_up(), T, 7) == T + timedelta(days=7)


def test_a_revision_with_the_same_cadence_does_not_push_the_follow_up_out():
    assert revise_cadence(_follow_up(), T + timedelta(days=10), 30) is None


def test_a_revision_leaves_a_follow_up_already_due_or_a_retry_where_it_is():
    assert revise_cadence(_follow_up(status="due"), T, 7) is None
    assert revise_cadence(_follow_up(attempt=2), T, 7) is None


def _data() -> dict:
    return json.loads(RULES_FILE.read_text())
