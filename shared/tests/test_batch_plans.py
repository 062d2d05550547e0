"""A consumer's batch that finds its session's plans ``db.REPLAN_EVERY_S`` old has them made again first.
The case it is for: a look-up whose generic plan was made while its table held a few dozen analyzed rows
scans the table, and keeps scanning it as it grows, until the table is analyzed again; planned again, the
look-ups probe the index, for the table as it is now."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from careloop_shared import db
from careloop_shared.contracts import PatientRegistered
from careloop_shared.testing.batches import apply_batch
from careloop_shared.testing.intake_events import registered

pytestmark = pytest.mark.integration

LOOK_UP = "SELECT id FROM looked_up WHERE id = ANY($1::uuid[])"
# How the session read the table, the counts not yet reported: whole-table scans, index scans.
SCANS = "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'looked_up'"


async def _batch(pool: Any, size: int) -> tuple[tuple[int, int], list[str]]:
    """A batch of ``size`` events, each looked up by itself: how the batch read the table (scans of all
    of it, index scans), and the statements it sent."""
    scans: list[tuple[int, int]] = []

    async def look_up(_context: Any, uow: Any, received: Any) -> None:
        scans.append(tuple(await uow.store.fetchrow(SCANS)))
        await uow.store.fetch(LOOK_UP, [received.event.patient_id])
        scans.append(tuple(await uow.store.fetchrow(SCANS)))

    events = [registered(uuid.uuid4()) for _ in range(size)]
    sent = await apply_batch(
        pool, "batch_plans", {PatientRegistered: look_up}, lambda shared: shared, None, events
    )
    # Reported only between transactions, the counts cover the batch's from its first look-up to its last.
    (seq_before, index_before), (seq_after, index_after) = scans[0], scans[-1]
    return (seq_after - seq_before, index_after - index_before), sent


async def test_a_batch_plans_again_when_its_sessions_plans_are_old(database_factory, monkeypatch):
    url = await database_factory("batch_plans")
    setup = await db.create_pool(url, min_size=1, max_size=1)
    try:
        await db.migrate(setup, db.kernel_migrations())
        await setup.execute("CREATE TABLE looked_up (id uuid PRIMARY KEY) WITH (autovacuum_enabled = false)")
        await setup.execute("INSERT INTO looked_up SELECT gen_random_uuid() FROM generate_series(1, 50)")
        await setup.execute(
            "ANALYZE looked_up"
        )  # as autovacuum's first visit finds a table after a smoke test
    finally:
        await setup.close()
    pool = await db.create_pool(url, min_size=1, max_size=1)  # one session: the plans it keeps are the test's
    try:
        monkeypatch.setattr(db, "REPLAN_EVERY_S", 3600.0)  # the session's plans are young
        _, sent = await _batch(pool, 10)  # the session settles on a plan for the look-up
        assert "DISCARD PLANS" not in sent
        await pool.execute("INSERT INTO looked_up SELECT gen_random_uuid() FROM generate_series(1, 10000)")
        young, sent = await _batch(pool, 10)
        assert "DISCARD PLANS" not in sent
        monkeypatch.setattr(db, "REPLAN_EVERY_S", 0.0)  # and now old
        old, sent = await _batch(pool, 10)
        assert sent.count("DISCARD PLANS") == 1, sent
    finally:
        await pool.close()
    # The plan kept from the table's 50 rows, run on its 10,050, reads all of it for each look-up: the case.
    assert young == (10, 0)
    assert old[0] == 0 and old[1] >= 10, old
