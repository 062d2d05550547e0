"""The analytics DuckDB file: one row per event, and the Kafka position the rows reach, kept together.

A batch of rows and the offsets they came from are written in one transaction, so the file always says
exactly how far it has read: a sink killed at any moment starts again from there, neither losing nor
repeating a row. The event id is the primary key as a second guard (a topic may hold an event twice).
The file is opened for each batch and closed after it, so ``careloop report`` can read it in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from careloop_cli.analytics.views import create_views
from careloop_shared.events import Envelope, Event

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        event_id       UUID PRIMARY KEY,   -- ce_id
        event_type     VARCHAR NOT NULL,   -- ce_type
        source         VARCHAR NOT NULL,   -- ce_source
        patient_id     UUID NOT NULL,      -- ce_subject: the patient's pseudonymous id
        agency_id      VARCHAR NOT NULL,   -- the patient's agency
        occurred_at    TIMESTAMPTZ NOT NULL, -- ce_time
        correlation_id UUID NOT NULL,      -- ce_correlationid
        causation_id   UUID,               -- ce_causationid
        topic          VARCHAR NOT NULL,
        partition      INTEGER NOT NULL,
        "offset"       BIGINT NOT NULL,
        data           JSON NOT NULL       -- the event's body as published
    )""",
    """CREATE TABLE IF NOT EXISTS sink_offsets (
        topic VARCHAR NOT NULL, partition INTEGER NOT NULL, last_offset BIGINT NOT NULL,
        PRIMARY KEY (topic, partition)
    )""",
    # Records on the topics that are not careloop events: where they were and why, never their content.
    """CREATE TABLE IF NOT EXISTS sink_skipped (
        topic VARCHAR NOT NULL, partition INTEGER NOT NULL, "offset" BIGINT NOT NULL, reason VARCHAR NOT NULL,
        PRIMARY KEY (topic, partition, "offset")
    )""",
)
COLUMNS = (
    ("event_id", "UUID"),
    ("event_type", "VARCHAR"),
    ("source", "VARCHAR"),
    ("patient_id", "UUID"),
    ("agency_id", "VARCHAR"),
    ("occurred_at", "TIMESTAMPTZ"),
    ("correlation_id", "UUID"),
    ("causation_id", "UUID"),
    ("topic", "VARCHAR"),
    ("partition", "INTEGER"),
    ('"offset"', "BIGINT"),
    ("data", "JSON"),
)
Row = tuple[Any, ...]


def event_row(
    envelope: Envelope, event: Event, body: bytes, *, topic: str, partition: int, offset: int
) -> Row:
    """An event as a row of ``events``. The Kafka key is not kept: it is the patient id again."""
    return (
        envelope.id,
        envelope.type,
        envelope.source,
        event.patient_id,
        event.agency_id,
        envelope.time,
        envelope.correlation_id,
        envelope.causation_id,
        topic,
        partition,
        offset,
        json.dumps(json.loads(body), sort_keys=True),
    )


@dataclass
class Batch:
    """Rows read since the last write, and the last offset read of each partition."""

    rows: list[Row] = field(default_factory=list)
    skipped: list[tuple[str, int, int, str]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows) + len(self.skipped)


def connect(path: str, *, read_only: bool = False, wait_s: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process holds it (DuckDB allows one writer process), or
    while this process has it open in the other mode (a sink and a reader in one process, as in tests:
    DuckDB refuses a second connection to a file with a different configuration)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            held = "lock" in str(exc).lower() or "different configuration" in str(exc).lower()
            if not held or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    con.execute("SET TimeZone = 'UTC'")  # months are calendar months in UTC
    return con


@contextmanager
def opened(
    path: str, *, read_only: bool = False, wait_s: float = 30.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only, wait_s=wait_s)
    try:
        yield con
    finally:
        con.close()


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The tables, and the views over them (replaced, so a newer careloop brings its own)."""
    for statement in SCHEMA:
        con.execute(statement)
    create_views(con)


def stored_offsets(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], int]:
    return {(t, p): o for t, p, o in con.execute("SELECT * FROM sink_offsets").fetchall()}


def write(con: duckdb.DuckDBPyConnection, batch: Batch) -> int:
    """Rows, skipped records and offsets in one transaction; returns how many rows were new."""
    con.execute("BEGIN TRANSACTION")
    try:
        before = _count(con)
        if batch.rows:
            columns = list(zip(*batch.rows, strict=True))
            select = ", ".join(f"unnest(${i + 1}::{kind}[])" for i, (_, kind) in enumerate(COLUMNS))
            names = ", ".join(name for name, _ in COLUMNS)
            con.execute(f"INSERT OR IGNORE INTO events ({names}) SELECT {select}", [list(c) for c in columns])
        if batch.skipped:
            con.executemany("INSERT OR IGNORE INTO sink_skipped VALUES (?, ?, ?, ?)", batch.skipped)
        if batch.offsets:
            con.executemany(
                "INSERT INTO sink_offsets VALUES (?, ?, ?)"
                " ON CONFLICT (topic, partition) DO UPDATE SET last_offset = excluded.last_offset",
                [(t, p, o) for (t, p), o in batch.offsets.items()],
            )
        new = _count(con) - before
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return new


def _count(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def insert_events(
    con: duckdb.DuckDBPyConnection, events: Iterable[tuple[Envelope, Event]], *, topic: str = "t"
) -> int:
    """Events straight into the table, without Kafka (tests and examples): offsets 0, 1, ... of ``topic``."""
    batch = Batch(
        rows=[
            event_row(env, ev, ev.body(), topic=topic, partition=0, offset=i)
            for i, (env, ev) in enumerate(events)
        ]
    )
    return write(con, batch)


def checksum(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """How many events, and an MD5 over every column of every row in event id order."""
    row = con.execute(
        "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', event_id, event_type, source, patient_id,"
        " agency_id, epoch_us(occurred_at), correlation_id, coalesce(causation_id::VARCHAR, '-'), topic,"
        " partition, \"offset\", data::VARCHAR), chr(10) ORDER BY event_id), ''))"
        " FROM events"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])
