"""Outcome notes sealed with the patient's data key, on the in-memory store with intake's keys faked:
sealed on write (ahead of the unit of work, or by the handler), opened on read, read as erased once the
key is destroyed, and refused whole while intake cannot answer."""

import copy
import json
import uuid
from datetime import timedelta
from functools import partial

import pytest

from careloop_shared.contracts import PatientErased
from careloop_shared.crypto import Unreadable
from careloop_shared.patient_keys import KeysUnavailable, open_for
from careloop_shared.testing.fakes import received, run
from followup import handlers
from followup.domain.commands import RecordOutcome
from followup.domain.erasure import ErasedPatient
from followup.domain.scheduling import new_follow_up
from followup.notes import note_field, opened_notes, seal_note, seal_note_ahead

AGENCY = "agency-a"
NOTE = "Quartermaine said her landlord at 12 Elm St changed the locks"
OLD_NOTE = "Zebedee's daughter Marisol drives him to the food bank"


async def due_follow_up(ctx, store, patient=None):
    now = ctx.clock()
    row = new_follow_up(
        ctx.rules,
        now - timedelta(days=7),
        patient_id=patient or uuid.uuid4(),
        agency_id=AGENCY,
        reason="referral-check-in",
        referral_id=uuid.uuid4(),
        priority="high",
        due_at=now - timedelta(minutes=5),
    )
    assert await store.insert_follow_up({**row, "status": "due"})
    return row


def reached(follow_up, **fields):
    return RecordOutcome(AGENCY, follow_up["id"], "cm-ana", "care-manager", reached=True, **fields)


def kept(store):
    return copy.deepcopy((store.follow_ups, store.outcomes, store.tasks.tasks))


async def test_a_note_sealed_ahead_is_stored_sealed_only_and_the_handler_asks_intake_nothing(
    ctx, store, keys
):
    follow_up = await due_follow_up(ctx, store)
    command = reached(follow_up, note=NOTE)

    sealed = await seal_note_ahead(keys, store, command)
    assert keys.asked == [(AGENCY, follow_up["patient_id"])]
    await run(partial(handlers.record_outcome, sealed_note=sealed), ctx, store, command)

    stored = store.outcomes[(follow_up["id"], 1)]
    assert (stored["note"], stored["note_sealed"]) == (None, sealed)
    assert "Quartermaine" not in json.dumps(stored, default=str)
    assert keys.asked == [(AGENCY, follow_up["patient_id"])]  # the handler used what was sealed ahead
    field = note_field(follow_up["id"])
    assert await open_for(keys, AGENCY, follow_up["patient_id"], field, stored["note_sealed"]) == NOTE


async def test_an_outcome_without_a_note_or_of_no_such_follow_up_asks_intake_nothing(ctx, store, keys):
    follow_up = await due_follow_up(ctx, store)
    assert await seal_note_ahead(keys, store, reached(follow_up)) is None
    elsewhere = RecordOutcome("agency-b", follow_up["id"], "cm-bo", "care-manager", reached=True, note=NOTE)
    assert await seal_note_ahead(keys, store, elsewhere) is None  # the handler answers 404

    await run(handlers.record_outcome, ctx, store, reached(follow_up, barriers=("cost",)))
    stored = store.outcomes[(follow_up["id"], 1)]
    assert (stored["note"], stored["note_sealed"], stored["barriers"]) == (None, None, ["cost"])
    assert keys.asked == []


async def test_a_read_opens_sealed_notes_and_shows_those_recorded_before_sealing_as_kept(ctx, store, keys):
    follow_up = await due_follow_up(ctx, store)
    await run(handlers.record_outcome, ctx, store, reached(follow_up, note=NOTE))
    older = await due_follow_up(ctx, store, follow_up["patient_id"])
    await store.insert_outcome(
        {
            **store.outcomes[(follow_up["id"], 1)],
            "follow_up_id": older["id"],
            "note": OLD_NOTE,
            "note_sealed": None,
        }
    )
    keys.asked.clear()

    assert await opened_notes(keys, follow_up, await store.list_outcomes(follow_up["id"])) == [NOTE]
    assert await opened_notes(keys, older, await store.list_outcomes(older["id"])) == [OLD_NOTE]
    assert keys.asked == [(AGENCY, follow_up["patient_id"])]  # only the sealed one needed the key


async def test_notes_of_a_patient_whose_key_was_destroyed_read_as_erased(ctx, store, keys):
    follow_up = await due_follow_up(ctx, store)
    await run(handlers.record_outcome, ctx, store, reached(follow_up, note=NOTE))
    outcomes = await store.list_outcomes(follow_up["id"])
    legacy = [{**outcomes[0], "note": OLD_NOTE, "note_sealed": None}, *outcomes]

    keys.erase(follow_up["patient_id"])  # intake erased them; followup has not heard yet

    assert await opened_notes(keys, follow_up, outcomes) == [None]
    assert await opened_notes(keys, follow_up, legacy) == [None, None]  # as erasure shows them


async def test_a_sealed_note_moved_to_another_follow_up_does_not_open(ctx, store, keys):
    follow_up = await due_follow_up(ctx, store)
    other = await due_follow_up(ctx, store, follow_up["patient_id"])
    sealed = await seal_note(keys, follow_up, NOTE)
    with pytest.raises(Unreadable):
        await opened_notes(keys, other, [{"note": None, "note_sealed": sealed}])


async def test_while_intake_cannot_answer_a_note_is_neither_kept_nor_read(ctx, store, keys):
    follow_up = await due_follow_up(ctx, store)
    await run(handlers.record_outcome, ctx, store, reached(follow_up, note=NOTE))
    later = await due_follow_up(ctx, store, follow_up["patient_id"])
    before = kept(store)
    keys.down = True

    with pytest.raises(KeysUnavailable):
        await seal_note_ahead(keys, store, reached(later, note=NOTE))
    with pytest.raises(KeysUnavailable):
        await run(handlers.record_outcome, ctx, store, reached(later, note=NOTE))
    assert kept(store) == before
    with pytest.raises(KeysUnavailable):
        await opened_notes(keys, follow_up, await store.list_outcomes(follow_up["id"]))

    await run(handlers.record_outcome, ctx, store, reached(later))  # without a note: no key needed
    assert store.follow_ups[later["id"]]["status"] == "completed"


async def test_a_note_about_a_patient_intake_erased_before_followup_heard_is_refused(ctx, store, keys):
    follow_up = await due_follow_up(ctx, store)
    keys.erase(follow_up["patient_id"])
    before = kept(store)

    command = reached(follow_up, note=NOTE)
    assert await seal_note_ahead(keys, store, command) is None  # the handler says why
    with pytest.raises(ErasedPatient) as refused:
        await run(partial(handlers.record_outcome, sealed_note=None), ctx, store, command)
    assert (refused.value.status_code, refused.value.body()) == (
        410,
        {"detail": "this patient was erased: no new notes about them are kept"},
    )
    assert kept(store) == before


async def test_erasure_blanks_sealed_notes_and_forgets_the_patient_s_key(ctx, store, keys, clock):
    follow_up = await due_follow_up(ctx, store)
    other = await due_follow_up(ctx, store)
    for noted in (follow_up, other):
        await run(handlers.record_outcome, ctx, store, reached(noted, note=NOTE))
    erased = PatientErased(
        patient_id=follow_up["patient_id"], agency_id=AGENCY, erased_at=clock.now, actor_role="supervisor"
    )
    keys.asked.clear()

    await run(handlers.when_patient_erased_blank_notes, ctx, store, received(erased))

    outcome = store.outcomes[(follow_up["id"], 1)]
    assert (outcome["note"], outcome["note_sealed"], outcome["reached"]) == (None, None, True)
    assert store.outcomes[(other["id"], 1)]["note_sealed"] is not None
    assert keys.forgotten == [follow_up["patient_id"]]
    assert keys.asked == []  # the event path never asks intake
