"""How intake learns which receiving agency may see which patient, against an in-memory store."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from careloop_shared.contracts import ContactPreference, ReferralMade, ReferralStatusChanged
from careloop_shared.testing.fakes import assert_fake_matches, received, run
from intake import handlers
from intake.domain.commands import RecordConsent, RegisterPatient, RevokeConsent
from intake.referred.api import minimum_shown, visible_to
from intake.referred.handlers import when_referral_made_grant_access, when_referral_status_changed_end_access
from intake.referred.store import ReferredStore

AGENCY = "agency-a"
FOOD_BANK = "agency-food"
BY = {"by": "cm-ana", "by_role": "care-manager"}


@pytest.fixture
async def patient(ctx, store) -> uuid.UUID:
    command = RegisterPatient(
        agency_id=AGENCY,
        given_name="Marisol",
        family_name="Etxeberria",
        birth_date=date(1958, 3, 14),
        preferred_language="es",
        contact_preference=ContactPreference.text,
        phone="+1 555 0100",
        email="marisol@example.org",
        postal_code="94110",
        **BY,
    )
    patient_id, _ = await run(handlers.register_patient, ctx, store, command)
    return patient_id


def made(patient_id, referral_id=None, receiving=FOOD_BANK, category="food-assistance") -> ReferralMade:
    return ReferralMade(
        patient_id=patient_id,
        agency_id=AGENCY,
        referral_id=referral_id or uuid.uuid4(),
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        need="food-insecurity",
        program_id="food-bank-1",
        receiving_agency_id=receiving,
        status="requested",
        response_due_at=datetime(2026, 11, 9, tzinfo=UTC),
        program_category=category,
    )


def changed(patient_id, referral_id, to_status, at, reason=None) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        patient_id=patient_id,
        agency_id=AGENCY,
        referral_id=referral_id,
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        from_status="accepted",
        to_status=to_status,
        by_agency_id=FOOD_BANK,
        by_party="target",
        reason=reason,
        changed_at=at,
        actor_id="pr-paz",
        actor_role="provider",
    )


async def consent(ctx, store, patient_id, agencies=(FOOD_BANK,), categories=()) -> uuid.UUID:
    command = RecordConsent(AGENCY, patient_id, "referral", list(agencies), list(categories), **BY)
    consent_id, _ = await run(handlers.record_consent, ctx, store, command)
    return consent_id


async def seen_by(ctx, store, agency, at, patient_id=None) -> list:
    return await minimum_shown(ctx, store, await visible_to(store, agency, at, patient_id))


def test_the_fake_referred_store_answers_like_the_real_one(store):
    assert_fake_matches(ReferredStore, type(store.referred))


async def test_a_referral_made_grants_its_receiving_agency_once_and_announces_nothing(ctx, store, patient):
    event = made(patient)
    _, uow = await run(when_referral_made_grant_access, ctx, store, received(event))
    grant = store.referred.grants[event.referral_id]
    assert (grant["receiving_agency_id"], grant["need"], grant["program_category"]) == (
        FOOD_BANK,
        "food-insecurity",
        "food-assistance",
    )
    assert (grant["granted_at"], grant["ended_at"], uow.pending) == (ctx.clock(), None, [])
    before = dict(grant)
    await run(when_referral_made_grant_access, ctx, store, received(event))  # redelivered, or made again
    assert store.referred.grants == {event.referral_id: before}


async def test_an_unknown_program_category_is_kept_as_unknown(ctx, store, patient):
    event = made(patient, category=None)
    await run(when_referral_made_grant_access, ctx, store, received(event))
    assert store.referred.grants[event.referral_id]["program_category"] is None


@pytest.mark.parametrize("status", ["completed", "cancelled", "failed", "rejected", "entered-in-error"])
async def test_a_closing_status_ends_the_grant_with_when_and_why(ctx, store, patient, clock, status):
    event = made(patient)
    await run(when_referral_made_grant_access, ctx, store, received(event))
    closed_at = clock.advance(days=3)
    change = changed(patient, event.referral_id, status, closed_at, reason="no-capacity")
    _, uow = await run(when_referral_status_changed_end_access, ctx, store, received(change))
    grant = store.referred.grants[event.referral_id]
    assert (grant["ended_at"], grant["end_status"], grant["end_reason"]) == (closed_at, status, "no-capacity")
    assert uow.pending == []


@pytest.mark.parametrize("status", ["accepted", "in-progress", "on-hold"])
async def test_a_status_on_the_way_leaves_the_grant_open(ctx, store, patient, clock, status):
    event = made(patient)
    await run(when_referral_made_grant_access, ctx, store, received(event))
    change = changed(patient, event.referral_id, status, clock.advance(hours=1))
    await run(when_referral_status_changed_end_access, ctx, store, received(change))
    assert store.referred.grants[event.referral_id]["ended_at"] is None


async def test_a_closing_before_its_referral_made_is_kept_and_not_reopened(ctx, store, patient, clock):
    referral_id = uuid.uuid4()
    closed_at = clock.now - timedelta(minutes=5)
    change = changed(patient, referral_id, "cancelled", closed_at)
    await run(when_referral_status_changed_end_access, ctx, store, received(change))
    await run(when_referral_made_grant_access, ctx, store, received(made(patient, referral_id)))
    grant = store.referred.grants[referral_id]
    assert (grant["receiving_agency_id"], grant["ended_at"], grant["end_status"]) == (
        FOOD_BANK,
        closed_at,
        "cancelled",
    )
    await consent(ctx, store, patient)
    assert await visible_to(store, FOOD_BANK, clock.now) == []


async def test_the_first_closing_is_the_one_kept(ctx, store, patient, clock):
    event = made(patient)
    await run(when_referral_made_grant_access, ctx, store, received(event))
    first = clock.advance(hours=1)
    await run(
        when_referral_status_changed_end_access,
        ctx,
        store,
        received(changed(patient, event.referral_id, "completed", first)),
    )
    later = changed(patient, event.referral_id, "entered-in-error", clock.advance(hours=1))
    await run(when_referral_status_changed_end_access, ctx, store, received(later))
    grant = store.referred.grants[event.referral_id]
    assert (grant["ended_at"], grant["end_status"]) == (first, "completed")


async def test_the_agency_sees_the_minimum_while_consent_covers_the_open_referral(ctx, store, patient, clock):
    first, second = made(patient), made(patient, category="housing")
    for event in (first, second, made(patient, receiving="agency-other")):
        await run(when_referral_made_grant_access, ctx, store, received(event))
        clock.advance(minutes=1)
    assert await visible_to(store, FOOD_BANK, clock.now) == []  # no consent yet

    consent_id = await consent(ctx, store, patient)
    [shown] = await seen_by(ctx, store, FOOD_BANK, clock.now)
    assert (shown.patient_id, shown.given_name, shown.phone, shown.email) == (
        patient,
        "Marisol",
        "+1 555 0100",
        None,  # they prefer texts: the email is not theirs to see
    )
    assert [r.referral_id for r in shown.referrals] == [first.referral_id, second.referral_id]
    assert "birth_date" not in shown.model_dump() and "postal_code" not in shown.model_dump()
    assert await visible_to(store, "agency-other", clock.now) == []  # its consent names the food bank only

    await run(handlers.revoke_consent, ctx, store, RevokeConsent(AGENCY, patient, consent_id, **BY))
    assert await visible_to(store, FOOD_BANK, clock.now) == []
    assert await visible_to(store, FOOD_BANK, clock.now, patient) == []


async def test_a_consent_by_program_category_covers_only_the_referrals_of_that_category(
    ctx, store, patient, clock
):
    food, housing = made(patient), made(patient, category="housing")
    for event in (food, housing):
        await run(when_referral_made_grant_access, ctx, store, received(event))
    await consent(ctx, store, patient, agencies=(), categories=("housing",))
    [shown] = await seen_by(ctx, store, FOOD_BANK, clock.now, patient)
    assert [(r.referral_id, r.program_category) for r in shown.referrals] == [
        (housing.referral_id, "housing")
    ]
