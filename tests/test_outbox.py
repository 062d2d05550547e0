"""The outbox publishes what committed, in order, and nothing that rolled back."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared import db
from careloop_shared.contracts import PatientRegistered
from careloop_shared.kafka import ensure_topics
from careloop_shared.outbox import OutboxRelay, unit_of_work
from careloop_shared.testing import TopicReader, eventually, header

pytestmark = pytest.mark.integration


def _registered(patient_id: uuid.UUID) -> PatientRegistered:
    return PatientRegistered(
        patient_id=patient_id,
        agency_id="agency-a",
        preferred_language="en",
        registered_at=datetime.now(UTC),
    )


@contextlib.asynccontextmanager
async def _relay(dsn: str, bootstrap: str):
    relay = OutboxRelay(dsn, bootstrap, client_id="test", poll_interval_s=0.2)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)


async def test_rolled_back_outbox_row_is_never_published(infra, database_factory, topic_prefix):
    dsn = await database_factory("outbox")
    pool = await db.create_pool(dsn)
    await db.migrate(pool, db.kernel_migrations())
    topic = f"{topic_prefix}outbox-rollback"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)
    patient = uuid.uuid4()

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with unit_of_work(pool, lambda _: topic) as uow:
            rolled_back = uow.emit(_registered(patient))
            raise Abort
    async with unit_of_work(pool, lambda _: topic) as uow:
        committed = uow.emit(_registered(patient))

    async with _relay(dsn, infra.bootstrap_servers), TopicReader(infra.bootstrap_servers, topic) as reader:
        await reader.wait_for(lambda r: header(r, "ce_id") == str(committed.envelope.id))
        published_ids = {header(r, "ce_id") for r in reader.records}

    # Same key, same partition, published in outbox order: had it been published, it would be there.
    assert str(rolled_back.envelope.id) not in published_ids
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
    assert await _pending(pool, 0)  # published: none waits
    await pool.close()


async def _outbox(infra, database_factory, name: str, topic: str, partitions: int) -> tuple[str, db.Db]:
    """A database with the kernel's outbox, and the topic its events go to."""
    dsn = await database_factory(name)
    pool = await db.create_pool(dsn)
    await db.migrate(pool, db.kernel_migrations())
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=partitions)
    return dsn, pool


async def test_relay_keeps_one_patients_events_in_commit_order(infra, database_factory, topic_prefix):
    topic = f"{topic_prefix}outbox-order"
    dsn, pool = await _outbox(infra, database_factory, "outbox_order", topic, 3)
    patients = [uuid.uuid4() for _ in range(3)]
    emitted: dict[str, list[str]] = {str(p): [] for p in patients}
    for i in range(60):
        patient = patients[i % 3]
        async with unit_of_work(pool, lambda _: topic) as uow:
            emitted[str(patient)].append(str(uow.emit(_registered(patient)).envelope.id))

    async with _relay(dsn, infra.bootstrap_servers), TopicReader(infra.bootstrap_servers, topic) as reader:
        await eventually(lambda: _count(reader, 60), what="60 records")

    for patient, ids in emitted.items():
        seen = [header(r, "ce_id") for r in reader.records if r.key.decode() == patient]
        assert seen == ids
    await pool.close()


async def test_a_relay_cycle_of_many_patients_lands_where_kafkas_default_partitioner_puts_each_key(
    infra, database_factory, topic_prefix
):
    """The relay's own partitioner and batch size: every key still goes to the partition any other
    Kafka client's default partitioner picks for it (other producers, and consumers that read a
    patient's events in order, rely on it), and one unit of work's 400 events arrive in order."""
    from aiokafka.partitioner import DefaultPartitioner

    topic = f"{topic_prefix}outbox-partitions"
    dsn, pool = await _outbox(infra, database_factory, "outbox_partitions", topic, 6)
    patients = [uuid.uuid4() for _ in range(100)]
    emitted: dict[str, list[str]] = {str(p): [] for p in patients}
    async with unit_of_work(pool, lambda _: topic) as uow:  # one relay cycle's worth, committed at once
        for i in range(400):
            patient = patients[i % 100]
            emitted[str(patient)].append(str(uow.emit(_registered(patient)).envelope.id))

    async with _relay(dsn, infra.bootstrap_servers), TopicReader(infra.bootstrap_servers, topic) as reader:
        await eventually(lambda: _count(reader, 400), what="400 records")

    kafka_default = DefaultPartitioner()
    assert len(reader.records) == 400
    for record in reader.records:
        assert record.partition == kafka_default(record.key, list(range(6)), list(range(6)))
    for patient, ids in emitted.items():
        assert [header(r, "ce_id") for r in reader.records if r.key.decode() == patient] == ids
    assert len({r.partition for r in reader.records}) == 6
    await pool.close()


async def test_upgrading_an_outbox_keeps_what_waited(infra, database_factory, topic_prefix):
    """Upgrading a database whose relay marked rows published (kernel migrations before 007): what was
    published stays published, what waited is published by the new relay, once."""
    dsn = await database_factory("outbox_upgrade")
    pool = await db.create_pool(dsn)
    before, after = [m for m in db.kernel_migrations() if m[0] < "kernel/007"], db.kernel_migrations()
    assert len(before) < len(after)
    await db.migrate(pool, before)
    topic = f"{topic_prefix}outbox-upgrade"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)
    async with unit_of_work(pool, lambda _: topic) as uow:
        uow.emit(_registered(uuid.uuid4()))  # sent by the old relay, which marked it
    await pool.execute("UPDATE outbox SET published_at = now()")
    async with unit_of_work(pool, lambda _: topic) as uow:
        waiting = uow.emit(_registered(uuid.uuid4()))

    await db.migrate(pool, after)
    pending = await pool.fetchval(
        "SELECT array_agg(o.event_id) FROM outbox_pending JOIN outbox o USING (position)"
    )
    assert pending == [waiting.envelope.id]
    async with _relay(dsn, infra.bootstrap_servers), TopicReader(infra.bootstrap_servers, topic) as reader:
        await reader.wait_for(lambda r: header(r, "ce_id") == str(waiting.envelope.id))
        await eventually(lambda: _pending(pool, 0), what="nothing pending once it is published")
    assert [header(r, "ce_id") for r in reader.records] == [str(waiting.envelope.id)]
    await pool.close()


async def _pending(pool: db.Db, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox_pending") == n


async def _count(reader: TopicReader, n: int) -> bool:
    return len(await reader.poll()) >= n


async def test_outbox_history_is_append_only(infra, database_factory):
    pool = await db.create_pool(await database_factory("outbox_ro"))
    await db.migrate(pool, db.kernel_migrations())
    async with unit_of_work(pool, lambda t: t) as uow:
        uow.emit(_registered(uuid.uuid4()))
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("DELETE FROM outbox")
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("UPDATE outbox SET topic = 'elsewhere'")
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("UPDATE outbox SET payload = 'x'::bytea, published_at = now()")
    await pool.execute("UPDATE outbox SET published_at = now()")
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("UPDATE outbox SET published_at = now()")
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("UPDATE outbox SET published_at = NULL")
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    await pool.close()


async def _scans(pool: db.Db, table: str = "outbox") -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT seq_scan, coalesce(idx_scan, 0) AS idx_scan FROM pg_stat_user_tables WHERE relname = $1",
        table,
    )
    return row["seq_scan"], row["idx_scan"]


async def _rows_read_by_index(pool: db.Db) -> int:
    return await pool.fetchval(
        "SELECT coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'outbox'"
    )


async def test_relay_plans_for_the_outbox_it_has_not_the_one_it_started_with(
    infra, database_factory, topic_prefix
):
    """asyncpg prepares the relay's statements once per connection. A plan PostgreSQL made generic while
    the outbox was nearly empty (a sequential scan) would read the whole table every cycle once it has
    grown: on a fresh platform at 250 assessments a second that was 3,700 pages per relay cycle. Every
    cycle reads ``outbox_pending``; the outbox only for the rows pending there, whatever PostgreSQL
    believes of the pending list's size: a merge join of the two, chosen while the list's statistics
    said it was long, read the outbox from its first row every cycle (6 ms a cycle on a platform whose
    intake outbox held 24,000 rows)."""
    dsn = await database_factory("outbox_plans")
    pool = await db.create_pool(dsn)
    await db.migrate(pool, db.kernel_migrations())
    topic = f"{topic_prefix}outbox-plans"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)

    async with _relay(dsn, infra.bootstrap_servers), TopicReader(infra.bootstrap_servers, topic) as reader:
        async with unit_of_work(pool, lambda _: topic) as uow:
            uow.emit(_registered(uuid.uuid4()))
        await eventually(lambda: _count(reader, 1), what="the first record")
        # PostgreSQL settles on a generic plan after five executions of a prepared statement; the relay
        # runs its read every cycle (0.2 s here). Statistics reach the view within seconds.
        await eventually(lambda: _cycles_at_least(pool, 8), what="eight relay cycles on the small outbox")

        # The outbox grows by 20,000 rows published long ago, and PostgreSQL knows it.
        old = await pool.fetch(
            "INSERT INTO outbox (event_id, event_type, topic, key, headers, payload, published_at)"
            " SELECT gen_random_uuid(), 'Old', 'old', 'k', '{}', '\\x00', now() - interval '1 day'"
            " FROM generate_series(1, 20000) RETURNING position"
        )
        await pool.execute("ANALYZE outbox")
        # The pending list's statistics say it holds 5,000 rows (as after a burst), while it holds none:
        # autovacuum, which would correct them, is off for this table here.
        await pool.execute("ALTER TABLE outbox_pending SET (autovacuum_enabled = false)")
        async with pool.acquire() as conn, conn.transaction():
            burst = [r["position"] for r in old[:5000]]
            await conn.execute("INSERT INTO outbox_pending SELECT unnest($1::bigint[])", burst)
            await conn.execute("ANALYZE outbox_pending")
            await conn.execute("DELETE FROM outbox_pending WHERE position = ANY($1::bigint[])", burst)
        seq_before, idx_before = await _scans(pool)
        fetched_before = await _rows_read_by_index(pool)
        cycles_before = sum(await _scans(pool, "outbox_pending"))
        for _ in range(3):
            async with unit_of_work(pool, lambda _: topic) as uow:
                uow.emit(_registered(uuid.uuid4()))
        await eventually(lambda: _count(reader, 4), what="the next three records")
        # The relay's later cycles reach the statistics: the three rows were read by the outbox's index,
        # and nothing scanned the whole outbox. The old rows, written as published, never waited.
        await eventually(
            lambda: _cycles_at_least(pool, cycles_before + 8), what="eight relay cycles on the grown outbox"
        )
        seq_after, idx_after = await _scans(pool)
        assert seq_after == seq_before
        assert idx_after > idx_before
        # Three rows were pending; a cycle that walked the outbox's index from its start read 20,000.
        assert await _rows_read_by_index(pool) - fetched_before < 1000
        assert await _pending(pool, 0)
    await pool.close()


async def _cycles_at_least(pool: db.Db, n: int) -> bool:
    return sum(await _scans(pool, "outbox_pending")) >= n
