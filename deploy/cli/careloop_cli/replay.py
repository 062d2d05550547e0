"""Rebuild an analytics table from the Kafka topics, from the beginning.

Reads every careloop event topic from offset 0 up to the end offsets seen at start (no consumer group,
nothing committed), and upserts each event into ``careloop_events`` in the given PostgreSQL database:
one row per CloudEvent id, so running it again, or over topics that hold duplicates, adds nothing twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from careloop_shared import contracts  # noqa: F401 - registers every event type
from careloop_shared.events import REGISTRY, Event, UndecodableEvent, decode, refusal_of
from careloop_shared.kafka import Kafka, connection, topic_partitions

TABLE = """
CREATE TABLE IF NOT EXISTS careloop_events (
    event_id       uuid PRIMARY KEY,
    event_type     text        NOT NULL,
    source         text        NOT NULL,
    patient_id     uuid        NOT NULL,
    agency_id      text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    correlation_id uuid        NOT NULL,
    causation_id   uuid,
    topic          text        NOT NULL,
    partition      int         NOT NULL,
    "offset"       bigint      NOT NULL,
    data           jsonb       NOT NULL
)"""


async def _partitions(kafka: Kafka, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist."""
    admin = AIOKafkaAdminClient(**connection(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return await topic_partitions(kafka, [t for t in topics if t in existing])


async def read_to_end(
    kafka: Kafka, partitions: list[TopicPartition], *, batch: int = 1000, timeout_s: float = 600
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Each fetch's records of ``partitions``, from their first offset up to the ends seen at start (no
    consumer group, nothing committed); TimeoutError when the ends are not reached in ``timeout_s``."""
    consumer = AIOKafkaConsumer(
        **connection(kafka), enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        deadline = time.monotonic() + timeout_s
        while remaining:
            records: list[ConsumerRecord[bytes, bytes]] = []
            for tp, fetched in (
                await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch)
            ).items():
                records.extend(r for r in fetched if r.offset < end[tp])
                if fetched and fetched[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
            if records:
                yield records
            if remaining and time.monotonic() > deadline:
                raise TimeoutError(f"did not reach the end of {len(remaining)} partition(s) in time")
    finally:
        await consumer.stop()


async def _insert(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO careloop_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)"
        " ON CONFLICT (event_id) DO NOTHING",
        [(*r[:-1], json.dumps(r[-1])) for r in rows],
    )


async def replay(
    kafka: Kafka, dsn: str, *, topic_prefix: str = "", batch: int = 1000, timeout_s: float = 600
) -> dict[str, int]:
    """``kafka``: ``careloop_shared.kafka.client_options(settings)``, or a plaintext bootstrap list."""
    topics = [f"{topic_prefix}{t}" for t in sorted(REGISTRY)]
    conn = await asyncpg.connect(dsn)
    counts = {"read": 0, "stored": 0, "skipped": 0}  # stored: offered to the table; duplicates add nothing
    try:
        await conn.execute(TABLE)
        partitions = await _partitions(kafka, topics)
        if not partitions:
            return counts
        async for records in read_to_end(kafka, partitions, batch=batch, timeout_s=timeout_s):
            rows: list[tuple[Any, ...]] = []
            events: list[Event] = []
            for record in records:
                counts["read"] += 1
                try:
                    received = decode(
                        record.value,
                        record.headers,
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                except (UndecodableEvent, ValueError):
                    counts["skipped"] += 1
                    continue
                env = received.envelope
                events.append(received.event)
                rows.append(
                    (
                        env.id,
                        env.type,
                        env.source,
                        received.event.patient_id,
                        received.event.agency_id,
                        env.time,
                        env.correlation_id,
                        env.causation_id,
                        record.topic,
                        record.partition,
                        record.offset,
                        json.loads(received.body),
                    )
                )
            if rows:
                try:
                    await _insert(conn, rows)
                except asyncpg.DataError:
                    # An event with a value no careloop service keeps (text with NUL: catalogue): the batch
                    # (one statement, all or nothing) again without it, and it counted as skipped.
                    kept = [r for r, e in zip(rows, events, strict=True) if refusal_of(e) is None]
                    counts["skipped"] += len(rows) - len(kept)
                    rows = kept
                    await _insert(conn, rows)
                counts["stored"] += len(rows)
    finally:
        await conn.close()
    return counts
