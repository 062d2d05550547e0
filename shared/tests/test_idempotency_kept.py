"""Responses kept for Idempotency-Key replays: forgotten with their patient, and after the keeping period
(real database, the kernel's own table)."""

from __future__ import annotations

import uuid

import pytest

from careloop_shared import db, idempotency
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.outbox import unit_of_work

pytestmark = pytest.mark.integration

INSERT = (
    "INSERT INTO idempotency_keys (scope, key, fingerprint, patient_id, created_at, response)"
    " VALUES ($1, $2, '\\x00', $3, now() - make_interval(hours => $4), '{\"name\": \"kept\"}')"
)


@pytest.fixture
async def pool(database_factory):
    pool = await db.create_pool(await database_factory("idempotency_kept"), min_size=1, max_size=2)
    await db.migrate(pool, db.kernel_migrations())
    yield pool
    await pool.close()


async def _keys(pool) -> set[str]:
    with as_agency(ALL_AGENCIES):
        return {r["key"] for r in await pool.fetch("SELECT key FROM idempotency_keys")}


async def test_a_patients_erasure_forgets_the_responses_kept_for_their_requests_only(pool):
    erased, other = uuid.uuid4(), uuid.uuid4()
    with as_agency(ALL_AGENCIES):
        for key, patient in (("a", erased), ("b", erased), ("c", other), ("d", None)):
            await pool.execute(INSERT, "agency-a", key, patient, 1)
        async with pool.acquire() as conn:
            assert await idempotency.forget_patient(conn, erased) == 2
            assert await idempotency.forget_patient(conn, erased) == 0
    assert await _keys(pool) == {"c", "d"}


async def test_responses_older_than_the_keeping_period_are_forgotten_a_batch_at_a_time(pool, monkeypatch):
    monkeypatch.setattr(idempotency, "FORGET_BATCH", 3)
    with as_agency(ALL_AGENCIES):
        for n in range(5):
            await pool.execute(INSERT, f"agency-{n % 2}", f"old-{n}", None, 30)  # 30 hours ago
        await pool.execute(INSERT, "agency-0", "recent", None, 2)
    step = idempotency.forget_old(keep_s=24 * 3600)
    rounds = []
    with as_agency(ALL_AGENCIES):  # as the service's own background work acts
        more = True
        while more:
            async with unit_of_work(pool, lambda _: "unused") as uow:
                more = await step(None, uow)
            rounds.append(await _keys(pool))
    # Which old ones go first is the database's choice; how many, and that the recent one stays, is not.
    assert [len(r) for r in rounds] == [3, 1] and all("recent" in r for r in rounds)
    assert rounds[-1] == {"recent"}
