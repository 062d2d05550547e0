"""Outcome notes recorded before notes were sealed, sealed by the background step on the in-memory store
with intake's keys faked: read back the same through the read path, an erased patient's blanked, nothing
changed while intake cannot answer, and a batch of notes it cannot seal passed over, never spun on."""

import copy
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog

from careloop_shared.testing.fakes import assert_fake_matches, run, run_step
from followup import handlers
from followup.domain.commands import RecordOutcome
from followup.domain.scheduling import new_follow_up
from followup.notes import opened_notes
from followup.sealing.handlers import seal_notes_in_the_clear
from followup.sealing.store import SealingStore

AGENCY = "agency-a"
RECORDED = datetime(2025, 3, 3, 15, 30, tzinfo=UTC)
OLD_NOTES = (
    "Zebedee's daughter Marisol drives him to the food bank",
    "Oyelaran missed dialysis: her ride from 4 Birch Rd fell through",
    "Quillfeather's pharmacy on Main St stopped filling his insulin",
)


async def follow_up(ctx, store, patient=None):
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


async def noted_before_sealing(ctx, store, note, patient=None):
    """A follow-up with an outcome recorded before notes were sealed: its note in the clear."""
    row = await follow_up(ctx, store, patient)
    await store.insert_outcome(
        {
            "follow_up_id": row["id"],
            "attempt": 1,
            "reached": True,
            "goal_progress": [],
            "barriers": ["transport"],
            "next_step": None,
            "note": note,
            "recorded_by": "cm-old",
            "recorded_by_role": "care-manager",
            "recorded_at": RECORDED,
        }
    )
    return row


async def shown(ctx, store, row):
    """The follow-up's notes as the API's read path shows them."""
    kept = await store.get_follow_up(AGENCY, row["id"])
    return await opened_notes(ctx.keys, kept, await store.list_outcomes(row["id"]))


async def walk(ctx, store):
    """Rounds of the step as ``periodic`` runs them, at once again while it says more may wait."""
    rounds, more = 0, True
    while more:
        rounds += 1
        assert rounds <= 10, "the step keeps saying more waits"
        more, _ = await run_step(seal_notes_in_the_clear, ctx, store)
    return rounds


def spy(method, name, marks, keys):
    """``method`` noting, when called, how many keys had been asked of intake by then."""

    async def noted(*args):
        marks.append((name, len(keys.asked)))
        return await method(*args)

    return noted


def test_the_fake_sealing_store_answers_like_the_real_one(store):
    assert_fake_matches(SealingStore, type(store.sealing))


async def test_notes_recorded_before_sealing_are_sealed_in_batches_and_read_back_the_same(ctx, store, keys):
    ctx = replace(ctx, seal_batch_size=2)
    patient = uuid.uuid4()
    legacy = [await noted_before_sealing(ctx, store, note, patient) for note in OLD_NOTES[:2]]
    legacy.append(await noted_before_sealing(ctx, store, OLD_NOTES[2]))
    recent = await follow_up(ctx, store)
    command = RecordOutcome(AGENCY, recent["id"], "cm-ana", "care-manager", reached=True, note="Kept sealed")
    await run(handlers.record_outcome, ctx, store, command)
    sealed_already = copy.deepcopy(store.outcomes[(recent["id"], 1)])
    before = {row["id"]: await shown(ctx, store, row) for row in legacy}
    keys.asked.clear()
    marks: list[tuple[str, int]] = []  # when rows were locked and sealed, by how many keys were asked
    for name in ("in_the_clear", "seal"):
        setattr(store.sealing, name, spy(getattr(store.sealing, name), name, marks, keys))

    with structlog.testing.capture_logs() as logs:
        more, _ = await run_step(seal_notes_in_the_clear, ctx, store)
        assert more is True  # a full batch: more may wait
        assert await walk(ctx, store) == 1
        assert await walk(ctx, store) == 1  # nothing left: one quiet round

    assert [e["event"] for e in logs if e["log_level"] == "info"] == ["every outcome note is sealed"]
    for row, note in zip(legacy, OLD_NOTES, strict=True):
        kept = store.outcomes[(row["id"], 1)]
        assert kept["note"] is None and kept["note_sealed"]["kid"] == f"{row['patient_id']}/1"
        assert note not in json.dumps(kept, default=str)
        assert (kept["recorded_at"], kept["barriers"]) == (RECORDED, ["transport"])  # nothing else changed
        assert await shown(ctx, store, row) == before[row["id"]] == [note]
    assert store.outcomes[(recent["id"], 1)] == sealed_already
    # Each batch's patients were asked of intake before its rows were locked; none new while held.
    assert [m for m, _ in marks] == ["in_the_clear", "seal", "in_the_clear", "seal", "in_the_clear"]
    ahead_from = 0
    for (_, locked), (_, sealed) in zip(marks[::2], marks[1::2], strict=False):
        assert {p for _, p in keys.asked[locked:sealed]} <= {p for _, p in keys.asked[ahead_from:locked]}
        ahead_from = sealed
    assert {p for _, p in keys.asked} == {row["patient_id"] for row in legacy}


async def test_an_erased_patient_s_notes_are_blanked_as_erasure_does_and_the_others_sealed(ctx, store, keys):
    erased = await noted_before_sealing(ctx, store, OLD_NOTES[0])
    also_erased = await noted_before_sealing(ctx, store, OLD_NOTES[1], erased["patient_id"])
    other = await noted_before_sealing(ctx, store, OLD_NOTES[2])
    keys.erase(erased["patient_id"])

    assert await walk(ctx, store) == 1

    for row in (erased, also_erased):
        kept = store.outcomes[(row["id"], 1)]
        assert (kept["note"], kept["note_sealed"], kept["reached"]) == (None, None, True)
        assert await shown(ctx, store, row) == [None]
    assert store.outcomes[(other["id"], 1)]["note_sealed"] is not None
    assert await shown(ctx, store, other) == [OLD_NOTES[2]]
    assert await store.sealing.left_in_the_clear() == 0


async def test_while_intake_cannot_answer_the_round_ends_with_nothing_changed_said_once(ctx, store, keys):
    legacy = [await noted_before_sealing(ctx, store, note) for note in OLD_NOTES]
    before = copy.deepcopy(store.outcomes)
    keys.down = True

    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert await walk(ctx, store) == 1
    assert store.outcomes == before
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and "intake" in warnings[0]["event"]
    assert not any(note in json.dumps(logs, default=str) for note in OLD_NOTES)

    keys.down = False
    assert await walk(ctx, store) == 1
    assert [await shown(ctx, store, row) for row in legacy] == [[note] for note in OLD_NOTES]


async def test_a_batch_only_of_notes_it_cannot_seal_is_passed_over_not_spun_on(ctx, store, keys):
    ctx = replace(ctx, seal_batch_size=2)
    rows = sorted([await noted_before_sealing(ctx, store, note) for note in OLD_NOTES], key=lambda r: r["id"])
    unknown = {rows[0]["patient_id"], rows[1]["patient_id"]}
    keys.unknown |= unknown  # intake answers 404 for them: the first batch is only those
    notes = {row["id"]: store.outcomes[(row["id"], 1)]["note"] for row in rows}

    with structlog.testing.capture_logs() as logs:
        assert await walk(ctx, store) == 2  # the full batch passed over, then the rest
        assert await walk(ctx, store) == 2  # the next tick walks again, and stops again

    kept = store.outcomes[(rows[2]["id"], 1)]
    assert kept["note"] is None and kept["note_sealed"] is not None
    assert await shown(ctx, store, rows[2]) == [notes[rows[2]["id"]]]
    for row in rows[:2]:  # left as they were, for a later walk
        left = store.outcomes[(row["id"], 1)]
        assert (left["note"], left.get("note_sealed")) == (notes[row["id"]], None)
    assert await store.sealing.left_in_the_clear() == 2
    # Asked once a walk, ahead of the lock, never again while rows are held.
    assert sum(p in unknown for _, p in keys.asked) == 2 * len(unknown)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(w["event"], w["notes"]) for w in warnings] == [
        ("outcome notes left in the clear: intake knows not their patient", 2)
    ]  # said once, with a count only
    assert not any(str(p) in json.dumps(logs, default=str) for p in unknown)
    assert all(e["event"] != "every outcome note is sealed" for e in logs)

    keys.unknown.clear()  # intake learned of them: the next walk seals them
    assert await walk(ctx, store) == 2
    assert await store.sealing.left_in_the_clear() == 0
    assert [await shown(ctx, store, row) for row in rows] == [[notes[row["id"]]] for row in rows]
