"""``careloop sink``: every careloop event topic, from the beginning, into the analytics DuckDB file.

No consumer group: the file keeps the last offset read of each partition, written in the same
transaction as the rows of the batch, and on start each partition is sought to that offset + 1 (the
beginning when none). A kill at any moment therefore neither loses nor repeats a row.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from careloop_cli.analytics import store
from careloop_shared import contracts  # noqa: F401 - registers every event type
from careloop_shared.events import REGISTRY, UndecodableEvent, decode
from careloop_shared.kafka import Kafka, connection, topic_partitions
from careloop_shared.logging import get_logger

log = get_logger(__name__)


@dataclass
class SinkCounts:
    read: int = 0  # records taken from the topics
    stored: int = 0  # new rows
    duplicates: int = 0  # events already in the file (the same ce_id twice on a topic)
    skipped: int = 0  # records that are not careloop events


def event_topics(prefix: str = "") -> list[str]:
    """Every event topic: one per registered event type, named after it."""
    return [f"{prefix}{event_type}" for event_type in sorted(REGISTRY)]


async def _existing_partitions(kafka: Kafka, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**connection(kafka), client_id="careloop-sink")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    present = [t for t in topics if t in existing]
    return await topic_partitions(kafka, present) if present else []


def _add(batch: store.Batch, record: ConsumerRecord[bytes, bytes]) -> None:
    position = (record.topic, record.partition, record.offset)
    batch.offsets[(record.topic, record.partition)] = record.offset
    try:
        received = decode(
            record.value, record.headers, topic=record.topic, partition=record.partition, offset=record.offset
        )
    except UndecodableEvent as exc:
        batch.skipped.append((*position, str(exc)))  # the reason names no values
        return
    except ValidationError:
        batch.skipped.append((*position, "body does not fit the event's schema"))
        return
    batch.rows.append(
        store.event_row(
            received.envelope,
            received.event,
            received.body,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
    )


class Sink:
    """Reads the assigned partitions and writes them to the file batch by batch."""

    def __init__(self, kafka: Kafka, db: str, *, topic_prefix: str, batch_size: int, flush_s: float) -> None:
        self.kafka, self.db, self.topics = kafka, db, event_topics(topic_prefix)
        self.batch_size, self.flush_s = max(1, batch_size), flush_s
        self.counts = SinkCounts()
        self.consumer = AIOKafkaConsumer(
            **connection(kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            client_id="careloop-sink",
        )
        self.assigned: set[TopicPartition] = set()
        self.last: dict[tuple[str, int], int] = {}  # as stored in the file

    async def assign(self) -> bool:
        """Assign every partition of the event topics that exist now; True when that changed anything."""
        partitions = set(await _existing_partitions(self.kafka, self.topics))
        if partitions == self.assigned:
            return False
        self.consumer.assign(list(partitions))
        for tp in partitions:
            stored = self.last.get((tp.topic, tp.partition))
            if stored is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, stored + 1)
        self.assigned = partitions
        return True

    async def flush(self, batch: store.Batch) -> None:
        if not batch.offsets:
            return
        new = await asyncio.to_thread(self._write, batch)  # may wait for a reader to let the file go
        self.last.update(batch.offsets)
        self.counts.stored += new
        self.counts.duplicates += len(batch.rows) - new
        self.counts.skipped += len(batch.skipped)

    def _write(self, batch: store.Batch) -> int:
        with store.opened(self.db) as con:
            return store.write(con, batch)

    async def caught_up(self, end: dict[TopicPartition, int]) -> bool:
        for tp, offset in end.items():
            if await self.consumer.position(tp) < offset:
                return False
        return True

    async def run(self, stop: asyncio.Event, *, until_caught_up: bool, refresh_s: float) -> SinkCounts:
        with store.opened(self.db) as con:
            store.create_schema(con)
            self.last = store.stored_offsets(con)
        await self.consumer.start()
        try:
            await self.assign()
            end = await self.consumer.end_offsets(list(self.assigned)) if self.assigned else {}
            batch, started, refreshed = store.Batch(), time.monotonic(), time.monotonic()
            while not stop.is_set():
                fetched = (
                    await self.consumer.getmany(timeout_ms=200, max_records=self.batch_size - len(batch))
                    if self.assigned
                    else {}
                )
                for records in fetched.values():
                    for record in records:
                        self.counts.read += 1
                        _add(batch, record)
                done = until_caught_up and await self.caught_up(end)
                if len(batch) >= self.batch_size or time.monotonic() - started >= self.flush_s or done:
                    await self.flush(batch)
                    batch, started = store.Batch(), time.monotonic()
                if done:
                    break
                if not until_caught_up and time.monotonic() - refreshed >= refresh_s:
                    await self.flush(
                        batch
                    )  # positions must match the file before partitions are assigned again
                    batch, started, refreshed = store.Batch(), time.monotonic(), time.monotonic()
                    if await self.assign():
                        log.info("analytics sink assigned partitions", partitions=len(self.assigned))
                if not self.assigned:
                    await asyncio.sleep(0.2)
            await self.flush(batch)
        finally:
            await self.consumer.stop()
        return self.counts


async def run_sink(
    kafka: Kafka,
    db: str,
    *,
    topic_prefix: str = "",
    until_caught_up: bool = False,
    batch_size: int = 2000,
    flush_s: float = 1.0,
    refresh_s: float = 30.0,
    stop: asyncio.Event | None = None,
) -> SinkCounts:
    """Until ``stop`` is set, or with ``until_caught_up`` until every partition reached the end it had
    at start. ``kafka``: ``careloop_shared.kafka.client_options(settings)``, or a plaintext bootstrap list."""
    sink = Sink(kafka, db, topic_prefix=topic_prefix, batch_size=batch_size, flush_s=flush_s)
    counts = await sink.run(stop or asyncio.Event(), until_caught_up=until_caught_up, refresh_s=refresh_s)
    log.info("analytics sink stopped", read=counts.read, stored=counts.stored, skipped=counts.skipped)
    return counts


async def serve(kafka: Kafka, db: str, **options: Any) -> SinkCounts:
    """``run_sink`` until SIGTERM or SIGINT: the batch read so far is written, then it stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return await run_sink(kafka, db, stop=stop, **options)
