"""A service's running parts, wired once: settings, pool, migrations, topics, broker, relay, consumer.

Every service is composed the same way in its ``main.py``: a ``ServiceSpec`` names its context (the
rules, clock and caches its use cases are configured with), how to open its store over a database
connection, the events it publishes, which event goes to which handler, and its periodic steps.
Every use case, whatever starts it, is called the same way: ``handler(context, unit_of_work, message)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from careloop_shared import db, idempotency, metrics
from careloop_shared.audit import AuditTrail
from careloop_shared.auth import VerifiedTokens
from careloop_shared.command_groups import CommandGroups
from careloop_shared.consumer import TRANSIENT_RETRY_MAX_S, EventConsumer, Handler, StoreFactory
from careloop_shared.events import Event
from careloop_shared.kafka import (
    Committer,
    client_options,
    consumer_lag,
    ensure_topics,
    evict_predecessor,
    new_broker,
    publish_dead_letter,
    subscribe,
)
from careloop_shared.logging import get_logger
from careloop_shared.outbox import DatabaseUnitOfWork, OutboxRelay, UnitOfWork, unit_of_work
from careloop_shared.settings import ServiceSettings

log = get_logger(__name__)
T = TypeVar("T")
COMMIT_FLUSH_TIMEOUT_S = 5.0  # how long a stopping service waits for its last offsets to be committed
FORGET_REPLAYS_EVERY_S = 3600.0  # how often responses kept past CARELOOP_IDEMPOTENCY_KEEP_S are deleted

BackgroundLoop = Callable[["ServiceRuntime"], Coroutine[Any, Any, None]]
# step(context, unit of work): one round of periodic work; True when more is waiting right now.
PeriodicStep = Callable[[Any, UnitOfWork[Any]], Awaitable[bool]]
# step(context, unit of work): run once at start, after migrations and before the consumer.
StartupStep = Callable[[Any, UnitOfWork[Any]], Awaitable[None]]


@dataclass
class ServiceSpec:
    """What makes a service this service."""

    name: str
    migrations: Path
    context: Any  # the service's rules, clock and caches, handed to every handler
    store: StoreFactory  # the service's store over one connection (a unit of work's, or the pool)
    publishes: Sequence[type[Event]] = ()
    handlers: Mapping[type[Event], Handler] = field(default_factory=dict)
    background: Sequence[BackgroundLoop] = ()
    startup: Sequence[StartupStep] = ()
    # Topics the service writes that carry no patient's event (record's signed checkpoints).
    streams: Sequence[str] = ()
    # Closed when the service stops, after its consumer and tasks (an HTTP client, e.g. patient keys).
    closing: Sequence[Callable[[], Awaitable[None]]] = ()
    # "table.column" when the service's effects name each consumed event once, in that unique column
    # (record's entries): it refuses a redelivery (the batch is then applied again, each event looked
    # for there first), and the inbox keeps only dead-lettered events.
    applied_in: str | None = None


def periodic(step: PeriodicStep, *, every_s: float, workers: int = 1) -> BackgroundLoop:
    """Run ``step`` in its own unit of work every ``every_s`` seconds, at once again while it has more.

    A tick is counted from when its round began: a round that took longer than ``every_s`` is followed
    by the next at once, so what fell due meanwhile waits for no sleep on top of it (a failed round is
    followed by a whole tick).

    It keeps no timer in memory: a step asks the database what is due by the clock, so whatever fell
    due while the service was down is handled on the first round after it starts. A failed round is
    logged and retried on the next tick. With ``workers`` above one, a backlog (a round that says there
    is more) is worked off by that many rounds at once, each its own unit of work, so one round's
    statements run while another's Python does: only for steps that claim their rows as replicas would
    (``FOR UPDATE SKIP LOCKED``). An idle service still asks once a tick.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")

    async def one_round(runtime: ServiceRuntime) -> bool:
        async with runtime.uow() as uow:
            # As a consumer's batch does (``db.REPLAN_EVERY_S``): a step asks the same question of a table
            # every tick while it grows, and a generic plan made while it held a few dozen rows scanned it.
            await db.replan_if_due(uow.conn)
            return await step(runtime.context, uow)

    async def rounds(runtime: ServiceRuntime) -> None:
        while await one_round(runtime):
            pass

    async def loop(runtime: ServiceRuntime) -> None:
        while True:
            began = time.monotonic()
            try:
                if await one_round(runtime):
                    # Each worker until its own round finds no more; a failure ends that worker only.
                    each = [rounds(runtime) for _ in range(workers)]
                    done = await asyncio.gather(*each, return_exceptions=True)
                    for failed in (r for r in done if isinstance(r, BaseException)):
                        if not isinstance(failed, Exception):  # cancelled, or the process ending
                            raise failed
                        log.warning("periodic step failed; will retry", step=step.__name__, exc_info=failed)
                        began = time.monotonic()  # as below: after a failure, a whole tick
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("periodic step failed; will retry", step=step.__name__, exc_info=exc)
                began = time.monotonic()  # a failed round waits a whole tick, however long it took
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - began)))

    loop.__name__ = step.__name__
    return loop


def settle_heap(young_threshold: int) -> None:
    """Once a service has started: what is alive then (modules, schemas, rules, pools, clients) lives as
    long as the process, so it leaves the cyclic garbage collector's generations (``gc.freeze``); and a
    young collection waits for ``young_threshold`` new container objects instead of Python's 700. A
    consumer's batch (up to 500 events, decoded, with their rows) is tens of thousands of objects alive
    until it commits; at 700, or 10,000, each collection walked the live batch again and promoted it:
    about 1-2 s of each consuming service's CPU in a 10,000-journey chain (README, Performance).
    Reference counting still frees at once everything that is not in a cycle."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)


class ServiceRuntime:
    def __init__(self, spec: ServiceSpec, settings: ServiceSettings) -> None:
        self.spec = spec
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        # Every Kafka client of this service connects the same way (TLS, SASL) from these.
        self.kafka = client_options(settings)
        self.broker = new_broker(self.kafka, client_id=spec.name)
        # Registered for the AsyncAPI document; events are published by the outbox relay.
        for event_type in spec.publishes:
            self.broker.publisher(
                self.topic_for(event_type.type),
                schema=event_type,
                title=event_type.type,
                description=(event_type.__doc__ or "").strip(),
                include_in_schema=True,
            )
        self.audit = AuditTrail(lambda: self.pool)
        self.verified_tokens = VerifiedTokens(settings)
        self.relay: OutboxRelay | None = None
        self.consumer: EventConsumer | None = None
        self._committer: Committer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        slots = settings.command_group_slots
        self.command_groups = (
            CommandGroups(
                self.uow, slots=slots, linger_s=settings.command_group_linger_ms / 1000, service=spec.name
            )
            if slots
            else None
        )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("runtime not started")
        return self._pool

    @property
    def dead_letter_topic(self) -> str:
        return self.settings.topic(f"careloop.{self.spec.name}.dlq")

    def topic_for(self, event_type: str) -> str:
        return self.settings.topic(event_type)

    @property
    def context(self) -> Any:
        return self.spec.context

    def uow(
        self, correlation_id: uuid.UUID | None = None
    ) -> contextlib.AbstractAsyncContextManager[DatabaseUnitOfWork[Any]]:
        """One transaction with the service's store bound to it; emitted events commit with it."""
        return unit_of_work(self.pool, self.topic_for, correlation_id, store=self.spec.store)

    def reader(self) -> Any:
        """The service's store over the pool, for reads outside any unit of work."""
        return self.spec.store(self.pool)

    async def start(self) -> None:
        s = self.settings
        dsn = s.own_database_url()
        deadline = time.monotonic() + s.startup_wait_s
        wait = partial(until_reachable, deadline=deadline)
        self._pool = await self.open_database(deadline)
        self.audit.start()
        topics = {self.topic_for(e.type) for e in self.spec.publishes}
        topics.update(self.topic_for(name) for name in self.spec.streams)
        if self.spec.handlers:
            self.consumer = EventConsumer(
                self.spec.name,
                self._pool,
                self.topic_for,
                self.spec.handlers,
                partial(publish_dead_letter, self.broker),
                context=self.context,
                store=self.spec.store,
                dead_letter_topic=self.dead_letter_topic,
                max_attempts=s.consumer_max_attempts,
                backoff_s=s.consumer_backoff_s,
                applied_in=self.spec.applied_in,
            )
            topics.update(self.consumer.topics)
            topics.add(self.dead_letter_topic)
            self._committer = subscribe(
                self.broker,
                self.consumer,
                s.consumer_group,
                max_records=s.consumer_batch_size,
                instance_id=s.group_instance_id,
                member_file=s.member_file,
                fetch_wait_ms=s.consumer_fetch_wait_ms,
                linger_ms=s.consumer_linger_ms,
                commit_interval_ms=s.consumer_commit_interval_ms,
            )
        # Without leave to create them, a missing topic is waited for like a broker that is down,
        # then named in the error the service exits with.
        await wait(
            "the broker and its topics",
            lambda: ensure_topics(
                self.kafka,
                topics,
                partitions=s.topic_partitions,
                replication_factor=s.topic_replication_factor,
                min_insync_replicas=s.topic_min_insync_replicas,
                create=s.kafka_create_topics,
            ),
        )
        if self.consumer is not None and s.member_file is not None:
            outcome = await evict_predecessor(self.kafka, s.consumer_group, s.member_file)
            log.info("predecessor in the consumer group", outcome=outcome)
        await wait("the broker", self._start_broker)
        self.relay = OutboxRelay(
            dsn,
            self.kafka,
            client_id=self.spec.name,
            batch_size=s.relay_batch_size,
            poll_interval_s=s.relay_poll_interval_s,
            plan_cache_mode=s.pg_plan_cache_mode,
        )
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        forget = periodic(idempotency.forget_old(s.idempotency_keep_s), every_s=FORGET_REPLAYS_EVERY_S)
        for loop in (*self.spec.background, forget):
            self._tasks.append(asyncio.create_task(loop(self), name=getattr(loop, "__name__", "")))
        settle_heap(s.gc_young_threshold)
        log.info("service started", topics=sorted(topics))

    async def stop(self) -> None:
        if self.relay:
            self.relay.stop()
        for task in self._tasks:
            if task.get_name() != "outbox-relay":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._committer is not None:
            # Batches that finish from now on commit before they return; what finished is committed first.
            self._committer.closing = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._committer.flush(), COMMIT_FLUSH_TIMEOUT_S)
        with contextlib.suppress(Exception):
            await self.broker.stop()
        await self.audit.stop()
        if self.command_groups is not None:
            await self.command_groups.close()
        for close in self.spec.closing:
            with contextlib.suppress(Exception):
                await close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        log.info("service stopped")

    async def consumer_stalled(self) -> bool:
        """True when records wait for this service's consumer and it has not moved for a long while.

        A consumer can stop fetching after a rebalance without raising (aio-libs/aiokafka#1154); only
        an orchestrator restart helps then. Unknown (broker unreachable) is not stalled: restarting the
        service would not bring the broker back.
        """
        consumer = self.consumer
        if consumer is None or time.monotonic() - consumer.last_progress < self.settings.consumer_stall_s:
            return False
        try:
            async with asyncio.timeout(5):
                lag = await consumer_lag(self.kafka, self.settings.consumer_group, consumer.topics)
        except Exception:
            return False
        if lag == 0:
            consumer.last_progress = time.monotonic()  # idle and caught up: nothing to worry about
        return lag > 0

    async def observe(self) -> None:
        """Bring the metrics that are read rather than counted up to date (before a scrape)."""
        if self.consumer is not None:
            clients = [getattr(s, "consumer", None) for s in self.broker.subscribers]
            await metrics.refresh_consumer_lag(
                self.spec.name, self.consumer.topics, [c for c in clients if c is not None]
            )

    async def open_database(self, deadline: float) -> asyncpg.Pool:
        """The pool, migrated and with the startup steps run. The whole phase is one step waited for:
        a database restarting between opening the pool and the last step is waited out like one down
        before it (the migrations and steps are idempotent)."""
        return await until_reachable("the database", self._prepare_database, deadline=deadline)

    async def _prepare_database(self) -> asyncpg.Pool:
        """Open the pool, migrate and run the startup steps; the pool is closed again if any fails."""
        s = self.settings
        pool = await db.create_pool(
            s.own_database_url(),
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            plan_cache_mode=s.pg_plan_cache_mode,
        )
        try:
            await db.migrate(
                pool, [*db.kernel_migrations(), *db.folder_migrations(self.spec.name, self.spec.migrations)]
            )
            for step in self.spec.startup:
                async with unit_of_work(pool, self.topic_for, store=self.spec.store) as uow:
                    await step(self.context, uow)
            if await db.bypasses_row_security(pool):
                # Agency isolation then rests on the code's filters alone (a superuser, say, in development).
                log.warning("the database role bypasses row-level security; connect as one that does not")
        except BaseException:
            pool.terminate()
            raise
        return pool

    async def _start_broker(self) -> None:
        """``broker.start``, undone if it fails part way: FastStream starts every subscriber again on
        the next call, so one started before the failure would run twice."""
        try:
            await self.broker.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.broker.stop()
            raise

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            async with asyncio.timeout(2):
                await self.pool.fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            checks["broker"] = "ok" if await self.broker.ping(timeout=2.0) else "unavailable"
        except Exception as exc:
            checks["broker"] = f"unavailable: {type(exc).__name__}"
        return checks


# What a server that is down or restarting answers: worth waiting for at start.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or was lost
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,  # a connection ended by a fast shutdown
    asyncpg.CrashShutdownError,
    KafkaConnectionError,
    KafkaTimeoutError,
)


async def until_reachable(what: str, step: Callable[[], Awaitable[T]], *, deadline: float) -> T:
    """``step()``, again while ``what`` is unreachable (after 0.5 s, then every second), until
    ``deadline``: a service started while the broker or the database restarts waits for it rather than
    exit (then its supervisor would start it again), and is ready within about a second of it answering
    (waits doubling to 5 s, as before 2026-12-06, left it waiting up to that long)."""
    pause = 0.5
    while True:
        try:
            return await step()
        except Exception as exc:
            # aiokafka marks the errors worth retrying (a node not ready, a leader moving).
            if not (isinstance(exc, UNREACHABLE) or getattr(exc, "retriable", False)):
                raise
            if time.monotonic() + pause > deadline:
                raise
            log.warning(f"waiting for {what}", error_type=type(exc).__name__, retry_in_s=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, TRANSIENT_RETRY_MAX_S)


@contextlib.asynccontextmanager
async def running(runtime: ServiceRuntime) -> AsyncIterator[ServiceRuntime]:
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
