"""``db.probed``: a batch's keys looked up one by one by index, however many keys and whatever the planner
knows of the table (real database)."""

from __future__ import annotations

import uuid

import pytest

from careloop_shared import db
from careloop_shared.testing.batches import scans, without_statistics

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_factory):
    pool = await db.create_pool(await database_factory("probed"), min_size=1, max_size=1)
    await pool.execute(
        "CREATE TABLE visits (id uuid PRIMARY KEY, patient_id uuid NOT NULL, kind text NOT NULL);"
        " CREATE INDEX visits_patient ON visits (patient_id)"
    )
    yield pool
    await pool.close()


async def test_each_keys_rows_by_index_in_a_big_table_never_analyzed(pool):
    await without_statistics(pool, "visits")
    patients = [uuid.uuid4() for _ in range(5000)]
    await pool.execute(
        "INSERT INTO visits SELECT gen_random_uuid(), p, k FROM unnest($1::uuid[]) AS p,"
        " unnest(ARRAY['home', 'phone']) AS k",
        patients,
    )
    await without_statistics(pool, "visits")  # still, with the rows in
    asked = [*patients[:300], uuid.uuid4()]  # one patient without visits
    every = db.probed("visits", "patient_id", select="patient_id, kind")
    homes = db.probed("visits", "patient_id", select="patient_id", where="kind = 'home'")
    async with pool.acquire() as conn:
        for sql in (every, homes):
            read = await scans(conn, sql, asked)
            assert {node for node, _ in read} <= {"Index Scan", "Bitmap Heap Scan", "Function Scan"}, read
        found = await conn.fetch(every, asked)
        assert sorted((r["patient_id"], r["kind"]) for r in found) == sorted(
            (p, k) for p in asked[:300] for k in ("home", "phone")
        )
        assert sorted(r["patient_id"] for r in await conn.fetch(homes, asked)) == sorted(asked[:300])
    # Written as = ANY, the same look-up reads the whole table.
    async with pool.acquire() as conn:
        read = await scans(conn, "SELECT * FROM visits WHERE patient_id = ANY($1::uuid[])", asked)
    assert read == {("Seq Scan", "visits")}


def test_names_are_checked():
    with pytest.raises(ValueError):
        db.probed("visits; DROP TABLE visits", "patient_id")
    with pytest.raises(ValueError):
        db.probed("visits", "patient_id = patient_id OR true")
