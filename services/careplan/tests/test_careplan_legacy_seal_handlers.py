"""The care team's free text written before sealing, sealed in the background, on the in-memory store with
intake's keys faked: sealed as new rows are (the read path opens them to the same text), an erased
patient's blanked, nothing changed while intake cannot answer, and rows it cannot seal never keep a round
from ending."""

import dataclasses
import json
import uuid
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from careloop_shared.testing.fakes import run_step
from careplan.team.handlers import seal_free_text_in_the_clear
from careplan.team.sealed import ERASED_DETAILS, contribution_shown, member_shown, seal_details

AGENCY, MANAGER, ANA = "agency-a", "care-manager", "cm-ana"
BEFORE = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)  # when the legacy rows were written (and last changed)
TEXTS = ("Wilhelmina", "Okafor", "+1 555 0199", "wil@old.example", "leaves the stove on")
MOST_ROUNDS = 20  # a round needs a few batches here; more means it spins


@pytest.fixture
def ctx(ctx):
    """Two rows a batch, so a few rows take several."""
    return dataclasses.replace(ctx, seal_batch_size=2)


def member_before(
    store, patient_id: uuid.UUID, name: str, contact: str | None, *, member_id: uuid.UUID | None = None
) -> uuid.UUID:
    """A member as careplan kept them before sealing: name and contact in the clear."""
    member_id = member_id or uuid.uuid4()
    store.team.care_team_members[member_id] = {
        "id": member_id,
        "patient_id": patient_id,
        "agency_id": AGENCY,
        "name": name,
        "relationship": "family",
        "role": "primary-support",
        "contact": contact,
        "sealed_details": None,
        "status": "active",
        "created_at": BEFORE,
        "updated_at": BEFORE,
        "created_by_subject": ANA,
        "created_by_role": MANAGER,
        "updated_by_subject": ANA,
        "updated_by_role": MANAGER,
    }
    return member_id


def contribution_before(store, member_id: uuid.UUID, note: str | None, kind: str = "note") -> uuid.UUID:
    member = store.team.care_team_members[member_id]
    contribution_id = uuid.uuid4()
    store.team.contribution_rows[contribution_id] = {
        "id": contribution_id,
        "patient_id": member["patient_id"],
        "agency_id": AGENCY,
        "member_id": member_id,
        "kind": kind,
        "goal_id": None,
        "note": note,
        "sealed_note": None,
        "preference": {"preferred_language": "es"} if kind == "preference" else None,
        "plan_version": 1,
        "created_at": BEFORE,
        "recorded_by_subject": ANA,
        "recorded_by_role": MANAGER,
    }
    return contribution_id


async def a_round(ctx, store) -> int:
    """The step run as ``periodic`` runs it on a tick: again while it says more may wait. How many
    batches the round took."""
    for batches in range(1, MOST_ROUNDS + 1):
        more, _ = await run_step(seal_free_text_in_the_clear, ctx, store)
        if not more:
            return batches
    raise AssertionError(f"the step still says more after {MOST_ROUNDS} batches")


async def read_back(ctx, store, patient_id: uuid.UUID) -> tuple[list[dict], list[dict]]:
    """The patient's team and contributions as the API's read path shows them."""
    team = [await member_shown(ctx.keys, AGENCY, m) for m in await store.team.care_team(AGENCY, patient_id)]
    notes = [
        await contribution_shown(ctx.keys, AGENCY, patient_id, c)
        for c in await store.team.contributions(AGENCY, patient_id, 50, 0)
    ]
    return team, notes


def as_stored(store) -> str:
    """Every member and contribution row, as text."""
    rows = [*store.team.care_team_members.values(), *store.team.contribution_rows.values()]
    return json.dumps(rows, default=str)


def clear_text(store) -> list[str]:
    """Which of the legacy texts any stored row still holds readable."""
    return [t for t in TEXTS if t in as_stored(store)]


async def test_rows_written_before_sealing_are_sealed_as_new_rows_are_and_read_alike(ctx, store, keys):
    ada, bo = uuid.uuid4(), uuid.uuid4()
    wil = member_before(store, ada, "Wilhelmina Okafor", "+1 555 0199")
    member_before(store, ada, "Okafor Jr", None)
    other = member_before(store, bo, "Someone", "wil@old.example")
    note = contribution_before(store, wil, "leaves the stove on")
    contribution_before(store, other, "Okafor drives")
    preference = contribution_before(store, other, None, kind="preference")
    added = member_before(store, bo, "", None)  # as add_member writes one now: sealed, nothing in the clear
    details = {"name": "Sealed Already", "contact": "sealed@x"}
    sealed = await seal_details(keys, AGENCY, bo, added, details)
    store.team.care_team_members[added].update(name=None, sealed_details=sealed)
    sealed_already = dict(store.team.care_team_members[added])
    before = {p: await read_back(ctx, store, p) for p in (ada, bo)}
    assert sorted(m["name"] for m in before[ada][0]) == ["Okafor Jr", "Wilhelmina Okafor"]  # as they are

    assert await a_round(ctx, store) == 3  # members 2, then 1 and notes 2, then notes 0: the round ends

    assert clear_text(store) == []
    for row in store.team.care_team_members.values():
        assert (row["name"], row["contact"]) == (None, None)
        assert row["sealed_details"]["kid"] == keys.keys[row["patient_id"]].kid
        assert row["updated_at"] == BEFORE  # the text did not change
    assert store.team.contribution_rows[note]["sealed_note"]["kid"] == keys.keys[ada].kid
    assert store.team.contribution_rows[preference]["sealed_note"] is None  # no note, nothing to seal
    assert store.team.care_team_members[added] == sealed_already
    for patient_id, shown in before.items():
        assert await read_back(ctx, store, patient_id) == shown
    assert await store.team.count_in_the_clear() == 0
    # Once sealed, a round finds nothing: one batch per table, and nothing changes.
    sealed = as_stored(store)
    assert await a_round(ctx, store) == 1
    assert as_stored(store) == sealed


async def test_an_erased_patients_text_is_blanked_as_erasure_leaves_it(ctx, store, keys):
    erased, kept = uuid.uuid4(), uuid.uuid4()
    gone = member_before(store, erased, "Wilhelmina Okafor", "+1 555 0199")
    note = contribution_before(store, gone, "leaves the stove on")
    stays = member_before(store, kept, "Okafor Jr", None)
    keys.erase(erased)

    with capture_logs() as logs:
        await a_round(ctx, store)

    row = store.team.care_team_members[gone]
    assert (row["name"], row["contact"], row["sealed_details"]) == ("", None, None)
    assert store.team.contribution_rows[note]["note"] is None
    assert store.team.contribution_rows[note]["sealed_note"] is None
    assert clear_text(store) == []
    [member], [contribution] = await read_back(ctx, store, erased)
    assert {k: member[k] for k in ERASED_DETAILS} == ERASED_DETAILS and contribution["note"] is None
    assert store.team.care_team_members[stays]["sealed_details"] is not None
    assert [(e["sealed"], e["blanked"]) for e in logs if e["event"] == "free text in the clear sealed"] == [
        (1, 2)
    ]
    assert str(erased) not in json.dumps(logs, default=str)


async def test_while_intake_cannot_answer_the_round_ends_with_nothing_changed_and_one_warning(
    ctx, store, keys
):
    patient_id = uuid.uuid4()
    wil = member_before(store, patient_id, "Wilhelmina Okafor", "+1 555 0199")
    contribution_before(store, wil, "leaves the stove on")
    before = as_stored(store)
    keys.down = True

    with capture_logs() as logs:
        assert await a_round(ctx, store) == 1
        assert await a_round(ctx, store) == 1  # the next tick: still down

    assert as_stored(store) == before
    assert [e["log_level"] for e in logs] == ["warning"]
    assert "intake" in logs[0]["event"] and not any(t in json.dumps(logs) for t in TEXTS)
    keys.down = False
    await a_round(ctx, store)
    assert clear_text(store) == []
    assert (await read_back(ctx, store, patient_id))[0][0]["name"] == "Wilhelmina Okafor"


async def test_a_batch_made_only_of_rows_it_cannot_seal_does_not_keep_the_round_from_ending(ctx, store, keys):
    unknown, known = uuid.uuid4(), uuid.uuid4()
    first, second, later = (uuid.UUID(int=n) for n in (1, 2, 3))  # the unknown patient's come first
    member_before(store, unknown, "Wilhelmina Okafor", "+1 555 0199", member_id=first)
    member_before(store, unknown, "Okafor Jr", None, member_id=second)
    member_before(store, known, "Someone", "wil@old.example", member_id=later)
    keys.unknown.add(unknown)

    with capture_logs() as logs:
        assert await a_round(ctx, store) == 2  # a full batch it could not seal, then the rest
        assert await a_round(ctx, store) == 2  # the next tick tries them again, and ends again

    members = store.team.care_team_members
    assert [members[m]["name"] for m in (first, second)] == ["Wilhelmina Okafor", "Okafor Jr"]
    assert members[later]["sealed_details"] is not None and members[later]["contact"] is None
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["rows"], "intake" in e["event"]) for e in warnings] == [(2, True)]  # told once
    assert not any("every" in e["event"] for e in logs)


async def test_the_keys_are_asked_before_the_rows_are_locked(ctx, store, keys, monkeypatch):
    """No row is held while intake is asked: the batch's keys first, then the lock, then no more asking."""
    for n in range(3):
        contribution_before(store, member_before(store, uuid.uuid4(), f"Member {n}", None), f"note {n}")
    happened: list[str] = []
    asked, locked = keys.key, store.team.lock_in_the_clear

    async def key(agency_id, patient_id):
        happened.append("key")
        return await asked(agency_id, patient_id)

    async def lock(table, ids):
        happened.append(f"lock {len(ids)}")
        return await locked(table, ids)

    monkeypatch.setattr(keys, "key", key)
    monkeypatch.setattr(store.team, "lock_in_the_clear", lock)
    await a_round(ctx, store)
    # members 2 + 1, notes 2 + 1, each batch's distinct patients asked once, before its lock
    assert happened == ["key", "key", "lock 2", "key", "lock 1", "key", "key", "lock 2", "key", "lock 1"]
    assert clear_text(store) == [] and await store.team.count_in_the_clear() == 0


async def test_rows_a_request_holds_are_passed_over_then_sealed_and_none_left_is_said_once(ctx, store):
    patient_id = uuid.uuid4()
    held = member_before(store, patient_id, "Wilhelmina Okafor", "+1 555 0199")
    member_before(store, patient_id, "Okafor Jr", None)
    store.team.held.add(held)

    with capture_logs() as logs:
        await a_round(ctx, store)
        assert store.team.care_team_members[held]["name"] == "Wilhelmina Okafor"
        assert not any("every" in e["event"] for e in logs)
        store.team.held.clear()
        await a_round(ctx, store)
        await a_round(ctx, store)

    assert clear_text(store) == []
    assert [e["event"] for e in logs if "every" in e["event"]] == [
        "every care team member's details and every note are sealed"
    ]
