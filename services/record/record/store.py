"""record's tables. Entries are only ever inserted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

ENTRY_COLUMNS = (
    "patient_id, seq, event_id, event_type, source, agency_id, occurred_at, recorded_at, correlation_id,"
    " causation_id, body, prev_hash, hash"
)


async def lock_head(conn: asyncpg.Connection, patient_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT seq, hash FROM record_heads WHERE patient_id = $1 FOR UPDATE", patient_id
    )


async def append(conn: asyncpg.Connection, entry: dict[str, Any]) -> None:
    await conn.execute(
        f"INSERT INTO record_entries ({ENTRY_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        entry["patient_id"],
        entry["seq"],
        entry["event_id"],
        entry["event_type"],
        entry["source"],
        entry["agency_id"],
        entry["occurred_at"],
        entry["recorded_at"],
        entry["correlation_id"],
        entry["causation_id"],
        entry["body"],
        entry["prev_hash"],
        entry["hash"],
    )
    await conn.execute(
        "INSERT INTO record_heads (patient_id, seq, hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (patient_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        entry["patient_id"],
        entry["seq"],
        entry["hash"],
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
