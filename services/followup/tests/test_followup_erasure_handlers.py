"""Erasure on the in-memory store: an erased patient's notes are blanked, no new one is kept, and the
pseudonymous case (codes, ids, times) goes on."""

import copy
import uuid
from datetime import timedelta

import pytest

from careloop_shared.contracts import PatientErased
from careloop_shared.patient_keys import open_for
from careloop_shared.testing.fakes import received, run
from followup import handlers
from followup.domain.commands import RecordOutcome
from followup.domain.erasure import ErasedPatient
from followup.domain.scheduling import new_follow_up
from followup.notes import note_field

AGENCY = "agency-a"
NOTE = "Quartermaine said her landlord at 12 Elm St changed the locks"


async def due_follow_up(ctx, store, patient, *, reason="plan-cadence"):
    now = ctx.clock()
    referral = reason != "plan-cadence"
    row = new_follow_up(
        ctx.rules,
        now - timedelta(days=7),
        patient_id=patient,
        agency_id=AGENCY,
        reason=reason,
        plan_id=None if referral else uuid.uuid4(),
        referral_id=uuid.uuid4() if referral else None,
        priority="high",
        due_at=now - timedelta(minutes=5),
        every_days=None if referral else 7.0,
        cadence_anchor_at=now - timedelta(days=7),
    )
    assert await store.insert_follow_up({**row, "status": "due"})
    return row["id"]


def reached(follow_up_id, **fields):
    return RecordOutcome(AGENCY, follow_up_id, "cm-ana", "care-manager", reached=True, **fields)


def erasure(patient, at):
    return PatientErased(
        patient_id=patient, agency_id=AGENCY, erased_at=at, actor_id="sv-sam", actor_role="supervisor"
    )


def snapshot(store):
    """Everything the store keeps, to compare before and after."""
    kept = (store.follow_ups, store.outcomes, store.reschedules, store.erased, store.plans, store.tasks.tasks)
    return copy.deepcopy(kept)


async def noted(ctx, store, patient):
    """A patient with a reached outcome noted on a due follow-up; returns that follow-up's id."""
    follow_up_id = await due_follow_up(ctx, store, patient)
    await run(handlers.record_outcome, ctx, store, reached(follow_up_id, barriers=("cost",), note=NOTE))
    return follow_up_id


async def test_erasure_blanks_the_patient_s_notes_and_keeps_the_codes_and_others_notes(
    ctx, store, clock, keys
):
    erased, other = uuid.uuid4(), uuid.uuid4()
    theirs, kept = await noted(ctx, store, erased), await noted(ctx, store, other)

    _, uow = await run(
        handlers.when_patient_erased_blank_notes, ctx, store, received(erasure(erased, clock.now))
    )

    outcome = store.outcomes[(theirs, 1)]
    assert (outcome["note"], outcome["note_sealed"]) == (None, None)
    assert (outcome["reached"], outcome["barriers"], outcome["recorded_by"]) == (True, ["cost"], "cm-ana")
    others = store.outcomes[(kept, 1)]["note_sealed"]
    assert await open_for(keys, AGENCY, other, note_field(kept), others) == NOTE
    assert await store.erased_at(erased) == clock.now
    assert await store.erased_at(other) is None
    assert uow.pending == []  # nothing to announce: the case goes on


async def test_a_redelivered_or_repeated_erasure_changes_nothing(ctx, store, clock):
    patient = uuid.uuid4()
    await noted(ctx, store, patient)
    first = received(erasure(patient, clock.now))
    await run(handlers.when_patient_erased_blank_notes, ctx, store, first)
    after_first = snapshot(store)

    await run(handlers.when_patient_erased_blank_notes, ctx, store, first)
    later = received(erasure(patient, clock.now + timedelta(days=1)))  # announced again, another event
    _, uow = await run(handlers.when_patient_erased_blank_notes, ctx, store, later)

    assert snapshot(store) == after_first
    assert await store.erased_at(patient) == clock.now  # the first erasure's time stays
    assert uow.pending == []


async def test_a_note_about_an_erased_patient_is_refused_but_an_outcome_without_one_is_recorded(
    ctx, store, clock
):
    patient = uuid.uuid4()
    await run(handlers.when_patient_erased_blank_notes, ctx, store, received(erasure(patient, clock.now)))
    follow_up_id = await due_follow_up(ctx, store, patient, reason="referral-check-in")
    before = snapshot(store)

    for note in (NOTE, ""):
        with pytest.raises(ErasedPatient) as refused:
            await run(handlers.record_outcome, ctx, store, reached(follow_up_id, note=note))
        assert refused.value.status_code == 410
        assert refused.value.body() == {
            "detail": "this patient was erased: no new notes about them are kept",
            "erased_at": str(clock.now),
        }
        assert snapshot(store) == before

    result, _ = await run(handlers.record_outcome, ctx, store, reached(follow_up_id, barriers=("cost",)))
    assert result["follow_up"]["status"] == "completed"
    assert store.outcomes[(follow_up_id, 1)]["note"] is None
