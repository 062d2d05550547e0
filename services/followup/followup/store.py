"""followup's tables. Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def schedule_plan_cadence(
    conn: asyncpg.Connection,
    *,
    patient_id: uuid.UUID,
    agency_id: str,
    plan_id: uuid.UUID,
    priority: str,
    due_at: datetime,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO follow_ups (id, patient_id, agency_id, reason, plan_id, priority, due_at,"
        " status, created_at, updated_at)"
        " VALUES ($1, $2, $3, 'plan-cadence', $4, $5, $6, 'scheduled', $7, $7)"
        " ON CONFLICT (patient_id) WHERE reason = 'plan-cadence' AND status = 'scheduled'"
        " DO UPDATE SET plan_id = EXCLUDED.plan_id, priority = EXCLUDED.priority,"
        " due_at = EXCLUDED.due_at, updated_at = EXCLUDED.updated_at",
        uuid.uuid4(),
        patient_id,
        agency_id,
        plan_id,
        priority,
        due_at,
        at,
    )


async def schedule_referral_check_in(
    conn: asyncpg.Connection,
    *,
    patient_id: uuid.UUID,
    agency_id: str,
    referral_id: uuid.UUID,
    priority: str,
    due_at: datetime,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO follow_ups (id, patient_id, agency_id, reason, referral_id, priority, due_at,"
        " status, created_at, updated_at)"
        " VALUES ($1, $2, $3, 'referral-check-in', $4, $5, $6, 'scheduled', $7, $7)"
        " ON CONFLICT (referral_id) DO NOTHING",
        uuid.uuid4(),
        patient_id,
        agency_id,
        referral_id,
        priority,
        due_at,
        at,
    )


async def claim_due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Mark due follow-ups as due; rows another replica is claiming are skipped, not waited on."""
    return await conn.fetch(
        "WITH due AS (SELECT id FROM follow_ups WHERE status = 'scheduled' AND due_at <= $1"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " UPDATE follow_ups f SET status = 'due', updated_at = $1 FROM due WHERE f.id = due.id"
        " RETURNING f.id, f.patient_id, f.agency_id, f.reason, f.referral_id, f.priority, f.due_at",
        now,
        limit,
    )


async def list_follow_ups(
    pool: asyncpg.Pool,
    agency_id: str,
    patient_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, patient_id, reason, plan_id, referral_id, priority, due_at, status, created_at,"
        " updated_at FROM follow_ups WHERE agency_id = $1"
        " AND ($2::uuid IS NULL OR patient_id = $2) AND ($3::text IS NULL OR status = $3)"
        " ORDER BY due_at, id LIMIT $4 OFFSET $5",
        agency_id,
        patient_id,
        status,
        limit,
        offset,
    )
