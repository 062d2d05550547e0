"""intake's tables. Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import asyncpg


async def insert_patient(
    conn: asyncpg.Connection,
    *,
    patient_id: uuid.UUID,
    agency_id: str,
    given_name: str,
    family_name: str,
    birth_date: date,
    preferred_language: str,
) -> None:
    await conn.execute(
        "INSERT INTO patients (id, agency_id, given_name, family_name, birth_date,"
        " preferred_language) VALUES ($1, $2, $3, $4, $5, $6)",
        patient_id,
        agency_id,
        given_name,
        family_name,
        birth_date,
        preferred_language,
    )


async def get_patient(
    conn: asyncpg.Connection | asyncpg.Pool, agency_id: str, patient_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, agency_id, given_name, family_name, birth_date, preferred_language, created_at"
        " FROM patients WHERE id = $1 AND agency_id = $2",
        patient_id,
        agency_id,
    )


async def insert_assessment(conn: asyncpg.Connection, **row: Any) -> None:
    await conn.execute(
        "INSERT INTO assessments (id, patient_id, agency_id, instrument, rules_version, answers,"
        " total_score, needs, risk_level, urgent_flags, assessed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["instrument"],
        row["rules_version"],
        row["answers"],
        row["total_score"],
        row["needs"],
        row["risk_level"],
        row["urgent_flags"],
        row["assessed_at"],
    )


async def get_assessment(
    conn: asyncpg.Connection | asyncpg.Pool, agency_id: str, assessment_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, patient_id, instrument, rules_version, total_score, needs, risk_level,"
        " urgent_flags, assessed_at FROM assessments WHERE id = $1 AND agency_id = $2",
        assessment_id,
        agency_id,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)
