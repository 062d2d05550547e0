"""followup's tables. Every read for the API is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from careloop_shared.db import update_by_id
from followup.domain.rules import PRIORITIES

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

COLUMNS = (
    "id, patient_id, agency_id, reason, plan_id, referral_id, priority, due_at, overdue_at, status,"
    " attempt, due_point, every_days, cadence_anchor_at, overdue_since, completed_at, reassessment,"
    " created_at, updated_at"
)
_F_COLUMNS = ", ".join("f." + c.strip() for c in COLUMNS.split(","))
_INSERTED = (
    "id",
    "patient_id",
    "agency_id",
    "reason",
    "plan_id",
    "referral_id",
    "priority",
    "due_at",
    "overdue_at",
    "every_days",
    "cadence_anchor_at",
)


async def insert_follow_up(conn: asyncpg.Connection, row: dict[str, Any], at: datetime) -> bool:
    """Insert a scheduled follow-up; False when an equivalent one exists (a redelivery, a recurrence)."""
    values = [row.get(c) for c in _INSERTED]
    placeholders = ", ".join(f"${i + 1}" for i in range(len(values)))
    inserted = await conn.fetchval(
        f"INSERT INTO follow_ups ({', '.join(_INSERTED)}, status, created_at, updated_at)"
        f" VALUES ({placeholders}, 'scheduled', ${len(values) + 1}, ${len(values) + 1})"
        " ON CONFLICT DO NOTHING RETURNING true",
        *values,
        at,
    )
    return bool(inserted)


async def update_follow_up(
    conn: asyncpg.Connection, follow_up_id: uuid.UUID, changes: dict[str, Any], at: datetime
) -> asyncpg.Record:
    row = await update_by_id(conn, "follow_ups", follow_up_id, changes, at=at, returning=COLUMNS)
    assert row is not None
    return row


async def get_follow_up(
    db: Db, agency_id: str, follow_up_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {COLUMNS} FROM follow_ups WHERE id = $1 AND agency_id = $2"
        + (" FOR UPDATE" if lock else ""),
        follow_up_id,
        agency_id,
    )


async def open_cadence(conn: asyncpg.Connection, patient_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM follow_ups WHERE patient_id = $1 AND reason = 'plan-cadence'"
        " AND status IN ('scheduled', 'due', 'overdue') FOR UPDATE",
        patient_id,
    )


async def cancel_open(
    conn: asyncpg.Connection,
    at: datetime,
    *,
    patient_id: uuid.UUID | None = None,
    referral_id: uuid.UUID | None = None,
    reason: str,
    statuses: tuple[str, ...] = ("scheduled", "due", "overdue"),
) -> int:
    """Cancel a patient's open follow-ups of one reason, or a referral's; returns how many."""
    result: str = await conn.execute(
        "UPDATE follow_ups SET status = 'cancelled', updated_at = $1"
        " WHERE reason = $2 AND status = ANY($3::text[])"
        " AND ($4::uuid IS NULL OR patient_id = $4) AND ($5::uuid IS NULL OR referral_id = $5)",
        at,
        reason,
        list(statuses),
        patient_id,
        referral_id,
    )
    return int(result.split()[-1])


async def get_plan(conn: asyncpg.Connection, patient_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM patient_plans WHERE patient_id = $1 FOR UPDATE", patient_id)


async def save_plan(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO patient_plans (patient_id, agency_id, plan_id, version, status, risk_level, priority,"
        " every_days, goal_ids, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (patient_id) DO UPDATE SET agency_id = EXCLUDED.agency_id,"
        " plan_id = EXCLUDED.plan_id, version = EXCLUDED.version, status = EXCLUDED.status,"
        " risk_level = EXCLUDED.risk_level, priority = EXCLUDED.priority,"
        " every_days = EXCLUDED.every_days, goal_ids = EXCLUDED.goal_ids, updated_at = EXCLUDED.updated_at",
        row["patient_id"],
        row["agency_id"],
        row["plan_id"],
        row["version"],
        row["status"],
        row["risk_level"],
        row["priority"],
        row["every_days"],
        row["goal_ids"],
        row["updated_at"],
    )


async def claim_due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Mark due follow-ups as due; rows another replica is claiming are skipped, not waited on."""
    return await conn.fetch(
        "WITH due AS (SELECT id FROM follow_ups WHERE status = 'scheduled' AND due_at <= $1"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " UPDATE follow_ups f SET status = 'due', updated_at = $1 FROM due WHERE f.id = due.id"
        f" RETURNING {_F_COLUMNS}",
        now,
        limit,
    )


async def claim_overdue(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Mark due follow-ups past their grace period as overdue, once, skipping rows being claimed."""
    return await conn.fetch(
        "WITH late AS (SELECT id FROM follow_ups WHERE status = 'due' AND overdue_at <= $1"
        " ORDER BY overdue_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " UPDATE follow_ups f SET status = 'overdue', overdue_since = f.overdue_at, updated_at = $1"
        f" FROM late WHERE f.id = late.id RETURNING {_F_COLUMNS}",
        now,
        limit,
    )


async def list_follow_ups(
    db: Db,
    agency_id: str,
    patient_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {COLUMNS} FROM follow_ups WHERE agency_id = $1"
        " AND ($2::uuid IS NULL OR patient_id = $2) AND ($3::text IS NULL OR status = $3)"
        " ORDER BY due_at, id LIMIT $4 OFFSET $5",
        agency_id,
        patient_id,
        status,
        limit,
        offset,
    )


async def work_queue(db: Db, agency_id: str, limit: int, offset: int) -> list[asyncpg.Record]:
    """The agency's due and overdue follow-ups, most urgent priority first, then the longest waiting."""
    return await db.fetch(
        f"SELECT {COLUMNS} FROM follow_ups WHERE agency_id = $1 AND status IN ('due', 'overdue')"
        " ORDER BY array_position($2::text[], priority), due_at, id LIMIT $3 OFFSET $4",
        agency_id,
        list(PRIORITIES),
        limit,
        offset,
    )


async def insert_outcome(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO follow_up_outcomes (follow_up_id, attempt, reached, goal_progress, barriers,"
        " next_step, note, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        row["follow_up_id"],
        row["attempt"],
        row["reached"],
        row["goal_progress"],
        row["barriers"],
        row["next_step"],
        row["note"],
        row["recorded_by"],
        row["recorded_at"],
    )


async def list_outcomes(db: Db, follow_up_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT attempt, reached, goal_progress, barriers, next_step, note, recorded_at"
        " FROM follow_up_outcomes WHERE follow_up_id = $1 ORDER BY attempt",
        follow_up_id,
    )


async def insert_reschedule(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO follow_up_reschedules (follow_up_id, due_point, reason, from_due_at, to_due_at,"
        " by_subject, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        row["follow_up_id"],
        row["due_point"],
        row["reason"],
        row["from_due_at"],
        row["to_due_at"],
        row["by_subject"],
        row["at"],
    )
