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
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 1
    await pool.close()


async def test_relay_keeps_one_patients_events_in_commit_order(infra, database_factory, topic_prefix):
    dsn = await database_factory("outbox_order")
    pool = await db.create_pool(dsn)
    await db.migrate(pool, db.kernel_migrations())
    topic = f"{topic_prefix}outbox-order"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=3)
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
