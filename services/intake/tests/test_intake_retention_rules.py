"""Retention rules as data: which patients they select, when, and by which rule (pure, a fake clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.rules import InvalidRulesFile, load_rules
from careloop_shared.testing.fakes import FakeClock
from intake.domain.retention import (
    RULES_FILE,
    CaseActivity,
    Period,
    RetentionRules,
    erasure_reason,
    quiet_since,
    rule_for,
    run_due,
)

RULES = load_rules(RetentionRules, RULES_FILE)
LAST = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the case's last activity


def case(*, engaged: bool = True, referral_open: bool = False, last: datetime = LAST) -> CaseActivity:
    return CaseActivity(last_activity_at=last, engaged=engaged, referral_open=referral_open)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(LAST)


def test_the_shipped_rules_erase_a_closed_case_seven_years_after_its_last_activity(clock):
    closed = case()
    clock.advance(days=7 * 365)  # two leap days short of seven years
    assert rule_for(RULES, closed, clock()) is None
    clock.now = datetime(2033, 11, 2, 9, 0, tzinfo=UTC)
    rule = rule_for(RULES, closed, clock())
    assert rule is not None and rule.name == "closed-case"
    assert erasure_reason(RULES, rule) == "retention rule closed-case (retention-2026.11.1)"


def test_an_open_referral_keeps_the_case_however_long_it_is_quiet(clock):
    clock.advance(days=30 * 365)
    assert rule_for(RULES, case(referral_open=True), clock()) is None
    assert rule_for(RULES, case(engaged=False, referral_open=True), clock()) is None


def test_a_patient_never_engaged_is_erased_two_years_after_registration_by_the_first_rule(clock):
    clock.now = datetime(2028, 11, 2, 8, 59, tzinfo=UTC)
    assert rule_for(RULES, case(engaged=False), clock()) is None
    clock.advance(minutes=1)
    never = rule_for(RULES, case(engaged=False), clock())
    assert never is not None and never.name == "never-engaged"
    assert rule_for(RULES, case(engaged=True), clock()) is None  # an engaged case waits for seven years
    clock.now = datetime(2033, 11, 3, tzinfo=UTC)
    first = rule_for(RULES, case(engaged=False), clock())
    assert first is not None and first.name == "never-engaged"  # both select it: the first in the file


def test_activity_after_the_cutoff_keeps_the_patient(clock):
    clock.now = datetime(2033, 11, 2, 9, 0, tzinfo=UTC)
    assert rule_for(RULES, case(last=LAST + timedelta(seconds=1)), clock()) is None
    assert rule_for(RULES, case(last=LAST), clock()) is not None


def test_a_period_in_years_counts_calendar_years_and_29_february_falls_back_to_28():
    assert Period(years=1).before(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2027, 2, 28, tzinfo=UTC)
    assert Period(years=4).before(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2024, 2, 29, tzinfo=UTC)
    assert Period(years=1, days=10).before(datetime(2027, 3, 11, tzinfo=UTC)) == datetime(
        2026, 3, 1, tzinfo=UTC
    )


def test_quiet_since_is_the_latest_instant_any_rule_reaches_back_to(clock):
    assert quiet_since(RULES, clock()) == datetime(2024, 11, 2, 9, 0, tzinfo=UTC)  # the two-year rule
    assert quiet_since(RetentionRules(version="none", rules=()), clock()) is None


def test_a_run_is_due_once_a_period_after_the_last_began(clock):
    every = timedelta(days=1)
    assert run_due(None, clock(), every)
    began = clock()
    assert not run_due(began, clock.advance(hours=23, minutes=59), every)
    assert run_due(began, clock.advance(minutes=1), every)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"erase_after": {}}, "zero would erase at once"),
        ({"erase_after": {"years": -1}}, "greater than or equal to 0"),
        ({"applies_to": "everyone"}, "applies_to"),
        ({"name": "Closed Case"}, "name"),
    ],
)
def test_a_rules_file_that_does_not_fit_stops_at_load_saying_where(tmp_path, change, says):
    rules = json.loads(RULES_FILE.read_text())
    rules["rules"][1] |= change
    path = tmp_path / "retention.json"
    path.write_text(json.dumps(rules))
    with pytest.raises(InvalidRulesFile, match=says):
        load_rules(RetentionRules, path)


def test_two_rules_of_one_name_are_refused(tmp_path):
    rules = json.loads(RULES_FILE.read_text())
    rules["rules"][1]["name"] = rules["rules"][0]["name"]
    path = tmp_path / "retention.json"
    path.write_text(json.dumps(rules))
    with pytest.raises(InvalidRulesFile, match="same name"):
        load_rules(RetentionRules, path)
