"""A service's event consumer over its real database, one batch at a time, and the statements it sent:
for tests that hold a consumption to a number of statements a batch, whatever the batch's size."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from careloop_shared import db
from careloop_shared.consumer import EventConsumer, Handler, Record
from careloop_shared.events import Event, Message, new_message

# What every transaction sends, however many events it applies.
FRAME = frozenset({"BEGIN;", "COMMIT;", "BEGIN", "COMMIT"})


def delivered(message: Message, offset: int, topic: str | None = None) -> Record:
    """The message as Kafka hands it to a consumer, from ``topic`` (else the one named by its type):
    the same message delivered twice is a redelivery."""
    headers = [(k, v.encode()) for k, v in message.envelope.headers().items()]
    return Record(
        topic or message.envelope.type, 0, offset, message.key.encode(), message.event.body(), headers
    )


async def _no_dead_letters(*_: Any) -> None:
    raise AssertionError("nothing should be dead-lettered")


def consumer_of(
    pool: Any,
    handlers: Mapping[type[Event], Handler],
    dead_letter: Any = _no_dead_letters,
    *,
    name: str = "test",
    **options: Any,
) -> EventConsumer:
    """A consumer over ``pool`` (a real pool or a stand-in), each event type's topic named by the type
    itself; unless ``dead_letter`` is given, a dead letter fails the test."""
    return EventConsumer(
        name,
        pool,
        lambda event_type: event_type,
        handlers,
        dead_letter,
        context=None,
        store=lambda _: None,
        dead_letter_topic="dlq",
        **options,
    )


def record_of(event: Event, offset: int, time: datetime | None = None) -> Record:
    """The event as Kafka hands it to a consumer (its topic named by its type), sent at ``time`` (now
    when not given)."""
    return delivered(new_message(event, time=time), offset)


async def service_pool(database_factory: Any, name: str, migrations_folder: Path) -> asyncpg.Pool:
    """A fresh database with the kernel's and the service's migrations, behind a pool of one connection
    (so every statement of a batch goes through the connection ``apply_batch`` listens to)."""
    pool = await db.create_pool(await database_factory(name), min_size=1, max_size=1)
    await db.migrate(pool, [*db.kernel_migrations(), *db.folder_migrations(name, migrations_folder)])
    return pool


@contextlib.asynccontextmanager
async def statements_sent(pool: asyncpg.Pool) -> AsyncIterator[list[str]]:
    """The statements sent on the pool's connection while inside (asyncpg's query logger; a pool of one
    connection, as ``service_pool`` makes, sees them all)."""
    sent: list[str] = []

    def note(query: Any) -> None:
        sent.append(query.query)

    async with pool.acquire() as conn:
        conn.add_query_logger(note)
    try:
        yield sent
    finally:
        async with pool.acquire() as conn:
            conn.remove_query_logger(note)


async def apply_batch(
    pool: asyncpg.Pool,
    name: str,
    handlers: Mapping[type[Event], Handler],
    store: Any,
    context: Any,
    events: Sequence[Event],
    times: Sequence[datetime | None] = (),
) -> list[str]:
    """``events`` consumed as one batch by the service's consumer (each sent at its time in ``times``,
    when given); the statements it sent, but the transaction's BEGIN and COMMIT. A dead-lettered event
    fails the call."""
    dead: list[str] = []

    async def dead_letter(topic: str, *_: Any) -> None:
        dead.append(topic)

    consumer = EventConsumer(
        name,
        pool,
        lambda event_type: event_type,
        handlers,
        dead_letter,
        context=context,
        store=store,
        dead_letter_topic="dead-letters",
        backoff_s=0,
    )
    async with statements_sent(pool) as sent:
        sent_at = list(times) or [None] * len(events)
        records = [
            record_of(e, offset, at) for offset, (e, at) in enumerate(zip(events, sent_at, strict=True))
        ]
        await consumer.process(records)
    assert not dead, f"dead-lettered: {dead}"
    return [q for q in sent if q.strip() not in FRAME]


async def batches_of_growing_size(
    pool: asyncpg.Pool,
    name: str,
    handlers: Mapping[type[Event], Handler],
    store: Any,
    context: Any,
    event_for: Callable[[uuid.UUID], Event],
) -> dict[int, tuple[list[uuid.UUID], list[str]]]:
    """Batches of 2, 20 and 40 new patients' events (``event_for`` makes a patient's); for each size,
    the patients and the statements their batch sent. The first also has asyncpg learn the types it
    sends, so compare the others."""
    out = {}
    for n in (2, 20, 40):
        patients = [uuid.uuid4() for _ in range(n)]
        events = [event_for(p) for p in patients]
        out[n] = (patients, await apply_batch(pool, name, handlers, store, context, events))
    return out


async def by_patient(pool: asyncpg.Pool, table: str, columns: str, patients: list[uuid.UUID]) -> list[Any]:
    """Each patient's ``columns`` of ``table`` as a tuple (None for a patient without a row)."""
    rows = await pool.fetch(
        f"SELECT patient_id, {columns} FROM {table} WHERE patient_id = ANY($1::uuid[])", patients
    )
    found = {r["patient_id"]: tuple(r)[1:] for r in rows}
    return [found.get(p) for p in patients]


async def pages_read(conn: asyncpg.Connection, query: str, *args: Any) -> tuple[int, int]:
    """The pages ``query`` touched (shared buffers hit or read, the functions it called included) and the
    rows it gave, run once under ``EXPLAIN (ANALYZE, BUFFERS)``: what it changes stays unless the caller's
    transaction is rolled back."""
    [plan] = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", *args)  # json decoded
    top = plan["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]), int(top["Actual Rows"])


async def without_statistics(pool: asyncpg.Pool, table: str) -> None:
    """``table`` never analyzed, as on a fresh platform before autovacuum's first visit: checked, and kept so
    (autovacuum off for it) for the rest of the test."""
    await pool.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    reltuples = await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = $1", table)
    assert reltuples == -1, f"{table} has statistics already ({reltuples} rows)"


async def scans(conn: asyncpg.Connection, query: str, *args: Any) -> set[tuple[str, str]]:
    """How the planner would read each table ``query`` names: (node type, table) for every scan in its
    plan, as ``EXPLAIN`` gives it (not run)."""
    [plan] = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)  # json decoded
    return {
        (node["Node Type"], node["Relation Name"])
        for node in _nodes(plan["Plan"])
        if "Relation Name" in node and "Scan" in node["Node Type"]
    }


# Each statement's plan as it ran (auto_explain), sent to the session that ran it as a notice; the settings
# are a superuser's, given to the database for its new sessions.
_EXPLAINED = (
    "session_preload_libraries = 'auto_explain'",
    "auto_explain.log_min_duration = 0",
    "auto_explain.log_analyze = on",
    "auto_explain.log_nested_statements = on",
    "auto_explain.log_format = json",
    "auto_explain.log_level = notice",
)


async def explain_new_sessions(admin_url: str) -> None:
    """The sessions opened from now on in the database at ``admin_url`` (a superuser's URL) are sent the
    plan of each statement they run, as it ran (``plans_run`` reads them)."""
    admin = await asyncpg.connect(admin_url)
    try:
        database = await admin.fetchval("SELECT current_database()")
        for setting in _EXPLAINED:
            await admin.execute(f'ALTER DATABASE "{database}" SET {setting}')
    finally:
        await admin.close()


@contextlib.contextmanager
def notices(conn: asyncpg.Connection) -> Iterator[list[str]]:
    """The notices ``conn`` receives while inside."""
    got: list[str] = []

    def note(_conn: Any, message: Any) -> None:
        got.append(message.message)

    conn.add_log_listener(note)
    try:
        yield got
    finally:
        conn.remove_log_listener(note)


def plans_run(notices: Sequence[str], statement: str) -> list[list[dict[str, Any]]]:
    """The plans, as they ran, of the statements that begin with ``statement`` (from ``notices`` of a
    session that ``explain_new_sessions`` set up): each a plan's nodes, the top one first."""
    plans = [json.loads(n.split("plan:", 1)[1]) for n in notices if "plan:" in n]
    return [_nodes(p["Plan"]) for p in plans if p["Query Text"].lstrip().startswith(statement)]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes, found = [plan], []
    while nodes:
        node = nodes.pop(0)
        found.append(node)
        nodes.extend(node.get("Plans", ()))
    return found
