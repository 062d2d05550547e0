"""The history notes kept in the clear before notes were sealed, sealed in the background on an in-memory
store: a batch at a time, as a new note is sealed (the key of the patient's agency, bound to the
referral), so they read as they were; an erased patient's blanked; while intake cannot answer nothing
changes; notes the step cannot seal, or another transaction holds, never keep it going round."""

import copy
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from careloop_shared.crypto import Unreadable
from careloop_shared.testing.fakes import run_step
from referral.erasure import handlers
from referral.erasure.handlers import seal_notes_in_the_clear
from referral.erasure.notes import history_shown, seal_note

HOME, EAST, FOOD_BANK = "agency-home", "agency-east", "agency-food"
WRITTEN = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def legacy_referral(store, patient_id: uuid.UUID, notes: list[str | None], agency: str = HOME) -> uuid.UUID:
    """A referral of the patient's agency, its history written by the food bank before notes were
    sealed: each note in the clear, as migration 008 found it (None: an entry without one)."""
    referral_id = uuid.uuid4()
    store.loop.referrals[referral_id] = {
        "id": referral_id,
        "patient_id": patient_id,
        "agency_id": agency,
        "receiving_agency_id": FOOD_BANK,
        "status": "accepted",
    }
    for i, note in enumerate(notes):
        store.loop.history.append(
            {
                "referral_id": referral_id,
                "from_status": None if i == 0 else "requested",
                "to_status": "requested" if i == 0 else "accepted",
                "by_agency_id": FOOD_BANK,
                "by_party": "receiving",
                "note": note,
                "note_sealed": None,
                "changed_at": WRITTEN + timedelta(minutes=i),
            }
        )
    return referral_id


async def shown(ctx, store, referral_id: uuid.UUID) -> list[str | None]:
    """The referral's notes as the service reads them (``history_shown``, as the API does)."""
    referral = store.loop.referrals[referral_id]
    history = await store.loop.history_of(referral_id)
    return [h["note"] for h in await history_shown(ctx.keys, referral, history)]


async def one_pass(ctx, store, most: int = 20) -> list[bool]:
    """The step as the periodic loop runs it in one tick: again while it answers True (``most`` at most)."""
    answers: list[bool] = []
    while len(answers) < most and (not answers or answers[-1]):
        more, uow = await run_step(seal_notes_in_the_clear, ctx, store)
        assert uow.pending == []  # nothing announced: the events never carried the notes
        answers.append(more)
    return answers


@pytest.fixture
def logged(monkeypatch) -> structlog.testing.CapturingLogger:
    capture = structlog.testing.CapturingLogger()
    monkeypatch.setattr(handlers, "log", capture)
    return capture


def said(logged: structlog.testing.CapturingLogger, level: str) -> list[tuple[str, dict]]:
    return [(c.args[0], c.kwargs) for c in logged.calls if c.method_name == level]


def in_the_clear(store) -> list[str]:
    return [h["note"] for h in store.loop.history if h["note"] is not None]


async def test_notes_kept_in_the_clear_are_sealed_a_batch_at_a_time_and_read_as_they_were(
    ctx, store, keys, logged
):
    ctx = replace(ctx, seal_batch_size=2)
    ana, bea, cris = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = legacy_referral(store, ana, [f"Called {ana}'s daughter", None, "Visits on Tuesdays"])
    east = legacy_referral(store, bea, [None, "Prefers mornings"], agency=EAST)
    sealed_already = legacy_referral(store, cris, [None])
    new_note = await seal_note(keys, store.loop.referrals[sealed_already], "Written sealed")
    store.loop.history[-1]["note_sealed"] = new_note
    second = legacy_referral(store, ana, ["Moved to her sister's"])
    referrals = (first, east, sealed_already, second)
    before = {r: await shown(ctx, store, r) for r in referrals}
    coded = [{k: v for k, v in h.items() if k not in ("note", "note_sealed")} for h in store.loop.history]
    keys.asked.clear()

    assert await one_pass(ctx, store) == [True, True, False]  # four notes, two a transaction

    # Sealed with the key of the patient's agency, though the food bank wrote them.
    assert set(keys.asked) == {(HOME, ana), (EAST, bea)}
    assert in_the_clear(store) == []
    assert {r: await shown(ctx, store, r) for r in referrals} == before
    for h in store.loop.history:
        patient = store.loop.referrals[h["referral_id"]]["patient_id"]
        assert h["note_sealed"] is None or h["note_sealed"]["kid"] == keys.keys[patient].kid
    assert [
        {k: v for k, v in h.items() if k not in ("note", "note_sealed")} for h in store.loop.history
    ] == coded
    assert store.loop.history[5]["note_sealed"] == new_note  # a note sealed already stays as it was
    # Bound to its referral, as a new note is: moved to another referral of the patient, it does not open.
    moved = {**store.loop.history[0], "referral_id": second}
    with pytest.raises(Unreadable):
        await history_shown(keys, store.loop.referrals[second], [moved])
    assert said(logged, "info") == [("every note of the referrals' history is sealed", {})]

    assert await one_pass(ctx, store) == [False]  # the next tick finds nothing, and says nothing more
    assert len(said(logged, "info")) == 1


async def test_an_erased_patients_notes_kept_in_the_clear_are_blanked(ctx, store, keys):
    erased, kept = uuid.uuid4(), uuid.uuid4()
    gone = legacy_referral(store, erased, [None, f"{erased} sleeps at the shelter"])
    other = legacy_referral(store, kept, [None, "Asked for a Spanish speaker"])
    keys.erase(erased)  # intake destroyed the key; referral has not heard of the erasure yet

    assert await one_pass(ctx, store) == [False]

    assert [(h["note"], h["note_sealed"]) for h in store.loop.history[:2]] == [(None, None), (None, None)]
    assert await shown(ctx, store, gone) == [None, None]
    assert await shown(ctx, store, other) == [None, "Asked for a Spanish speaker"]
    assert store.loop.history[3]["note_sealed"] is not None
    assert store.erasure.erased == {}  # the erasure itself is PatientErased's to record


async def test_while_intake_cannot_answer_the_round_ends_changing_nothing_and_goes_on_later(
    ctx, store, keys, logged
):
    ctx = replace(ctx, seal_batch_size=1)
    patients = [uuid.uuid4() for _ in range(3)]
    for i, patient in enumerate(patients):
        legacy_referral(store, patient, [f"Note {i} about {patient}"])
    assert await one_pass(ctx, store, most=1) == [True]  # the first batch, then intake goes away
    reached = ctx.notes_in_the_clear.after
    history = copy.deepcopy(store.loop.history)
    keys.down = True

    assert await one_pass(ctx, store) == [False]

    assert store.loop.history == history
    assert ctx.notes_in_the_clear.after == reached  # the next tick goes on from there
    [(warning, fields)] = said(logged, "warning")
    assert "intake" in warning and fields == {}
    keys.down = False
    keys.asked.clear()
    assert await one_pass(ctx, store) == [True, True, False]
    assert in_the_clear(store) == []
    assert keys.asked[0][1] == patients[1]  # not asked again for the note sealed before


async def test_a_batch_made_only_of_notes_whose_patient_intake_does_not_know_does_not_spin(
    ctx, store, keys, logged
):
    ctx = replace(ctx, seal_batch_size=2)
    strangers = [uuid.uuid4(), uuid.uuid4()]
    keys.unknown.update(strangers)  # intake answers 404 for them
    legacy_referral(store, strangers[0], ["Left a message", "Called back"])
    legacy_referral(store, strangers[1], ["No answer"])
    known = legacy_referral(store, uuid.uuid4(), ["Seen at home"])

    assert await one_pass(ctx, store) == [True, True, False]  # past them, to the note it can seal

    assert in_the_clear(store) == ["Left a message", "Called back", "No answer"]
    assert store.loop.history[-1]["note_sealed"] is not None
    assert await shown(ctx, store, known) == ["Seen at home"]
    assert [k for k in keys.asked if k[1] in strangers] == [(HOME, strangers[0]), (HOME, strangers[1])]
    assert said(logged, "warning") == [
        ("history notes left in the clear: intake knows not their patient", {"count": 3})
    ]
    assert said(logged, "info") == []  # not every note is sealed

    # The next tick tries them again, once each, and ends; the same count is not said again.
    assert await one_pass(ctx, store) == [True, False]
    assert in_the_clear(store) == ["Left a message", "Called back", "No answer"]
    assert len(said(logged, "warning")) == 1
    text = repr(logged.calls)
    assert not any(str(s) in text for s in strangers) and "message" not in text


async def test_notes_another_transaction_holds_are_passed_over_and_sealed_on_the_next_pass(
    ctx, store, logged
):
    ctx = replace(ctx, seal_batch_size=2)
    patient = uuid.uuid4()
    referral = legacy_referral(store, patient, ["First", "Second", "Third"])
    store.erasure.held.add(1)  # a replica sealing it, or the patient's erasure blanking it

    assert await one_pass(ctx, store) == [True, False]
    assert in_the_clear(store) == ["First"]
    assert said(logged, "info") == [] and said(logged, "warning") == []  # being handled elsewhere

    store.erasure.held.clear()
    assert await one_pass(ctx, store) == [False]
    assert in_the_clear(store) == []
    assert await shown(ctx, store, referral) == ["First", "Second", "Third"]
    assert said(logged, "info") == [("every note of the referrals' history is sealed", {})]
