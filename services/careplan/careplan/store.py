"""careplan's tables. Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg


async def lock_current(conn: asyncpg.Connection, patient_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT plan_id, agency_id, version FROM plans WHERE patient_id = $1 FOR UPDATE",
        patient_id,
    )


async def save_version(
    conn: asyncpg.Connection,
    *,
    patient_id: uuid.UUID,
    plan_id: uuid.UUID,
    agency_id: str,
    version: int,
    status: str,
    document: dict[str, Any],
    reason: str,
    caused_by_event: uuid.UUID | None,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO plans (patient_id, plan_id, agency_id, version, status, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (patient_id) DO UPDATE"
        " SET version = EXCLUDED.version, status = EXCLUDED.status, updated_at = EXCLUDED.updated_at",
        patient_id,
        plan_id,
        agency_id,
        version,
        status,
        at,
    )
    await conn.execute(
        "INSERT INTO plan_versions (plan_id, version, document, reason, caused_by_event, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        plan_id,
        version,
        document,
        reason,
        caused_by_event,
        at,
    )


async def current_plan(pool: asyncpg.Pool, agency_id: str, patient_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT p.plan_id, p.version, p.status, p.updated_at, v.document, v.reason"
        " FROM plans p JOIN plan_versions v ON v.plan_id = p.plan_id AND v.version = p.version"
        " WHERE p.patient_id = $1 AND p.agency_id = $2",
        patient_id,
        agency_id,
    )
