"""Outcome notes recorded before notes were sealed, on the real database with intake's keys faked: the
background step leaves no note in the clear in the table, reads show the same text, an erased patient's
notes are blanked, two replicas' steps take disjoint rows, and the running service seals them on its own."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import followup
from careloop_shared import db
from careloop_shared.auth import issue_token
from careloop_shared.db import insert_row
from careloop_shared.outbox import unit_of_work
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import eventually, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from followup.config import FollowupContext, FollowupSettings
from followup.domain.scheduling import new_follow_up
from followup.main import build_app
from followup.notes import NotesInTheClear, opened_notes
from followup.sealing.handlers import seal_notes_in_the_clear
from followup.store import FollowupStore

pytestmark = pytest.mark.integration

AGENCY = "agency-a"
MIGRATIONS = [
    *db.kernel_migrations(),
    *db.folder_migrations("followup", Path(followup.__file__).parent / "migrations"),
]
BEFORE_SEALING = [m for m in MIGRATIONS if not m[0].startswith("followup/") or m[0] < "followup/008"]
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
RECORDED = datetime(2025, 3, 3, 15, 30, tzinfo=UTC)


def canary(i: int) -> str:
    """A note only this test writes."""
    return f"Quillfeather-{i} said the landlord at {i} Elm St changed the locks"


async def written_before_sealing(
    url: str, ctx: FollowupContext, patients: list[uuid.UUID], notes_each: int
) -> dict[uuid.UUID, dict[str, Any]]:
    """followup's database as it was before 008, each patient's follow-ups with a note in the clear:
    follow-up id -> its row and its note."""
    pool = await db.create_pool(url, min_size=1, max_size=2)
    kept: dict[uuid.UUID, dict[str, Any]] = {}
    try:
        await db.migrate(pool, BEFORE_SEALING)
        for patient in patients:
            for _ in range(notes_each):
                row = new_follow_up(
                    ctx.rules,
                    T0 - timedelta(days=7),
                    patient_id=patient,
                    agency_id=AGENCY,
                    reason="referral-check-in",
                    referral_id=uuid.uuid4(),
                    priority="high",
                    due_at=T0,
                )
                del row["purpose"]  # a column since migration 013
                await insert_row(pool, "follow_ups", {**row, "status": "completed", "completed_at": RECORDED})
                note = canary(len(kept))
                await pool.execute(
                    "INSERT INTO follow_up_outcomes (follow_up_id, attempt, reached, goal_progress, barriers,"
                    " note, recorded_by, recorded_at) VALUES ($1, 1, true, '[]', $2, $3, 'cm-old', $4)",
                    row["id"],
                    ["cost"],
                    note,
                    RECORDED,
                )
                kept[row["id"]] = {**row, "note": note}
    finally:
        await pool.close()
    return kept


async def table(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every outcome as the table holds it, with its whole row as text."""
    rows = await pool.fetch(
        "SELECT o.follow_up_id, o.note, o.note_sealed, o.recorded_at, o.barriers, o::text AS whole,"
        " f.updated_at FROM follow_up_outcomes o JOIN follow_ups f ON f.id = o.follow_up_id"
    )
    return [dict(r) for r in rows]


@dataclass
class ByHand:
    """followup's background step over a migrated database, nothing running on its own."""

    pool: asyncpg.Pool
    ctx: FollowupContext
    keys: FakePatientKeys
    legacy: dict[uuid.UUID, dict[str, Any]]

    async def seal_a_batch(self, ctx: FollowupContext | None = None) -> bool:
        async with unit_of_work(self.pool, lambda t: t, store=FollowupStore) as uow:
            return await seal_notes_in_the_clear(ctx or self.ctx, uow)

    async def shown(self, follow_up_id: uuid.UUID) -> list[str | None]:
        """The follow-up's notes through the read path the API uses."""
        store = FollowupStore(self.pool)
        follow_up = await store.get_follow_up(AGENCY, follow_up_id)
        return await opened_notes(self.keys, follow_up, await store.list_outcomes(follow_up_id))


@pytest_asyncio.fixture
async def by_hand(database_factory):
    url = await database_factory("followup_sealing")
    keys = FakePatientKeys()
    ctx = FollowupContext.from_settings(FollowupSettings(seal_batch_size=4), keys=keys)
    legacy = await written_before_sealing(url, ctx, [uuid.uuid4() for _ in range(5)], notes_each=2)
    pool = await db.create_pool(url, min_size=1, max_size=4)
    await db.migrate(pool, MIGRATIONS)  # 008 and 009 now, as a service starting with this change would
    yield ByHand(pool, ctx, keys, legacy)
    await pool.close()


async def test_the_step_seals_every_note_in_the_clear_and_reads_show_the_same_text(by_hand):
    s = by_hand
    before = {r["follow_up_id"]: r for r in await table(s.pool)}
    erased = next(iter(s.legacy.values()))["patient_id"]
    s.keys.erase(erased)  # intake erased them; followup has not heard yet

    rounds = 1
    while await s.seal_a_batch():
        rounds += 1
    assert rounds == 3  # ten notes, four a batch

    after = await table(s.pool)
    assert await s.pool.fetchval("SELECT count(*) FROM follow_up_outcomes WHERE note IS NOT NULL") == 0
    assert not any("Quillfeather" in r["whole"] or "Elm St" in r["whole"] for r in after)
    for row in after:
        legacy = s.legacy[row["follow_up_id"]]
        was = before[row["follow_up_id"]]
        assert (row["recorded_at"], row["barriers"], row["updated_at"]) == (
            was["recorded_at"],
            was["barriers"],
            was["updated_at"],
        )  # nothing but the note changed
        if legacy["patient_id"] == erased:
            assert (row["note"], row["note_sealed"]) == (None, None)  # blanked, as erasure does
            assert await s.shown(row["follow_up_id"]) == [None]
        else:
            assert row["note_sealed"]["kid"] == f"{legacy['patient_id']}/1"
            assert await s.shown(row["follow_up_id"]) == [legacy["note"]]
    assert await s.seal_a_batch() is False and s.ctx.in_the_clear.remain is False


async def test_two_replicas_steps_at_once_take_disjoint_rows(by_hand):
    s = by_hand
    one, other = (replace(s.ctx, in_the_clear=NotesInTheClear()) for _ in range(2))
    taken: list[set[uuid.UUID]] = []

    async def step(ctx: FollowupContext, uow: Any) -> bool:
        rows = uow.store.sealing.in_the_clear

        async def noted(limit: int, after: Any) -> Any:
            found = await rows(limit, after)
            taken.append({r["follow_up_id"] for r in found})
            return found

        uow.store.sealing.in_the_clear = noted
        return await seal_notes_in_the_clear(ctx, uow)

    async with unit_of_work(s.pool, lambda t: t, store=FollowupStore) as first:
        assert await step(one, first) is True  # holds its four until it commits
        async with unit_of_work(s.pool, lambda t: t, store=FollowupStore) as second:
            assert await asyncio.wait_for(step(other, second), timeout=10) is True  # not waiting on it
    assert [len(t) for t in taken] == [4, 4] and not taken[0] & taken[1]
    sealed = {r["follow_up_id"] for r in await table(s.pool) if r["note_sealed"] is not None}
    assert sealed == taken[0] | taken[1]

    while await s.seal_a_batch(one) or await s.seal_a_batch(other):
        pass
    assert await s.pool.fetchval("SELECT count(*) FROM follow_up_outcomes WHERE note IS NOT NULL") == 0
    for follow_up_id, legacy in s.legacy.items():
        assert await s.shown(follow_up_id) == [legacy["note"]]


@pytest_asyncio.fixture(scope="module")
async def service(infra, database_factory, make_settings):
    url = await database_factory("followup_sealing_service")
    keys = FakePatientKeys()
    settings = make_settings(
        infra.bootstrap_servers, url, unique_prefix(), seal_tick_s=0.1, seal_batch_size=3
    )
    ctx = FollowupContext.from_settings(settings, keys=keys)
    legacy = await written_before_sealing(url, ctx, [uuid.uuid4() for _ in range(4)], notes_each=2)
    app = build_app(settings, FakeClock(T0), keys=keys)
    async with served(app, "http://followup") as (c, runtime):
        yield c, runtime, legacy


async def test_the_running_service_seals_the_notes_in_the_background_and_the_api_reads_them(service):
    client, runtime, legacy = service

    async def none_in_the_clear() -> bool:
        left = await runtime.pool.fetchval("SELECT count(*) FROM follow_up_outcomes WHERE note IS NOT NULL")
        return bool(left == 0)

    await eventually(none_in_the_clear, timeout=30, what="every note sealed")
    assert not any("Quillfeather" in r["whole"] for r in await table(runtime.pool))
    token = issue_token(DEV_JWT_SECRET, agency=AGENCY, role="care-manager", subject="cm-ana")
    for follow_up_id, row in legacy.items():
        r = await client.get(f"/v1/follow-ups/{follow_up_id}", headers={"Authorization": "Bearer " + token})
        assert r.status_code == 200, r.text
        assert [o["note"] for o in r.json()["outcomes"]] == [row["note"]]
