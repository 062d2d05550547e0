"""Notes about a patient on an in-memory store: kept sealed with the patient's data key and opened to be
read; on the patient's erasure blanked, the rest of their referrals' history kept, and no new note about
them accepted; unreadable by anyone once the key is destroyed."""

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpCadence,
    Intervention,
    PatientErased,
    PlanUpdated,
    RiskLevel,
)
from careloop_shared.crypto import Erased, Unreadable
from careloop_shared.patient_keys import KeysUnavailable
from careloop_shared.testing.fakes import assert_fake_matches, received, run
from referral.directory import handlers as directory
from referral.domain.commands import ChangeReferralStatus, MakeReferral, SaveOrganization, SaveService
from referral.domain.directory import Organization, Service
from referral.erasure.handlers import when_patient_erased_forget_notes as forget_notes
from referral.erasure.notes import PatientErasedAlready, history_shown
from referral.erasure.store import ErasureStore
from referral.loop import handlers
from referral.manual.handlers import make_referral_by_hand

HOME, FOOD_BANK = "agency-home", "agency-food"
FOOD = "food-assistance"
ERASED_AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


async def program(ctx, store, service_id: str, agency: str) -> str:
    org = Organization(id=f"org-{agency}", agency_id=agency, name="Org")
    admin = ("agency-network", "admin", "adm-ada")
    await run(directory.save_organization, ctx, store, SaveOrganization(*admin, org))
    body = {"id": service_id, "organization_id": org.id, "name": "Program", "program_category": FOOD}
    svc = Service.model_validate({**body, "languages": ["en", "es"]})
    await run(directory.save_service, ctx, store, SaveService(*admin, svc))
    return service_id


def intervention(**fields) -> Intervention:
    base = {"id": uuid.uuid4(), "need": "food-insecurity", "kind": "referral", "program_category": FOOD}
    return Intervention(**{**base, "needs_referral": True, **fields})


async def referred_with_notes(ctx, store) -> tuple[uuid.UUID, uuid.UUID]:
    """A patient of HOME consenting to food programs, their plan's referral accepted by the food bank
    with a note; returns the patient and the referral."""
    patient_id, item = uuid.uuid4(), intervention()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    recorded = ConsentRecorded(
        patient_id=patient_id,
        agency_id=HOME,
        consent_id=uuid.uuid4(),
        purpose="referral",
        agencies=[],
        program_categories=[FOOD],
        period_start=at,
        recorded_at=at,
    )
    plan = PlanUpdated(
        patient_id=patient_id,
        agency_id=HOME,
        plan_id=uuid.uuid5(patient_id, "plan"),
        version=1,
        status="active",
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=[item],
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
        preferred_language="es",
    )
    await run(handlers.when_consent_recorded_send_waiting_referrals, ctx, store, received(recorded))
    await run(handlers.when_plan_updated_make_referrals, ctx, store, received(plan))
    [referral_id] = [r["id"] for r in store.loop.referrals.values() if r["intervention_id"] == item.id]
    accept = accepted(referral_id, note=f"Spoke with the daughter of {patient_id}")
    await run(handlers.change_referral_status, ctx, store, accept)
    return patient_id, referral_id


def accepted(referral_id: uuid.UUID, status: str = "accepted", **fields) -> ChangeReferralStatus:
    return ChangeReferralStatus(FOOD_BANK, referral_id, status, "prov-pat", "provider", **fields)


def erasure(patient_id: uuid.UUID, at: datetime = ERASED_AT) -> PatientErased:
    return PatientErased(patient_id=patient_id, agency_id=HOME, erased_at=at)


def test_the_fake_erasure_store_matches_the_real_one(store):
    assert_fake_matches(ErasureStore, type(store.erasure))


async def shown(ctx, store, referral_id: uuid.UUID) -> list[str | None]:
    """The notes of the referral's history as a reader is shown them."""
    referral = store.loop.referrals[referral_id]
    return [
        h["note"] for h in await history_shown(ctx.keys, referral, await store.loop.history_of(referral_id))
    ]


async def test_an_erasure_blanks_the_patients_notes_and_leaves_another_patients(ctx, store, keys):
    await program(ctx, store, "pantry", FOOD_BANK)
    erased, referral = await referred_with_notes(ctx, store)
    kept, other = await referred_with_notes(ctx, store)
    before = await store.loop.history_of(referral)

    _, uow = await run(forget_notes, ctx, store, received(erasure(erased)))

    assert uow.pending == []  # nothing to announce: the events never carried the notes
    after = await store.loop.history_of(referral)
    assert [(h["note"], h["note_sealed"]) for h in after] == [(None, None), (None, None)]
    assert [{**h, "note_sealed": None} for h in before] == after  # the coded history stays
    assert await shown(ctx, store, other) == [None, f"Spoke with the daughter of {kept}"]
    assert await store.erasure.erased_at(erased) == ERASED_AT
    assert await store.erasure.erased_at(kept) is None
    assert keys.forgotten == [erased]  # the key referral kept of the patient, dropped


async def test_a_redelivered_erasure_changes_nothing(ctx, store):
    await program(ctx, store, "pantry", FOOD_BANK)
    patient_id, referral = await referred_with_notes(ctx, store)
    await run(forget_notes, ctx, store, received(erasure(patient_id)))
    history = await store.loop.history_of(referral)

    later = erasure(patient_id, at=datetime(2026, 11, 2, tzinfo=UTC))  # the retention rules' run, say
    _, uow = await run(forget_notes, ctx, store, received(later))

    assert uow.pending == []
    assert await store.loop.history_of(referral) == history
    assert await store.erasure.erased_at(patient_id) == ERASED_AT  # the first word stands


async def test_a_note_about_an_erased_patient_is_refused_and_a_change_without_one_goes_on(ctx, store):
    await program(ctx, store, "pantry", FOOD_BANK)
    patient_id, referral = await referred_with_notes(ctx, store)
    await run(forget_notes, ctx, store, received(erasure(patient_id)))
    history = await store.loop.history_of(referral)

    with pytest.raises(PatientErasedAlready) as refused:
        await run(handlers.change_referral_status, ctx, store, accepted(referral, "in-progress", note="x"))
    assert refused.value.status_code == 410
    assert refused.value.body()["erased_at"] == ERASED_AT.isoformat()
    assert str(patient_id) not in str(refused.value)
    assert await store.loop.history_of(referral) == history  # nothing written

    change, _ = await run(handlers.change_referral_status, ctx, store, accepted(referral, "in-progress"))
    assert change.referral["status"] == "in-progress"
    assert [h["note"] for h in change.history] == [None, None, None]


async def test_a_referral_by_hand_with_a_note_about_an_erased_patient_is_refused(ctx, store):
    await program(ctx, store, "pantry", FOOD_BANK)
    patient_id, referral = await referred_with_notes(ctx, store)
    await program(ctx, store, "kitchen", "agency-kitchen")  # the care manager's choice, later
    item = store.loop.referrals[referral]["intervention_id"]
    await run(
        handlers.change_referral_status, ctx, store, accepted(referral, "failed", reason="client-declined")
    )
    await run(forget_notes, ctx, store, received(erasure(patient_id)))
    by_hand = MakeReferral(HOME, patient_id, item, "kitchen", by="cm-ana", by_role="care-manager")

    with pytest.raises(PatientErasedAlready):
        await run(make_referral_by_hand, ctx, store, replace(by_hand, note="call her son"))
    assert len(store.loop.referrals) == 1

    made, _ = await run(make_referral_by_hand, ctx, store, by_hand)
    assert made.referral["program_id"] == "kitchen"
    assert [h["note"] for h in made.history] == [None]


# --- notes kept sealed with the patient's data key ------------------------------------------------


async def test_a_note_is_kept_sealed_with_the_key_of_the_patients_agency_and_answered_opened(
    ctx, store, keys
):
    await program(ctx, store, "pantry", FOOD_BANK)
    patient_id, referral = await referred_with_notes(ctx, store)
    keys.asked.clear()

    note = f"Waits for a call from {patient_id}'s son"
    change, _ = await run(
        handlers.change_referral_status, ctx, store, accepted(referral, "in-progress", note=note)
    )

    stored = (await store.loop.history_of(referral))[-1]
    assert stored["note"] is None  # nothing in the clear
    assert stored["note_sealed"]["kid"] == keys.keys[patient_id].kid
    assert "Waits" not in json.dumps(stored["note_sealed"])
    assert [h["note"] for h in change.history] == [None, f"Spoke with the daughter of {patient_id}", note]
    # The food bank wrote it; the key is the patient's agency's, asked for HOME.
    assert set(keys.asked) == {(HOME, patient_id)}


async def test_a_referral_by_hand_keeps_its_note_sealed(ctx, store, keys):
    await program(ctx, store, "pantry", FOOD_BANK)
    patient_id, referral = await referred_with_notes(ctx, store)
    await program(ctx, store, "kitchen", "agency-kitchen")
    item = store.loop.referrals[referral]["intervention_id"]
    await run(
        handlers.change_referral_status, ctx, store, accepted(referral, "failed", reason="client-declined")
    )
    by_hand = MakeReferral(
        HOME, patient_id, item, "kitchen", by="cm-ana", by_role="care-manager", note="Her son"
    )

    made, _ = await run(make_referral_by_hand, ctx, store, by_hand)

    [stored] = await store.loop.history_of(made.referral["id"])
    assert stored["note"] is None and stored["note_sealed"]["kid"] == keys.keys[patient_id].kid
    assert [h["note"] for h in made.history] == ["Her son"]
    assert "note_sealed" not in made.history[0]  # the answer carries the note, not its ciphertext


async def test_a_note_written_before_notes_were_sealed_reads_as_it_was_kept_without_asking_intake(
    ctx, store, keys
):
    await program(ctx, store, "pantry", FOOD_BANK)
    _, referral = await referred_with_notes(ctx, store)
    for h in store.loop.history:  # as migration 008 found it: in the clear
        if h["referral_id"] == referral and h["note_sealed"] is not None:
            h.update(note="Left a message", note_sealed=None)
    keys.asked.clear()

    change, _ = await run(handlers.change_referral_status, ctx, store, accepted(referral, "in-progress"))

    assert [h["note"] for h in change.history] == [None, "Left a message", None]
    assert keys.asked == []


async def test_once_the_patients_key_is_destroyed_no_note_is_shown_and_none_is_written(ctx, store, keys):
    """intake destroyed the key; referral has not heard of the erasure yet: it shows what erasure shows."""
    await program(ctx, store, "pantry", FOOD_BANK)
    patient_id, referral = await referred_with_notes(ctx, store)
    kept, other = await referred_with_notes(ctx, store)
    keys.erase(patient_id)

    with pytest.raises(Erased):  # 410 at the API
        await run(handlers.change_referral_status, ctx, store, accepted(referral, "in-progress", note="x"))
    assert store.loop.referrals[referral]["status"] == "accepted"  # nothing written

    change, _ = await run(handlers.change_referral_status, ctx, store, accepted(referral, "in-progress"))
    assert change.referral["status"] == "in-progress"
    assert [(h["to_status"], h["note"]) for h in change.history] == [
        ("requested", None),
        ("accepted", None),
        ("in-progress", None),
    ]
    assert await shown(ctx, store, other) == [None, f"Spoke with the daughter of {kept}"]


async def test_while_intake_cannot_answer_a_note_is_not_written_and_a_change_without_one_goes_on(
    ctx, store, keys
):
    await program(ctx, store, "pantry", FOOD_BANK)
    _, referral = await referred_with_notes(ctx, store)
    _, unsealed = await referred_with_notes(ctx, store)
    keys.down = True
    history = await store.loop.history_of(referral)

    with pytest.raises(KeysUnavailable):  # 503 at the API
        await run(handlers.change_referral_status, ctx, store, accepted(referral, "in-progress", note="x"))
    assert await store.loop.history_of(referral) == history

    with pytest.raises(KeysUnavailable):  # its history's note cannot be shown either
        await run(handlers.change_referral_status, ctx, store, accepted(referral, "in-progress"))

    for h in store.loop.history:  # a referral with no sealed note needs no key
        if h["referral_id"] == unsealed:
            h["note_sealed"] = None
    change, _ = await run(handlers.change_referral_status, ctx, store, accepted(unsealed, "in-progress"))
    assert change.referral["status"] == "in-progress"


async def test_a_sealed_note_moved_to_another_referral_of_the_patient_does_not_open(ctx, store):
    await program(ctx, store, "pantry", FOOD_BANK)
    _, referral = await referred_with_notes(ctx, store)
    sealed = (await store.loop.history_of(referral))[-1]["note_sealed"]
    twin = {**store.loop.referrals[referral], "id": uuid.uuid4()}

    with pytest.raises(Unreadable):
        await history_shown(ctx.keys, twin, [{"note": None, "note_sealed": sealed}])
