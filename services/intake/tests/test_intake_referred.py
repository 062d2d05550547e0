"""Who may see a referred patient, and which contact detail: the pure rules of ``domain/referred.py``."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from intake.domain.referred import Consent, Grant, may_see, permitted_contact

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PATIENTS_AGENCY = "agency-a"
FOOD_BANK = "agency-food"
GRANT = Grant(uuid.uuid4(), FOOD_BANK, "food-assistance")
BY_AGENCY = Consent("referral", frozenset({FOOD_BANK}), frozenset(), NOW - timedelta(days=1), None)


def sees(grant: Grant = GRANT, consents=(BY_AGENCY,), caller: str = FOOD_BANK) -> bool:
    return may_see(grant, caller_agency=caller, patient_agency=PATIENTS_AGENCY, consents=consents, at=NOW)


def test_an_open_grant_with_a_consent_naming_the_agency_lets_it_see():
    assert sees()


def test_a_closed_grant_lets_nobody_see_whatever_the_consent():
    assert not sees(replace(GRANT, ended_at=NOW - timedelta(minutes=1)))


def test_only_the_agency_the_referral_was_sent_to_sees():
    assert not sees(caller="agency-other")


def test_the_patients_own_agency_needs_no_consent():
    own = replace(GRANT, receiving_agency_id=PATIENTS_AGENCY)
    assert may_see(own, caller_agency=PATIENTS_AGENCY, patient_agency=PATIENTS_AGENCY, consents=(), at=NOW)


def test_another_agency_without_any_consent_sees_nothing():
    assert not sees(consents=())


def test_a_consent_naming_the_program_category_lets_the_agency_see():
    by_category = replace(BY_AGENCY, agencies=frozenset(), program_categories=frozenset({"food-assistance"}))
    assert sees(consents=(by_category,))
    assert not sees(replace(GRANT, program_category="housing"), consents=(by_category,))


def test_an_unknown_program_category_is_covered_only_by_naming_the_agency():
    by_category = replace(BY_AGENCY, agencies=frozenset(), program_categories=frozenset({"food-assistance"}))
    unknown = replace(GRANT, program_category=None)
    assert not sees(unknown, consents=(by_category,))
    assert sees(unknown, consents=(BY_AGENCY,))


@pytest.mark.parametrize(
    "consent",
    [
        pytest.param(replace(BY_AGENCY, period_end=NOW - timedelta(seconds=1)), id="expired"),
        pytest.param(replace(BY_AGENCY, period_end=NOW), id="ends-now"),
        pytest.param(replace(BY_AGENCY, revoked=True), id="revoked"),
        pytest.param(replace(BY_AGENCY, period_start=NOW + timedelta(days=1)), id="not-yet-started"),
        pytest.param(replace(BY_AGENCY, purpose="care-coordination"), id="wrong-purpose"),
        pytest.param(replace(BY_AGENCY, agencies=frozenset({"agency-other"})), id="names-another-agency"),
    ],
)
def test_a_consent_not_in_force_for_referral_to_this_agency_lets_nothing_be_seen(consent):
    assert not sees(consents=(consent,))


def test_one_consent_in_force_is_enough_among_others_that_are_not():
    assert sees(consents=(replace(BY_AGENCY, revoked=True), BY_AGENCY))


@pytest.mark.parametrize(
    ("preference", "shown"),
    [
        ("phone", ("+1 555 0100", None)),
        ("text", ("+1 555 0100", None)),
        ("email", (None, "m@example.org")),
        ("do-not-contact", (None, None)),
    ],
)
def test_only_the_contact_detail_the_preference_permits_is_shown(preference, shown):
    assert permitted_contact(preference, "+1 555 0100", "m@example.org") == shown


@pytest.mark.parametrize(
    ("safe_channels", "needs", "shown"),
    [
        (None, frozenset({"food-insecurity"}), ("+1 555 0100", None)),  # not said: as the preference says
        (["phone", "in-person"], frozenset(), ("+1 555 0100", None)),
        (["email"], frozenset(), (None, None)),  # the preferred phone is not a safe channel
        ([], frozenset(), (None, None)),
        (None, frozenset({"intimate-partner-violence"}), (None, None)),  # safety at home: not said is unsafe
        (["phone"], frozenset({"intimate-partner-violence"}), ("+1 555 0100", None)),
    ],
)
def test_a_contact_detail_is_shown_only_through_a_channel_the_patient_marked_safe(
    safe_channels, needs, shown
):
    assert permitted_contact(
        "phone", "+1 555 0100", "m@example.org", safe_channels=safe_channels, needs=needs
    ) == (shown)
