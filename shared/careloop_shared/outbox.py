"""Transactional outbox: state change and emitted events commit together; a relay publishes them.

The relay publishes with an idempotent producer (acks=all) in outbox order, from a single active
replica (advisory lock), so each patient's events reach their partition in the order they committed.
What waits is listed in ``outbox_pending`` (kernel migration 007): a published event's row leaves it,
the outbox row itself is never changed. A crash between publishing and that delete re-sends those
events; consumers dedupe by ce_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time as clock
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer
from murmurhash2 import murmurhash2

from careloop_shared import tracing
from careloop_shared.coalesce import SharedConnection
from careloop_shared.db import PLAN_CACHE_MODE, PlanCacheMode, connect, insert_with
from careloop_shared.events import Event, Message, ReceivedEvent, new_message
from careloop_shared.kafka import Kafka, connection
from careloop_shared.logging import get_logger
from careloop_shared.metrics import OutboxMetrics

log = get_logger(__name__)

NOTIFY_CHANNEL = "careloop_outbox"  # notified by a trigger on outbox inserts (kernel migration 003)
_RELAY_LOCK = 0x72656C61  # advisory lock id: one active relay per service database
MARK_DELAY_S = 0.05  # how long published rows may stay pending, to go with the next batch's read
BACKLOG_EVERY_S = 5.0  # how often the active relay counts what waits (careloop_outbox_backlog)

# A relay cycle's rows go out in batches of up to this many bytes per partition: aiokafka's default
# (16 KiB, about 15 events) split a cycle of 500 into dozens of produce requests: 52-62 µs of CPU an
# event against 30-42 with this. Below the broker's default message.max.bytes (1 MiB), with room to spare.
RELAY_MAX_BATCH_BYTES = 256 * 1024
_MURMUR2_SEED = 0x9747B28C  # Kafka's default partitioner: murmur2 of the key with this seed

TopicFor = Callable[[str], str]


def key_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The partition Kafka's default partitioner (Java's, aiokafka's) picks for ``key``, with murmur2 in
    compiled code: aiokafka's is Python, 15 µs a key here, about a quarter of a relayed event's CPU.
    The relay always has a key (the patient's); without one, any available partition, as Kafka's."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(murmurhash2(key, _MURMUR2_SEED) & 0x7FFFFFFF) % len(all_partitions)]


S = TypeVar("S")


class UnitOfWork(Generic[S]):
    """What a handler works with: the service's ``store`` and the events it emits, committed together.

    A handler reads and writes through ``store`` and announces with ``emit``; whoever opened the unit
    of work (the consumer, an HTTP command, a periodic step) commits both or neither.
    """

    def __init__(self, store: S, correlation_id: uuid.UUID | None = None) -> None:
        self.store = store
        self._correlation_id = correlation_id
        self.pending: list[Message] = []
        # Trace context of the consumer span handling each received event (by its id), when tracing.
        self.trace_parents: dict[uuid.UUID, str] = {}

    def emit(
        self,
        event: Event,
        *,
        caused_by: ReceivedEvent | None = None,
        event_id: uuid.UUID | None = None,
        time: datetime | None = None,
    ) -> Message:
        """Queue an event; it is written to the outbox when the unit of work commits."""
        correlation = caused_by.envelope.correlation_id if caused_by else self._correlation_id
        traceparent = self.trace_parents.get(caused_by.envelope.id) if caused_by else None
        message = new_message(
            event,
            correlation_id=correlation,
            causation_id=caused_by.envelope.id if caused_by else None,
            event_id=event_id,
            time=time,
            traceparent=traceparent or tracing.current_traceparent(),
        )
        self.pending.append(message)
        return message


class DatabaseUnitOfWork(UnitOfWork[S]):
    """A unit of work that is one PostgreSQL transaction; emitted events go to its outbox table."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        topic_for: TopicFor,
        store: S,
        correlation_id: uuid.UUID | None = None,
        shared: SharedConnection | None = None,
    ) -> None:
        super().__init__(store, correlation_id)
        self.conn = conn
        self._topic_for = topic_for
        self._shared = shared  # the store's connection: rows it keeps to insert with the outbox

    @property
    def shared(self) -> SharedConnection | None:
        """The transaction's connection as the store sees it (handlers may run side by side on it)."""
        return self._shared

    async def flush(self) -> None:
        first = self._shared.take_at_commit() if self._shared is not None else []
        if not self.pending and not first:
            return
        rows = [
            {
                "event_id": m.envelope.id,
                "event_type": m.envelope.type,
                "topic": self._topic_for(m.envelope.type),
                "key": m.key,
                "headers": m.envelope.headers(),
                "payload": m.event.body(),
            }
            for m in self.pending
        ]
        self.pending.clear()
        # A deterministic event id emitted twice is one event: the second insert is a no-op. The rows
        # take their positions in the order they were emitted.
        await insert_with(self.conn, first, "outbox", rows, conflict="(event_id) DO NOTHING")


def _no_store(_: asyncpg.Connection) -> Any:
    return None


@contextlib.asynccontextmanager
async def unit_of_work(
    pool: asyncpg.Pool,
    topic_for: TopicFor,
    correlation_id: uuid.UUID | None = None,
    *,
    store: Callable[[Any], S] = _no_store,
) -> AsyncIterator[DatabaseUnitOfWork[S]]:
    async with pool.acquire() as conn, conn.transaction():
        # Shared one statement at a time, so a use case may work on many patients side by side.
        shared = SharedConnection(conn, insert_with)
        uow = DatabaseUnitOfWork(conn, topic_for, store(shared), correlation_id, shared)
        yield uow
        await uow.flush()


class OutboxRelay:
    """Publishes committed outbox rows to Kafka in order and takes them off ``outbox_pending``."""

    def __init__(
        self,
        dsn: str,
        kafka: Kafka,
        *,
        client_id: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        plan_cache_mode: PlanCacheMode = PLAN_CACHE_MODE,
    ) -> None:
        self._dsn = dsn
        self._plan_cache_mode = plan_cache_mode
        self._kafka = kafka  # client options (careloop_shared.kafka.client_options) or a bootstrap list
        self._client_id = client_id
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._metrics = OutboxMetrics(client_id)

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until stopped, connecting again after any failure. Retries back off up to the poll
        interval, no further: a relay sleeping out a longer backoff after its database comes back holds
        what its service commits meanwhile for that long (with the 5 s cap before, 2.8 s after an outage
        of 8 s), when every consumer may have caught up."""
        first = min(0.2, self._poll_interval_s)
        backoff = first
        while not self._stopping.is_set():
            try:
                await self._run_once()
                backoff = first
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay error; retrying", exc_info=exc, retry_in_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run_once(self) -> None:
        conn = await connect(self._dsn, plan_cache_mode=self._plan_cache_mode)
        producer = AIOKafkaProducer(
            **connection(self._kafka),
            client_id=f"{self._client_id}-relay",
            enable_idempotence=True,
            acks="all",
            # A cycle's rows are appended before any is awaited, so they leave together anyway; waiting
            # for more (5 ms, before) only delayed every hop at low load.
            linger_ms=0,
            max_batch_size=RELAY_MAX_BATCH_BYTES,
            partitioner=key_partition,
            request_timeout_ms=30000,
        )
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                await self._sleep(self._poll_interval_s)
                if self._stopping.is_set():
                    return
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wakeup.set())
            await producer.start()
            await self._relay(conn, producer)
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)

    async def _relay(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> None:
        # Published but still pending: taken off by the statement that reads the next batch, or on
        # their own when nothing else comes soon (a crash before that re-sends them; consumers
        # dedupe by event id).
        sent: list[int] = []
        counted = 0.0
        try:
            while not self._stopping.is_set():
                self._wakeup.clear()
                if clock.monotonic() - counted >= BACKLOG_EVERY_S:
                    await self._count_backlog(conn, sent)
                    counted = clock.monotonic()
                sent = await self._publish_batch(conn, producer, sent)
                if len(sent) < self._batch_size:
                    if sent and not await self._woken(MARK_DELAY_S):
                        await self._mark(conn, sent)
                        sent = []
                    if not sent:
                        # Notifications only wake us up early; the poll interval is the safety net.
                        await self._woken(self._poll_interval_s)
        finally:
            self._metrics.forget_backlog()
            if sent:
                with contextlib.suppress(Exception):
                    await self._mark(conn, sent)

    async def _count_backlog(self, conn: asyncpg.Connection, sent: list[int]) -> None:
        """What waits, and since when (``sent`` is published, not yet taken off): one round trip every
        few seconds."""
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM outbox_pending WHERE position <> ALL($1::bigint[])) AS waiting,"
            " (SELECT extract(epoch FROM clock_timestamp() - o.created_at)::float8 FROM outbox o"
            " WHERE o.position = (SELECT min(position) FROM outbox_pending"
            " WHERE position <> ALL($1::bigint[]))) AS oldest_s",
            sent,
        )
        self._metrics.backlog(row["waiting"], row["oldest_s"])

    async def _woken(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._wakeup.wait(), seconds)
            return True
        except TimeoutError:
            return False

    @staticmethod
    async def _mark(conn: asyncpg.Connection, positions: list[int]) -> None:
        await conn.execute("DELETE FROM outbox_pending WHERE position = ANY($1::bigint[])", positions)

    async def _publish_batch(
        self, conn: asyncpg.Connection, producer: AIOKafkaProducer, marking: list[int]
    ) -> list[int]:
        """Take ``marking`` (published) off the pending list and read the next batch, in one round trip;
        publish it and return its positions (to be taken off)."""
        started = clock.perf_counter()
        # The outbox is read by its key for exactly the positions pending, never joined: a merge join,
        # which PostgreSQL picks while the pending list's statistics say it is long (after a burst, until
        # autovacuum), would walk the whole outbox every cycle.
        rows = await conn.fetch(
            "WITH marked AS (DELETE FROM outbox_pending WHERE position = ANY($2::bigint[]))"
            " SELECT o.position, o.topic, o.key, o.headers, o.payload FROM outbox o"
            " WHERE o.position = ANY(ARRAY(SELECT position FROM outbox_pending"
            " WHERE position <> ALL($2::bigint[]) ORDER BY position LIMIT $1))"
            " ORDER BY o.position",
            self._batch_size,
            marking,
        )
        if not rows:
            return []
        # send() only appends to the producer's buffer, in call order; the idempotent producer
        # keeps that order per partition even when it retries.
        deliveries = [
            await producer.send(
                r["topic"],
                value=r["payload"],
                key=r["key"].encode(),
                headers=[(k, str(v).encode()) for k, v in r["headers"].items()],
            )
            for r in rows
        ]
        await asyncio.gather(*deliveries)
        self._metrics.published(len(rows), clock.perf_counter() - started)
        return [r["position"] for r in rows]
