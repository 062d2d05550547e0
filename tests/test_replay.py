"""Analytics replay: an events table rebuilt from the topics, from the beginning, once per event."""

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from careloop_cli.replay import replay
from careloop_shared.contracts import PatientRegistered
from careloop_shared.events import new_message
from careloop_shared.kafka import ensure_topics
from careloop_shared.testing import publish_message, publish_raw
from tests.conftest import new_prefix

pytestmark = pytest.mark.integration


async def test_replay_rebuilds_the_events_table_once_per_event(infra, database_factory):
    prefix = new_prefix()
    topic = f"{prefix}{PatientRegistered.type}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=3)
    messages = [
        new_message(
            PatientRegistered(
                patient_id=uuid.uuid4(),
                agency_id="agency-a",
                preferred_language="en",
                registered_at=datetime.now(UTC),
            )
        )
        for _ in range(5)
    ]
    for message in messages:
        await publish_message(infra.bootstrap_servers, topic, message)
    await publish_message(infra.bootstrap_servers, topic, messages[0])  # a duplicate on the topic
    await publish_raw(infra.bootstrap_servers, topic, b"not an event", key=b"x")

    dsn = await database_factory("analytics")
    first = await replay(infra.bootstrap_servers, dsn, topic_prefix=prefix)
    again = await replay(infra.bootstrap_servers, dsn, topic_prefix=prefix)
    assert first == again == {"read": 7, "stored": 6, "skipped": 1}
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id, event_type, patient_id, data FROM careloop_events")
    finally:
        await conn.close()
    assert {r["event_id"] for r in rows} == {m.envelope.id for m in messages}
    assert all(r["event_type"] == PatientRegistered.type for r in rows)
    assert {str(r["patient_id"]) for r in rows} == {m.key for m in messages}


async def test_replay_skips_an_event_with_a_value_no_service_keeps_and_stores_the_rest(
    infra, database_factory
):
    prefix = new_prefix()
    topic = f"{prefix}{PatientRegistered.type}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)

    def registered(agency: str):
        event = PatientRegistered(
            patient_id=uuid.uuid4(),
            agency_id=agency,
            preferred_language="en",
            registered_at=datetime.now(UTC),
        )
        return new_message(event)

    kept, hostile = registered("agency-a"), registered("agency-\x00a")  # PostgreSQL keeps no NUL
    for message in (kept, hostile, registered("agency-b")):
        await publish_message(infra.bootstrap_servers, topic, message)
    dsn = await database_factory("analytics_hostile")
    assert await replay(infra.bootstrap_servers, dsn, topic_prefix=prefix) == {
        "read": 3,
        "stored": 2,
        "skipped": 1,
    }
    conn = await asyncpg.connect(dsn)
    try:
        agencies = {r["agency_id"] for r in await conn.fetch("SELECT agency_id FROM careloop_events")}
    finally:
        await conn.close()
    assert agencies == {"agency-a", "agency-b"}
