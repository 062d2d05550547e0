"""A consumer killed after its database commit but before its offset commit applies nothing twice."""

import uuid

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from careloop_shared.contracts import PatientAssessed
from careloop_shared.db import ALL_AGENCIES
from careloop_shared.events import new_message
from careloop_shared.failpoints import EXIT_CODE
from careloop_shared.kafka import ensure_topics
from careloop_shared.testing import ServiceProcess, eventually, publish_message
from tests.conftest import base_env, new_prefix
from tests.test_consumer_delivery import assessed

pytestmark = pytest.mark.integration


async def committed_offsets(bootstrap: str, group: str) -> dict:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()


async def test_consumer_killed_between_db_commit_and_offset_commit_applies_once(
    infra, database_factory, log_dir
):
    prefix = new_prefix()
    dsn = await database_factory("careplan_crash")
    env = {**base_env(infra, prefix), "CAREPLAN_DATABASE_URL": dsn}
    topic = f"{prefix}{PatientAssessed.type}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=6)
    patient = uuid.uuid4()
    message = new_message(assessed(patient))
    await publish_message(infra.bootstrap_servers, topic, message)

    crashing = ServiceProcess(
        "careplan", {**env, "CARELOOP_FAILPOINTS": "consumer.after_db_commit"}, log_dir
    ).start()
    try:
        assert await crashing.wait_exit(timeout=60) == EXIT_CODE, crashing.tail()
    finally:
        crashing.stop()

    # Counted for every agency, as the service's own consumer works (row-level security).
    conn = await asyncpg.connect(dsn, server_settings={"careloop.agency": ALL_AGENCIES})
    try:
        # The effects committed, the offset did not.
        assert await conn.fetchval("SELECT count(*) FROM plan_versions") == 1
        offsets = await committed_offsets(infra.bootstrap_servers, f"{prefix}careplan")
        assert all(meta.offset <= 0 for tp, meta in offsets.items() if tp.topic == topic)

        restarted = ServiceProcess("careplan", env, log_dir).start()
        try:
            await restarted.wait_ready()

            async def offset_committed() -> bool:
                offsets = await committed_offsets(infra.bootstrap_servers, f"{prefix}careplan")
                return any(meta.offset >= 1 for tp, meta in offsets.items() if tp.topic == topic)

            await eventually(offset_committed, timeout=60, what="offset committed after restart")
            # The redelivered event hit the inbox: nothing applied or emitted twice.
            assert await conn.fetchval("SELECT count(*) FROM plan_versions") == 1
            assert await conn.fetchval("SELECT count(*) FROM plans") == 1
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 1
            assert (
                await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", message.envelope.id)
                == 1
            )
        finally:
            restarted.stop()
    finally:
        await conn.close()
