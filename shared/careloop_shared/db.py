"""asyncpg pool, ordered SQL migrations applied on start, and the insert and update every store uses."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeAlias

import asyncpg
import orjson

from careloop_shared.coalesce import Many, SharedConnection
from careloop_shared.logging import get_logger

log = get_logger(__name__)

_MIGRATION_LOCK = 0x63617265  # advisory lock id: one replica migrates at a time


def _json_bytes(value: Any) -> bytes:
    """A value as JSON: orjson, about five times faster than ``json``; non-string keys become strings as
    ``json.dumps`` makes them."""
    return orjson.dumps(value, default=_uuid_text, option=orjson.OPT_NON_STR_KEYS)


def _uuid_text(value: Any) -> str:
    """orjson writes the standard ``uuid.UUID`` itself; asyncpg's (every ``uuid`` column read, and
    ``ids``' ids) it hands here."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_text(value: Any) -> str:
    return _json_bytes(value).decode()


_JSONB_VERSION = b"\x01"  # jsonb's binary form: a version byte, then the JSON text


def _jsonb_binary(value: Any) -> bytes:
    return _JSONB_VERSION + _json_bytes(value)


def _jsonb_value(data: bytes) -> Any:
    if data[:1] != _JSONB_VERSION:
        raise ValueError("unsupported jsonb binary format version")
    return orjson.loads(memoryview(data)[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    # Binary, so that a row holding JSON can travel as one value of its table's row type (asyncpg sends
    # a composite only when every attribute has a binary form): ``_insert_many``. json's binary form is
    # its text.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_binary, decoder=_jsonb_value, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=_json_bytes, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )


# Row-level security by agency. Every table holding patient data has a policy that shows a row only
# when the session's ``careloop.agency`` names its agency, or is ``*`` (the service's own work:
# consumers, schedulers, the audit writer). An HTTP request sets its caller's agency; before that it
# is NO_AGENCY, which sees nothing; a connection that never set it (psql, another tool) sees nothing.
ALL_AGENCIES = "*"
NO_AGENCY = ""
AGENCY: ContextVar[str] = ContextVar("careloop_agency", default=ALL_AGENCIES)


class AgencyConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection that remembers the agency its session is set to (one round trip only when
    a checkout needs another)."""

    __slots__ = ("careloop_agency", "plans_made_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.careloop_agency: str | None = None
        self.plans_made_at = time.monotonic()

    def plans_due(self, every_s: float) -> bool:
        """Whether the session's plans were made (or made again) ``every_s`` ago or longer; if so, they
        count as made again now (``replan_if_due``)."""
        now = time.monotonic()
        if now - self.plans_made_at < every_s:
            return False
        self.plans_made_at = now
        return True

    def agency_to_set(self, agency: str) -> bool:
        changed = self.careloop_agency != agency
        self.careloop_agency = agency
        return changed

    def agency_unknown(self) -> None:
        self.careloop_agency = None


async def _apply_agency(conn: Any) -> None:
    """Pool ``setup``: the checkout's session shows the agency of the task that checked it out."""
    agency = AGENCY.get()
    if conn.agency_to_set(agency):
        try:
            await conn.execute("SELECT set_config('careloop.agency', $1, false)", agency)
        except BaseException:
            conn.agency_unknown()
            raise


async def _no_session_reset(_: asyncpg.Connection) -> None:
    """Skip asyncpg's RESET round trip on every release: careloop code leaves no session state
    (no SET, LISTEN or held advisory lock) on pooled connections but ``careloop.agency``, which every
    checkout sets again when it differs. Open transactions are still rolled back by asyncpg itself."""


async def _connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect``, with a Unix socket that is not there (the server stopped, or not yet started
    again) refused as a TCP port with no server is: ``ConnectionRefusedError``, which consumers retry
    and start-up waits for, never a missing file (a bug)."""
    try:
        return await asyncpg.connect(dsn, **kwargs)
    except FileNotFoundError as exc:
        raise ConnectionRefusedError(exc.errno, "the database server's socket is not there") from exc


# PostgreSQL's default: asyncpg prepares each statement once per connection, and after five executions
# PostgreSQL keeps a generic plan for it when that looks no dearer than planning each execution. Planning
# every execution (``force_custom_plan``, the setting CARELOOP_PG_PLAN_CACHE_MODE) cost a fifth to a
# quarter of PostgreSQL's CPU at 250 journeys a second. It was the default while look-ups of a batch's keys
# were written as ``= ANY``, whose generic plan made on a nearly empty table scanned it as it grew; they
# probe each key by index now (``probed``), and tests/test_plans_as_tables_grow.py holds every statement of
# the chain to the pages it read on nearly empty tables under this default (docs/performance.md). A plan
# made just after a table's first analyze, at a few dozen rows, still scans: ``REPLAN_EVERY_S`` below.
PlanCacheMode = Literal["force_custom_plan", "auto"]
PLAN_CACHE_MODE: PlanCacheMode = "auto"


# How old a consumer's session's plans may get: a batch that finds them older has them made again first
# (``replan_if_due``), as has a periodic step's round (``runtime.periodic``: the scheduler asks what fell
# due every tick while the follow-ups grow; its claims read 12-25 pages a call where 1-2 did, in one CI run
# of tests/test_plans_as_tables_grow.py, not seen again: the likeliest reading, a plan made while the table
# was small). A generic plan is made from the statistics and the table's size of
# its moment and is kept until the table is analyzed again: made just after a table's first analyze, while
# it held a few dozen rows, a look-up of a batch's keys scans the whole table, and keeps doing so as the
# table grows until autovacuum's next visit (after a tenth more rows, up to 30 s later here). After a
# 40-journey chain and autovacuum's first visit, record's head look-up in a chain of 10,000 took 24-32 ms a
# batch against 1.1-1.4 on a fresh platform (docs/performance.md). Made again, a plan sees the table's size
# now (its pages, at the rows a page its statistics say). Doing it for every batch of 100 events or more
# (tried first) cost PostgreSQL 0.07 ms more a journey in a fresh platform's chain, every statement,
# foreign-key check and PL/pgSQL statement analyzed and planned again for each batch; every two seconds
# bounds what a plan made on a nearly empty table costs to two seconds of a burst, for one planning of a
# connection's statements every two seconds.
REPLAN_EVERY_S = 2.0


async def replan_if_due(conn: Any) -> None:
    """When ``conn``'s session's plans are ``REPLAN_EVERY_S`` old: every statement planned again at its
    next execution (``DISCARD PLANS``; the prepared statements stay). ``conn`` is a pooled connection
    (``AgencyConnection``) or a proxy of one."""
    if conn.plans_due(REPLAN_EVERY_S):
        await conn.execute("DISCARD PLANS")


def _server_settings(plan_cache_mode: PlanCacheMode) -> dict[str, str]:
    return {"plan_cache_mode": plan_cache_mode}


async def connect(dsn: str, *, plan_cache_mode: PlanCacheMode = PLAN_CACHE_MODE) -> asyncpg.Connection:
    """One long-lived connection outside a pool (the outbox relay's), set up as pooled ones are."""
    conn = await _connect(dsn, server_settings=_server_settings(plan_cache_mode))
    await init_connection(conn)
    return conn


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, plan_cache_mode: PlanCacheMode = PLAN_CACHE_MODE
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        connect=_connect,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        setup=_apply_agency,
        reset=_no_session_reset,
        connection_class=AgencyConnection,
        command_timeout=60,
        server_settings=_server_settings(plan_cache_mode),
    )
    assert pool is not None
    return pool


@contextlib.contextmanager
def as_agency(agency: str) -> Iterator[None]:
    """Connections checked out inside see ``agency``'s rows only (``ALL_AGENCIES``: every row)."""
    token = AGENCY.set(agency)
    try:
        yield
    finally:
        AGENCY.reset(token)


async def connect_for(dsn: str, agency: str = ALL_AGENCIES, **kwargs: Any) -> asyncpg.Connection:
    """One connection outside a pool that acts for ``agency`` (by default every one, as the service's
    own work does): a tool's or a test's look at a service's tables under row-level security."""
    settings = {**kwargs.pop("server_settings", {}), "careloop.agency": agency}
    return await _connect(dsn, server_settings=settings, **kwargs)


async def bypasses_row_security(conn: Db) -> bool:
    """Whether this connection's role ignores row-level security (a superuser, or BYPASSRLS)."""
    return bool(
        await conn.fetchval("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    )


def kernel_migrations() -> list[tuple[str, str]]:
    folder = resources.files("careloop_shared") / "migrations"
    return sorted((f"kernel/{f.name}", f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))


def folder_migrations(namespace: str, folder: Path) -> list[tuple[str, str]]:
    return sorted((f"{namespace}/{p.name}", p.read_text()) for p in folder.glob("*.sql"))


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool | SharedConnection


class Store:
    """Base of a service's store: its queries over ``db``, a unit of work's connection or the pool.

    A hot query is written over a list of keys (``many(db, keys)``, one result per key) and called
    through ``one``: alone it is a one-key statement; when the consumer runs handlers side by side
    (``careloop_shared.coalesce``), the keys asked at the same moment share one statement.
    """

    def __init__(self, db: Db) -> None:
        self.db = db

    async def one(self, many: Many, key: Any) -> Any:
        if isinstance(self.db, SharedConnection):
            return await self.db.load(many, key)
        return (await many(self.db, [key]))[0]

    async def insert_at_commit(self, table: str, row: dict[str, Any], *, conflict: str = "") -> None:
        """Insert ``row`` in the statement that writes the unit of work's outbox, one round trip fewer, or
        before this store's next statement if one comes first (so what follows sees it). For a row whose
        insert is not expected to fail: a constraint it breaks fails the unit of work where it is sent.
        Outside a unit of work (the pool, a bare connection, a shared one that keeps no rows): at once."""
        if isinstance(self.db, SharedConnection) and self.db.keeps_rows:
            self.db.at_commit(table, row, conflict)
        else:
            await insert_row(self.db, table, row, conflict=conflict)


def _names(table: str, columns: Iterable[str]) -> None:
    """Table and column names come from the service's own code, never a request; checked anyway."""
    for name in (table, *columns):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a column or table name: {name!r}")


def _insert_sql(table: str, columns: Sequence[str], conflict: str, returning: str, first: int = 1) -> str:
    _names(table, columns)
    placeholders = ", ".join(f"${first + i}" for i in range(len(columns)))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
        + (f" ON CONFLICT {conflict}" if conflict else "")
        + (f" RETURNING {returning}" if returning else "")
    )


async def insert_row(
    conn: Db, table: str, row: Mapping[str, Any], *, conflict: str = "", returning: str = ""
) -> asyncpg.Record | None:
    """``INSERT INTO table (<row's keys>) VALUES (<its values>)``, with ``ON CONFLICT <conflict>`` and
    ``RETURNING <returning>`` when given; the returned row, or None (nothing inserted, or no RETURNING).
    """
    columns = sorted(row)
    sql = _insert_sql(table, columns, conflict, returning)
    if returning:
        return await conn.fetchrow(sql, *(row[c] for c in columns))
    await conn.execute(sql, *(row[c] for c in columns))
    return None


def by_columns(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...], list[int]]:
    """The rows' positions grouped by the columns they set (one statement per group)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(sorted(row)), []).append(i)
    return groups


def rows_from(columns: Mapping[str, str], *, alias: str = "r", first: int = 1) -> str:
    """``unnest($1::<type>[], ...) AS r(<names>)``: a statement's rows given as one typed array per
    column (``columns_of``), so that one statement, planned once, updates or joins all of them where one
    statement per row would plan each again. ``columns`` maps each name to its PostgreSQL type."""
    _names(alias, columns)
    arrays = ", ".join(_array_parameter(first + i, t) for i, t in enumerate(columns.values()))
    return f"unnest({arrays}) AS {alias}({', '.join(columns)})"


def probed(table: str, column: str, *, select: str = "*", where: str = "", key_type: str = "uuid") -> str:
    """``SELECT <select>`` of ``table``'s rows whose ``column`` is one of the keys in ``$1`` (give each key
    once), each key probed by ``column``'s index while the table has no statistics or statistics of more
    than a page. Written as ``column = ANY($1)``, a batch of a few hundred keys was planned as a scan of
    the whole table until its first analyze (the planner's default guess is that each key matches 1/200
    of the rows), and a fresh platform's tables go a minute or so without one (README, Performance). A
    plan made while the statistics say the table is one page (analyzed at a few dozen rows) scans it for
    each key: a consumer's session makes its plans again every ``REPLAN_EVERY_S``. ``where``: more
    conditions on the row (SQL, from the service's own code)."""
    _names(table, (column,))
    more = f" AND ({where})" if where else ""
    return (
        f"SELECT t.* FROM unnest($1::{key_type}[]) AS k(key),"
        f" LATERAL (SELECT {select} FROM {table} WHERE {column} = k.key{more} OFFSET 0) t"
    )


def columns_of(rows: Sequence[Sequence[Any]], columns: Mapping[str, str]) -> list[list[Any]]:
    """The rows' values column by column, for ``rows_from(columns)``. A JSON column's values travel as
    text: in an array parameter a list would be read as a dimension of the array, not as one value."""
    values = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in columns]
    for i, type_ in enumerate(columns.values()):
        if type_ in _JSON_TYPES:
            values[i] = [None if v is None else _json_text(v) for v in values[i]]
    return values


_JSON_TYPES = frozenset({"json", "jsonb"})


def _array_parameter(number: int, type_: str) -> str:
    return f"${number}::text[]::{type_}[]" if type_ in _JSON_TYPES else f"${number}::{type_}[]"


def all_distinct(keys: Sequence[Any]) -> bool:
    """Whether no key repeats: an upsert's rows go as one statement only then (``insert_rows``). A
    set-based UPDATE ... FROM takes rows that may repeat a key in ``coalesce.rounds``, a statement each."""
    return len(set(keys)) == len(keys)


async def insert_rows(
    conn: Db, table: str, rows: Sequence[Mapping[str, Any]], *, conflict: str = "", upsert_key: str = ""
) -> None:
    """Many rows in one statement per set of columns they set, inserted in the order given.

    ``ON CONFLICT ... DO UPDATE`` cannot update one row twice in a statement (PostgreSQL refuses it;
    one statement after the other, the later row wins): an upsert's rows go as one statement only when
    no two share a value of ``upsert_key``, the column its conflict is on; otherwise, and for a single
    row, one statement per row in one round trip (``executemany``), each planned on its own.
    """
    upsert = "DO UPDATE" in conflict.upper()
    for columns, positions in by_columns(rows).items():
        group = [rows[i] for i in positions]
        if len(group) > 1 and (not upsert or (upsert_key and all_distinct([r[upsert_key] for r in group]))):
            tail = f" ON CONFLICT {conflict}" if conflict else ""
            await _insert_many(conn, "execute", table, columns, group, tail)
        else:
            values = [tuple(row[c] for c in columns) for row in group]
            await conn.executemany(_insert_sql(table, columns, conflict, ""), values)


class RowTypeChanged(Exception):
    """A table's columns changed since this connection learned its row type (a newer version's migration,
    while this one still runs): the insert failed and wrote nothing. The connection has forgotten what it
    learned, so the unit of work, tried again, goes through; consumers redeliver the batch."""

    def __init__(self, table: str) -> None:
        super().__init__(f"the columns of {table} changed while this connection knew them; try again")


async def _forget_row_type(conn: Db) -> None:
    """asyncpg learns a table's row type once per connection; after a migration adds, drops or retypes a
    column, PostgreSQL refuses a row of the old shape. Forget it (a pool: all its connections)."""
    raw = conn.raw if isinstance(conn, SharedConnection) else conn
    if isinstance(raw, asyncpg.Pool):
        await raw.expire_connections()
    else:
        await raw.reload_schema_state()  # no round trip: it forgets the pool's cached types


@contextlib.asynccontextmanager
async def _as_row_type_of(conn: Db, table: str) -> AsyncIterator[None]:
    """Around a statement whose rows travel as ``table``'s row type: PostgreSQL refusing that type
    (``DatatypeMismatchError``) means the table changed; the connection forgets it (``RowTypeChanged``)."""
    try:
        yield
    except asyncpg.DatatypeMismatchError:
        await _forget_row_type(conn)
        raise RowTypeChanged(table) from None


async def _insert_many(
    conn: Db, method: str, table: str, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]], tail: str
) -> Any:
    """``INSERT INTO table (columns) <rows> <tail>`` as one statement, run with ``conn.<method>``: one plan
    and one execution for the rows, in their order, where a statement per row plans each again."""
    _names(table, columns)
    # One array of the table's row type, each row given by its column names (asyncpg fills the columns a
    # row does not set with NULL; only ``columns`` are inserted, the rest take their defaults). asyncpg
    # checks each element of an array parameter against three abstract base classes: one check per row
    # here, where one array per column costs one per value; and a row's JSON or array value is one
    # attribute, where an array of them would be read as another dimension.
    async with _as_row_type_of(conn, table):
        return await getattr(conn, method)(_insert_many_sql(table, columns, tail), rows)


def _insert_many_sql(table: str, columns: Sequence[str], tail: str, parameter: int = 1) -> str:
    names = ", ".join(columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM unnest(${parameter}::{table}[]) WITH ORDINALITY"
        f" AS r ORDER BY r.ordinality{tail}"
    )


async def insert_with(
    conn: Db,
    first: Sequence[tuple[str, Mapping[str, Any], str]],
    table: str = "",
    rows: Sequence[Mapping[str, Any]] = (),
    *,
    conflict: str = "",
) -> None:
    """``first`` (a row each: table, row, conflict clause), then ``rows`` (if any) into ``table`` as
    ``insert_rows`` would, all in one statement: the ``first`` inserts as data-modifying WITH queries, one
    for the rows of one table that set the same columns with the same conflict clause (in the order
    given), so that a transaction many commands share plans one insert a table, not one a command. They
    share one snapshot (none sees another's row) and foreign keys are checked as the statement ends."""
    if not first or len(by_columns(rows)) > 1:  # rows setting different columns: a statement each
        for t, row, c in first:
            await insert_row(conn, t, row, conflict=c)
        await insert_rows(conn, table, rows, conflict=conflict)
        return
    kept: dict[tuple[str, tuple[str, ...], str], list[Mapping[str, Any]]] = {}
    for t, row, c in first:
        kept.setdefault((t, tuple(sorted(row)), c), []).append(row)
    parts: list[str] = []
    args: list[Any] = []
    typed: list[str] = []  # the tables whose rows travel as the table's row type
    for (t, columns, c), group in kept.items():
        if len(group) == 1 or "DO UPDATE" in c.upper():  # an upsert's rows: one insert each, as kept
            for row in group:
                parts.append(_insert_sql(t, columns, c, "", first=len(args) + 1))
                args += [row[k] for k in columns]
            continue
        _names(t, columns)
        parts.append(_insert_many_sql(t, columns, f" ON CONFLICT {c}" if c else "", parameter=len(args) + 1))
        args.append(group)
        typed.append(t)
    if rows:
        _names(table, rows[0])
        tail = f" ON CONFLICT {conflict}" if conflict else ""
        parts.append(_insert_many_sql(table, sorted(rows[0]), tail, parameter=len(args) + 1))
        args.append(rows)
        typed.append(table)
    *before, last = parts
    sql = ("WITH " + ", ".join(f"w{i} AS ({p})" for i, p in enumerate(before)) + " " if before else "") + last
    if not typed:
        await conn.execute(sql, *args)
        return
    async with _as_row_type_of(conn, ", ".join(typed)):
        await conn.execute(sql, *args)


async def fetch_inserting(
    conn: Db,
    sql: str,
    args: Sequence[Any],
    table: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: str = "",
) -> list[asyncpg.Record]:
    """``conn.fetch(sql, *args)`` with ``rows`` inserted into ``table`` (as ``insert_rows`` would) in the
    same statement, one round trip fewer: the insert is a data-modifying WITH query before ``sql`` (a
    SELECT, or a WITH query not RECURSIVE). One snapshot: ``sql`` does not see the rows, so it must not
    read ``table``; what follows does. Not for an upsert (one statement cannot update a row twice)."""
    if "DO UPDATE" in conflict.upper():
        raise ValueError("fetch_inserting does not upsert")
    if not rows:
        return list(await conn.fetch(sql, *args))
    if len(by_columns(rows)) > 1:  # rows setting different columns: a statement each
        await insert_rows(conn, table, rows, conflict=conflict)
        return list(await conn.fetch(sql, *args))
    _names(table, rows[0])
    tail = f" ON CONFLICT {conflict}" if conflict else ""
    insert = _insert_many_sql(table, sorted(rows[0]), tail, parameter=len(args) + 1)
    query = f"WITH inserted AS ({insert})" + (f", {sql[5:]}" if sql.startswith("WITH ") else f" {sql}")
    async with _as_row_type_of(conn, table):
        return list(await conn.fetch(query, *args, rows))


async def insert_rows_returning(
    conn: Db, table: str, rows: Sequence[Mapping[str, Any]], *, key: str, conflict: str = ""
) -> list[bool]:
    """Many rows in one statement (per set of columns); for each, whether it went in (False when
    ``ON CONFLICT <conflict>`` skipped it). ``key`` is a column unique to each row; an upsert
    (``DO UPDATE``) conflicts on it, and its rows that share a key go one statement each, in order
    (one statement cannot update a row twice)."""
    _names(table, (key,))
    went_in = [False] * len(rows)
    for columns, positions in by_columns(rows).items():
        group = [rows[i] for i in positions]
        if len(group) == 1 or ("DO UPDATE" in conflict.upper() and not all_distinct([r[key] for r in group])):
            sql = _insert_sql(table, columns, conflict, key)
            for i in positions:
                went_in[i] = await conn.fetchrow(sql, *(rows[i][c] for c in columns)) is not None
            continue
        tail = (f" ON CONFLICT {conflict}" if conflict else "") + f" RETURNING {key}"
        found = {r[key] for r in await _insert_many(conn, "fetch", table, columns, group, tail)}
        for i in positions:
            went_in[i] = rows[i][key] in found
    return went_in


async def insert_rows_each(
    conn: Db, table: str, rows: Sequence[Mapping[str, Any]], *, conflict: str = "", upsert_key: str = ""
) -> list[None]:
    """``insert_rows`` with one None per row, as a ``Store.one`` query answers."""
    await insert_rows(conn, table, rows, conflict=conflict, upsert_key=upsert_key)
    return [None] * len(rows)


def by_key(keys: Sequence[Any], rows: Iterable[Mapping[str, Any]], column: str) -> list[Any]:
    """For each key, the row whose ``column`` equals it (None when there is none)."""
    found = {r[column]: r for r in rows}
    return [found.get(k) for k in keys]


async def patient_row(
    db: Db, table: str, columns: str, *, agency_id: str, patient_id: Any, row_id: Any, lock: bool = False
) -> asyncpg.Record | None:
    """One of a patient's rows by id, only within the caller's agency (another agency's is None)."""
    _names(table, ())
    return await db.fetchrow(
        f"SELECT {columns} FROM {table} WHERE id = $1 AND patient_id = $2 AND agency_id = $3"
        + (" FOR UPDATE" if lock else ""),
        row_id,
        patient_id,
        agency_id,
    )


async def patient_rows(
    db: Db,
    table: str,
    columns: str,
    *,
    agency_id: str,
    patient_id: Any,
    order_by: str,
    limit: int | None = None,
    offset: int = 0,
) -> list[asyncpg.Record]:
    """A patient's rows in ``order_by`` order (a page of them when ``limit`` is given), only within
    the caller's agency."""
    _names(table, (c.strip() for c in order_by.split(",")))
    return await db.fetch(
        f"SELECT {columns} FROM {table} WHERE patient_id = $1 AND agency_id = $2 ORDER BY {order_by}"
        " LIMIT $3 OFFSET $4",
        patient_id,
        agency_id,
        limit,
        offset,
    )


async def update_by_id(
    conn: Db,
    table: str,
    row_id: Any,
    changes: Mapping[str, Any],
    *,
    at: datetime,
    returning: str = "",
) -> asyncpg.Record | None:
    """``UPDATE table SET <changes>, updated_at = at WHERE id = row_id``, optionally ``RETURNING``."""
    columns = sorted(changes)
    _names(table, columns)
    assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    return await conn.fetchrow(
        f"UPDATE {table} SET {assignments}, updated_at = ${len(columns) + 2} WHERE id = $1"
        + (f" RETURNING {returning}" if returning else ""),
        row_id,
        *(changes[c] for c in columns),
        at,
    )


async def migrate(pool: asyncpg.Pool, migrations: Iterable[tuple[str, str]]) -> list[str]:
    """Apply the not-yet-applied migrations in order, each in its own transaction."""
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for name, sql in migrations:
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", name)
                applied_now.append(name)
                log.info("migration applied", migration=name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now
