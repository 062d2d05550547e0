"""Idempotent, batching Kafka consumer with bounded retries and a dead-letter topic.

Per batch: the event ids go into the inbox and the handlers' effects and emitted events are written in
one transaction; offsets are committed only after it commits. A redelivered event finds its id in the
inbox and changes nothing. A service whose own effects name each event once, in a unique column
(record's entries), writes no inbox rows for them (``applied_in``): a batch holding an event applied before
fails on that column, and is applied again with each event looked for there first; the inbox keeps only
the events it dead-lettered. An event that cannot be decoded, or that still fails after a bounded number
of attempts with backoff, is published to the service's dead-letter topic and the partition moves on.
Infrastructure trouble (database or broker down) is not the event's fault: the batch is retried, never
dead-lettered.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from careloop_shared import db, tracing
from careloop_shared.coalesce import SharedConnection, handler_runs, run_side_by_side, runs_side_by_side
from careloop_shared.db import RowTypeChanged
from careloop_shared.errors import Conflict, Refusal
from careloop_shared.events import Event, ReceivedEvent, Record, UndecodableEvent, decode, refusal_of
from careloop_shared.failpoints import failpoint
from careloop_shared.logging import get_logger, safe_exception_message
from careloop_shared.metrics import ConsumerMetrics
from careloop_shared.outbox import DatabaseUnitOfWork, TopicFor, UnitOfWork

log = get_logger(__name__)

# handler(context, unit of work, event): the service's context object, as every use case gets it.
Handler = Callable[[Any, UnitOfWork[Any], Any], Awaitable[None]]
StoreFactory = Callable[[Any], Any]  # over a connection, a SharedConnection or the pool


H = TypeVar("H", bound=Callable[..., Awaitable[None]])


def batch_handler(handler: H) -> H:
    """Mark a handler that takes a list of events (in order) instead of one, to save round trips."""
    handler.handles_batches = True  # type: ignore[attr-defined]
    return handler


def handles_batches(handler: Handler) -> bool:
    return bool(getattr(handler, "handles_batches", False))


R = TypeVar("R", bound=Refusal)


def refusing(event: ReceivedEvent, refusal: R) -> R:
    """``refusal``, naming the event it refuses: the consumer dead-letters that event at once, with the
    refusal for its reason, and applies the rest of its batch together. A refusal that names no event fails
    its whole batch, which is then applied one event a transaction: the event refused in its own is
    dead-lettered then, not tried again (other failures are retried)."""
    refusal.event_id = event.envelope.id
    return refusal


def first_agencies(events: Iterable[ReceivedEvent]) -> dict[uuid.UUID, str]:
    """Each patient of the events, with the agency the first event about them names."""
    found: dict[uuid.UUID, str] = {}
    for received in events:
        found.setdefault(received.event.patient_id, received.event.agency_id)
    return found


def _refused(exc: BaseException) -> uuid.UUID | None:
    return exc.event_id if isinstance(exc, Refusal) else None


DeadLetterSink = Callable[[str, bytes | None, dict[str, str], bytes | None], Awaitable[None]]

# Not the event's fault: retry the batch, never dead-letter it.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    # Class 53: the server out of disk, memory or connections. An event is not poison because the
    # database's disk is full: dead-lettered, every event of the hour would be.
    asyncpg.InsufficientResourcesError,
    asyncpg.PostgresIOError,  # 58030: the server could not read or write its files
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,  # 57P02: another server process crashed; the server ends every session
    RowTypeChanged,  # a migration changed a table under this connection: it forgot the old columns
    ConnectionError,
    TimeoutError,
    KafkaError,
)


def is_transient(exc: BaseException) -> bool:
    # A bare OSError is how a failed connect surfaces; its subclasses (PermissionError, ...) are bugs.
    return isinstance(exc, TRANSIENT_ERRORS) or type(exc) in (OSError, socket.gaierror) or _used_lost(exc)


def _used_lost(exc: BaseException) -> bool:
    """asyncpg's ``InternalClientError`` for a statement sent on a connection whose server went away (a
    database restart under a transaction): "not connected", or "cannot switch to state ..." when the
    previous exchange never finished (the protocol "failed", which asyncpg sets only for a lost connection,
    or still waiting for the end of an error the server sent as it shut down). Using a connection twice at
    once is refused earlier, with an ``InterfaceError``. Any other ``InternalClientError`` is a defect."""
    if not isinstance(exc, asyncpg.InternalClientError):
        return False
    message = str(exc)
    return message.startswith("cannot switch to") or message == "not connected"


# The exception types ``is_unavailable`` may say yes to, for registering HTTP handlers by class (a bare
# OSError is how a failed connect surfaces; an InternalClientError only from a lost connection).
UNAVAILABLE_TYPES: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, OSError, asyncpg.InternalClientError)


def is_unavailable(exc: BaseException) -> bool:
    """A server the request needed (the database, the broker) could not be reached, dropped the
    connection or asked for a retry: ``is_transient``, but an asyncpg ``InterfaceError`` counts only
    when it says the connection is closed (careloop closes no connection it is using, so the server went
    away: asyncpg closes a lost connection and detaches it from whoever holds it) or a lost connection
    caused it; otherwise it is a connection used wrongly, a defect."""
    if not isinstance(exc, asyncpg.InterfaceError):
        return is_transient(exc)
    if str(exc).endswith("connection is closed"):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and not isinstance(cause, asyncpg.InterfaceError) and is_transient(cause)


# A batch that failed for a transient reason (the database or broker away) is tried again after a wait
# that doubles from ``backoff_s`` up to this: a database back is used within a second, where a cap of
# 5 s left a consumer asleep for up to that long after its database came back. A starting service waits
# for its servers no longer than this between tries either (``runtime.until_reachable``).
TRANSIENT_RETRY_MAX_S = 1.0


class TransientFailure(Exception):
    """Raised to the broker so the batch is redelivered (offsets not committed)."""


def dead_letter_headers(record: Record, error: BaseException, consumer: str) -> dict[str, str]:
    headers = {k: v.decode(errors="replace") for k, v in record.headers}
    headers.update(
        {
            "dlq_error_type": type(error).__name__,
            "dlq_error": safe_exception_message(error)[:1000],
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_consumer": consumer,
        }
    )
    return headers


# The batch's events ($2-$6) written to the consumer's ($1) inbox, those new to it returned (event_id); its
# patients ($7) claimed for the agencies their first events name ($8) where none was before, and returned
# (patient_id, agency_id) where an event before named another. One round trip, as the inbox alone was.
_FRESH_AND_CLAIMED = (
    'WITH fresh AS (INSERT INTO inbox (consumer, event_id, event_type, topic, partition, "offset")'
    " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[], $6::bigint[])"
    " ON CONFLICT DO NOTHING RETURNING event_id),"
    " batch AS (SELECT * FROM unnest($7::uuid[], $8::text[]) AS c(patient_id, agency_id)),"
    " claimed AS (INSERT INTO patient_agencies (patient_id, agency_id) SELECT * FROM batch"
    " ON CONFLICT DO NOTHING RETURNING patient_id)"
    " SELECT event_id, NULL::uuid AS patient_id, NULL::text AS agency_id FROM fresh"
    " UNION ALL SELECT NULL, c.patient_id, k.agency_id FROM batch c"
    " LEFT JOIN patient_agencies k ON k.patient_id = c.patient_id"
    " WHERE k.agency_id IS DISTINCT FROM c.agency_id"
    " AND NOT EXISTS (SELECT FROM claimed WHERE claimed.patient_id = c.patient_id)"
)
# A patient of the batch is claimed by this statement, or was claimed before it (the statement's snapshot
# shows whose), or neither: a replica's claim committed while this one's insert waited for it, after the
# snapshot was taken. Those rows come back with no agency, and the claim is read again (a statement of
# its own sees it). Rare: a patient's events meet on two replicas only while their group rebalances, or
# when one replica owns one topic's partition and another another's.
_CLAIMS = "SELECT patient_id, agency_id FROM patient_agencies WHERE patient_id = ANY($1::uuid[])"


class EventOfAnotherAgency(Conflict):
    """An event about a patient names another agency than the patient's: the one the events before it
    named (a consumer's ``patient_agencies``; record, its case record's)."""

    def __init__(self) -> None:
        super().__init__("event names another agency than its patient's")


# Which of a batch's event ids ($2) the consumer ($1) dead-lettered before.
_DEAD_LETTERED = "SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])"


def _applied_query(applied_in: str | None) -> str | None:
    """Which of a batch's event ids ($2) the consumer ($1) applied or dead-lettered before, when its
    service's effects name each event once in ``applied_in`` ("table.column", the column unique)."""
    if applied_in is None:
        return None
    table, _, column = applied_in.partition(".")
    if not (table.isidentifier() and column.isidentifier()):
        raise ValueError(f"applied_in names a table's column (table.column), not {applied_in!r}")
    return f"{_DEAD_LETTERED} UNION ALL SELECT {column} FROM {table} WHERE {column} = ANY($2::uuid[])"


def _streams(event: ReceivedEvent) -> tuple[tuple[Any, ...], ...]:
    """What an event must keep its order within: its partition, its patient."""
    return (event.topic, event.partition), ("patient", getattr(event.event, "patient_id", None))


class EventConsumer:
    """Applies events to one service's database, once each."""

    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        topic_for: TopicFor,
        handlers: Mapping[type[Event], Handler],
        dead_letter: DeadLetterSink,
        *,
        context: Any,
        store: StoreFactory,
        dead_letter_topic: str,
        max_attempts: int = 3,
        backoff_s: float = 0.2,
        applied_in: str | None = None,
    ) -> None:
        self.name = name
        self._applied = _applied_query(applied_in)
        self._pool = pool
        self._topic_for = topic_for
        self._handlers = {cls.type: h for cls, h in handlers.items()}
        self._accepted = {cls.type: cls for cls in handlers}
        self._dead_letter = dead_letter
        self._context = context
        self._store = store
        self.dead_letter_topic = dead_letter_topic
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._transient_streak = 0
        self.last_progress = time.monotonic()
        self._metrics = ConsumerMetrics(name)

    @property
    def topics(self) -> list[str]:
        return [self._topic_for(t) for t in self._accepted]

    async def process(self, records: Sequence[Record]) -> None:
        """Process one batch in order; raise TransientFailure to have it redelivered."""
        self._metrics.consumed(r.topic for r in records)
        try:
            await self._process(records)
            self._transient_streak = 0
            self.last_progress = time.monotonic()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._transient_streak += 1
            self._metrics.retried((r.topic for r in records), "transient")
            delay = min(self._backoff_s * 2**self._transient_streak, TRANSIENT_RETRY_MAX_S)
            log.warning("transient failure; batch will be redelivered", exc_info=exc, retry_in_s=delay)
            await asyncio.sleep(delay)
            raise TransientFailure(type(exc).__name__) from exc

    async def _process(self, records: Sequence[Record]) -> None:
        received: list[tuple[Record, ReceivedEvent]] = []
        for record in records:
            try:
                received.append(
                    (
                        record,
                        decode(
                            record.value,
                            record.headers,
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            accepted=self._accepted,
                        ),
                    )
                )
            except (UndecodableEvent, ValidationError) as exc:
                reason = "undecodable" if isinstance(exc, UndecodableEvent) else "invalid"
                await self._send_to_dead_letter(record, exc, reason)
        if not received:
            return
        # The batch together; again with each event looked for first when one was applied before (a
        # redelivery); and again without any event a handler's refusal names (``refusing``), dead-lettered.
        pending, batch = received, True
        while pending:
            try:
                self._metrics.handled(await self._apply([e for _, e in pending], batch=batch))
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                if batch and self._applied is not None and isinstance(exc, asyncpg.UniqueViolationError):
                    batch = False
                    continue
                named = _refused(exc)
                refused = next(((r, e) for r, e in pending if e.envelope.id == named), None)
                if refused is None:
                    break
                await self._give_up(*refused, exc, "refused")
                # Without it, and without any copy of it the batch holds (a redelivery within it).
                pending = [(r, e) for r, e in pending if e.envelope.id != named]
        if not pending:
            return
        # Values no careloop service keeps (text with NUL, numbers past 32 bits, times outside 1900-2999):
        # an event carrying one is refused at once, for that reason, and the rest tried together again.
        kept = []
        for record, event in pending:
            refusal = refusal_of(event.event)
            if refusal is None:
                kept.append((record, event))
                continue
            await self._give_up(record, event, refusal, "invalid")
        if kept and len(kept) < len(pending):
            try:
                self._metrics.handled(await self._apply([event for _, event in kept]))
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
        # Find the culprit: one event per transaction, each with bounded retries.
        for record, event in kept:
            await self._apply_with_retries(record, event)

    async def _apply(self, events: Sequence[ReceivedEvent], *, batch: bool = False) -> list[str]:
        """Apply the events not applied before, in one transaction; the topics of those applied.
        ``batch``: a polled batch's first try (see ``_fresh``)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await db.replan_if_due(conn)
            fresh = await self._fresh(conn, events, batch)
            # The store's statements go one at a time through the shared connection, so handlers
            # marked side_by_side can run at once for different patients (careloop_shared.coalesce).
            shared = SharedConnection(conn, db.insert_with)
            uow = DatabaseUnitOfWork(conn, self._topic_for, self._store(shared), shared=shared)
            todo = []
            for event in events:
                if event.envelope.id not in fresh:
                    continue  # already applied: a redelivery, or a duplicate within this batch
                fresh.discard(event.envelope.id)
                todo.append(event)
            # Each handler's events go to it together where their partitions' and patients' order allows.
            for handler, group in handler_runs(todo, lambda e: self._handlers[e.envelope.type], _streams):
                started = time.perf_counter()
                with tracing.consuming(self.name, group, uow.trace_parents) as spans:
                    if handles_batches(handler):
                        await handler(self._context, uow, group)
                    elif runs_side_by_side(handler):
                        await self._side_by_side(shared, handler, uow, group, spans)
                    else:
                        for event in group:
                            with tracing.within(spans, event):
                                await handler(self._context, uow, event)
                self._metrics.handler_time([e.topic for e in group], time.perf_counter() - started)
            await uow.flush()
        failpoint("consumer.after_db_commit")
        return [e.topic for e in todo]

    async def _fresh(
        self, conn: asyncpg.Connection, events: Sequence[ReceivedEvent], batch: bool
    ) -> set[uuid.UUID]:
        """The ids of the events not applied before: written to the inbox now, in this transaction (a
        replica writing one of them first makes this wait for its commit, then skip it).

        With ``applied_in`` the handler writes each one's id there. A polled batch's events are taken
        as new unless dead-lettered: one applied before (redelivered after a crash, or appended by a
        replica meanwhile) makes the transaction fail on the unique column, and the batch is applied
        again with each event looked for there first (``batch`` false). Redeliveries are rare; a
        look-up of every event would cost every batch.

        Without it, the same statement claims each patient new to the service for the agency the batch's
        first event about them names (``patient_agencies``); a new event naming another agency than the
        patient's is refused by name (``EventOfAnotherAgency``), and the consumer applies the rest. A
        claim another replica committed while this statement waited for it is read again (``_CLAIMS``)."""
        ids = [e.envelope.id for e in events]
        if self._applied is not None:
            query = _DEAD_LETTERED if batch else self._applied
            return set(ids).difference(r[0] for r in await conn.fetch(query, self.name, ids))
        first_agency = first_agencies(events)
        rows = await conn.fetch(
            _FRESH_AND_CLAIMED,
            self.name,
            ids,
            [e.envelope.type for e in events],
            [e.topic for e in events],
            [e.partition for e in events],
            [e.offset for e in events],
            list(first_agency),
            list(first_agency.values()),
        )
        fresh: set[uuid.UUID] = set()
        claimed_meanwhile = []
        for r in rows:
            if r["event_id"] is not None:
                fresh.add(r["event_id"])
            elif r["agency_id"] is None:
                claimed_meanwhile.append(r["patient_id"])
            else:  # a patient an event before this batch named for another agency
                first_agency[r["patient_id"]] = r["agency_id"]
        if claimed_meanwhile:
            first_agency.update(dict(await conn.fetch(_CLAIMS, claimed_meanwhile)))
        for e in events:
            if e.envelope.id in fresh and e.event.agency_id != first_agency[e.event.patient_id]:
                raise refusing(e, EventOfAnotherAgency())
        return fresh

    async def _side_by_side(
        self,
        shared: SharedConnection,
        handler: Handler,
        uow: UnitOfWork[Any],
        events: list[ReceivedEvent],
        spans: Mapping[uuid.UUID, Any],
    ) -> None:
        async def handle(event: ReceivedEvent) -> None:
            with tracing.within(spans, event):
                await handler(self._context, uow, event)

        patients = [getattr(e.event, "patient_id", None) for e in events]
        if None in patients:  # not every event names its patient: keep them in order, one at a time
            for event in events:
                await handle(event)
            return

        await run_side_by_side(shared, handle, events, key=lambda e: e.event.patient_id)

    async def _apply_with_retries(self, record: Record, event: ReceivedEvent) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._metrics.handled(await self._apply([event]))
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                if isinstance(exc, Refusal):  # a rule's answer to this event: the same if tried again
                    await self._give_up(record, event, exc, "refused")
                    return
                if attempt < self._max_attempts:
                    self._metrics.retried([event.topic], "failed")
                    await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
                    continue
                log.error(
                    "event failed after retries; dead-lettering",
                    event_id=str(event.envelope.id),
                    event_type=event.envelope.type,
                    attempts=attempt,
                    exc_info=exc,
                )
                await self._give_up(record, event, exc, "failed-after-retries")

    async def _give_up(self, record: Record, event: ReceivedEvent, exc: BaseException, reason: str) -> None:
        """A decoded event to the dead-letter topic, then noted in the inbox as dead-lettered (so that,
        delivered again, it is skipped)."""
        await self._send_to_dead_letter(record, exc, reason)
        await self._record_dead_letter(event)

    async def _record_dead_letter(self, event: ReceivedEvent) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                'INSERT INTO inbox (consumer, event_id, event_type, topic, partition, "offset",'
                " outcome) VALUES ($1, $2, $3, $4, $5, $6, 'dead-lettered') ON CONFLICT DO NOTHING",
                self.name,
                event.envelope.id,
                event.envelope.type,
                event.topic,
                event.partition,
                event.offset,
            )

    async def _send_to_dead_letter(self, record: Record, exc: BaseException, reason: str) -> None:
        headers = dead_letter_headers(record, exc, self.name)
        await self._dead_letter(self.dead_letter_topic, record.value, headers, record.key)
        self._metrics.dead_lettered(record.topic, reason)
        log.warning(
            "message dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=headers["dlq_error"],
        )
