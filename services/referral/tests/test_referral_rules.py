import uuid
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.rules import InvalidRulesFile, load_rules
from careloop_shared.testing.keys import FakePatientKeys
from referral.config import ReferralContext, ReferralSettings
from referral.domain.consent import OWN_AGENCY, Consent, permission
from referral.domain.deadlines import DEADLINES_FILE, Deadlines, add_business_days, overdue_event_id
from referral.domain.quality import History, Quality

FRIDAY = datetime(2026, 11, 6, 15, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 10, tzinfo=UTC)


def test_response_deadline_counts_business_days_only():
    assert add_business_days(FRIDAY, 2) == FRIDAY + timedelta(days=4)  # Tuesday
    assert add_business_days(FRIDAY - timedelta(days=3), 2) == FRIDAY - timedelta(days=1)  # Tue -> Thu
    assert load_rules(Deadlines, DEADLINES_FILE).outcome_due(FRIDAY) == FRIDAY + timedelta(days=14)


def test_overdue_event_id_is_the_same_for_the_same_referral_and_deadline():
    rid = uuid.uuid4()
    assert overdue_event_id(rid, "response") == overdue_event_id(rid, "response")
    assert overdue_event_id(rid, "response") != overdue_event_id(rid, "outcome")


def consent(**kw) -> Consent:
    base = {
        "id": uuid.uuid4(),
        "purpose": "referral",
        "agencies": frozenset({"agency-food-bank"}),
        "program_categories": frozenset(),
        "period_start": NOW - timedelta(days=1),
        "period_end": None,
    }
    return Consent(**{**base, **kw})


def allowed(consents, target="agency-food-bank", category="food-assistance"):
    return permission(consents, patient_agency="agency-home", target_agency=target, category=category, at=NOW)


def test_referral_within_the_patients_own_agency_needs_no_consent():
    assert allowed([], target="agency-home") == OWN_AGENCY


def test_consent_covers_by_agency_or_by_program_category():
    by_agency, by_category = (
        consent(),
        consent(agencies=frozenset(), program_categories=frozenset({"transportation"})),
    )
    assert allowed([by_agency]) == by_agency.id
    assert allowed([by_category], target="agency-rides", category="transportation") == by_category.id
    assert allowed([by_category]) is None


def test_consent_must_be_for_referral_active_and_within_its_period():
    assert allowed([consent(purpose="care-coordination")]) is None
    assert allowed([consent(revoked=True)]) is None
    assert allowed([consent(period_start=NOW + timedelta(days=1))]) is None
    assert allowed([consent(period_end=NOW)]) is None


def test_quality_figures_come_from_the_history():
    q = Quality(
        History(
            sent=10,
            accepted=6,
            rejected=2,
            closed=5,
            completed=4,
            closed_with_outcome=4,
            median_hours_to_accept=3.5,
        )
    )
    assert q.figures() == {
        "referrals": 10,
        "acceptance_rate": 0.75,
        "median_hours_to_accept": 3.5,
        "completion_rate": 0.8,
        "closed_with_outcome_rate": 0.8,
    }
    assert Quality(History()).score() == 0.5
    assert Quality(History()).figures()["acceptance_rate"] is None


@pytest.mark.parametrize("setting", ["directory_file", "ranking_file", "deadlines_file"])
def test_a_rules_file_that_does_not_fit_stops_the_service_when_its_context_is_built(tmp_path, setting):
    bad = tmp_path / "bad.v1.json"
    bad.write_text('{"version": "x", "surprise": 1}')
    with pytest.raises(InvalidRulesFile, match="does not fit"):
        ReferralContext.from_settings(ReferralSettings(**{setting: bad}), keys=FakePatientKeys())


def test_an_organisations_own_deadlines_file_sets_the_deadlines(tmp_path):
    own = tmp_path / "deadlines.v1.json"
    own.write_text('{"version": "own-1", "response_business_days": 1, "outcome_days": 7}')
    own_context = ReferralContext.from_settings(ReferralSettings(deadlines_file=own), keys=FakePatientKeys())
    deadlines = own_context.deadlines
    assert deadlines.response_due(FRIDAY) == FRIDAY + timedelta(days=3)  # Monday
    assert deadlines.outcome_due(FRIDAY) == FRIDAY + timedelta(days=7)
