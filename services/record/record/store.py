"""record's tables. Entries are only ever inserted."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from record.domain.chain import GENESIS

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

ENTRY_COLUMNS = (
    "patient_id, seq, event_id, event_type, source, agency_id, occurred_at, recorded_at, correlation_id,"
    " causation_id, body, prev_hash, hash"
)


async def lock_heads(
    conn: asyncpg.Connection, patient_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, bytes]]:
    """The chain heads of these patients (a new patient's is the genesis), locked for this transaction."""
    ids = sorted(set(patient_ids))  # one lock order for every appender
    await conn.execute(
        "INSERT INTO record_heads (patient_id, seq, hash) SELECT unnest($1::uuid[]), 0, $2"
        " ON CONFLICT (patient_id) DO NOTHING",
        ids,
        GENESIS,
    )
    rows = await conn.fetch(
        "SELECT patient_id, seq, hash FROM record_heads WHERE patient_id = ANY($1::uuid[])"
        " ORDER BY patient_id FOR UPDATE",
        ids,
    )
    return {r["patient_id"]: (r["seq"], bytes(r["hash"])) for r in rows}


async def append(
    conn: asyncpg.Connection, entries: list[dict[str, Any]], heads: dict[uuid.UUID, tuple[int, bytes]]
) -> None:
    columns = ENTRY_COLUMNS.replace(" ", "").split(",")
    await conn.executemany(
        f"INSERT INTO record_entries ({ENTRY_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        [tuple(entry[c] for c in columns) for entry in entries],
    )
    await conn.executemany(
        "UPDATE record_heads SET seq = $2, hash = $3 WHERE patient_id = $1",
        [(patient_id, seq, hash_) for patient_id, (seq, hash_) in heads.items()],
    )


async def owning_agency(db: Db, patient_id: uuid.UUID) -> str | None:
    agency: str | None = await db.fetchval(
        "SELECT agency_id FROM record_entries WHERE patient_id = $1 ORDER BY seq LIMIT 1", patient_id
    )
    return agency


async def entries(
    db: Db,
    patient_id: uuid.UUID,
    *,
    types: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {ENTRY_COLUMNS} FROM record_entries WHERE patient_id = $1"
        " AND ($2::text[] IS NULL OR event_type = ANY($2)) AND ($3::timestamptz IS NULL OR occurred_at >= $3)"
        " AND ($4::timestamptz IS NULL OR occurred_at < $4) ORDER BY seq",
        patient_id,
        types,
        since,
        until,
    )


async def head(db: Db, patient_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT seq, hash FROM record_heads WHERE patient_id = $1", patient_id)
