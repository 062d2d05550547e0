"""intake's tables. Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg

from careloop_shared.db import update_by_id

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

PATIENT_COLUMNS = (
    "id, given_name, family_name, birth_date, preferred_language, contact_preference, phone, email,"
    " postal_code, created_at, updated_at"
)
CONSENT_COLUMNS = (
    "id, patient_id, purpose, agencies, program_categories, period_start, period_end, status,"
    " recorded_at, revoked_at"
)
ASSESSMENT_COLUMNS = (
    "id, patient_id, instrument, rules_version, observations, total_score, interpretation, needs,"
    " risk_level, urgent_flags, recommended_instruments, assessed_at"
)


def now_utc() -> datetime:
    return datetime.now(UTC)


async def insert_patient(conn: asyncpg.Connection, row: dict[str, Any]) -> uuid.UUID | None:
    """Insert; on a likely duplicate insert nothing and return the existing patient's id."""
    inserted = await conn.fetchval(
        "INSERT INTO patients (id, agency_id, given_name, family_name, name_key, birth_date,"
        " preferred_language, contact_preference, phone, email, postal_code, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
        " ON CONFLICT (agency_id, name_key, birth_date) DO NOTHING RETURNING id",
        row["id"],
        row["agency_id"],
        row["given_name"],
        row["family_name"],
        row["name_key"],
        row["birth_date"],
        row["preferred_language"],
        row["contact_preference"],
        row["phone"],
        row["email"],
        row["postal_code"],
        row["at"],
    )
    if inserted is not None:
        return None
    existing: uuid.UUID = await conn.fetchval(
        "SELECT id FROM patients WHERE agency_id = $1 AND name_key = $2 AND birth_date = $3",
        row["agency_id"],
        row["name_key"],
        row["birth_date"],
    )
    return existing


async def get_patient(
    db: Db, agency_id: str, patient_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {PATIENT_COLUMNS} FROM patients WHERE id = $1 AND agency_id = $2"
        + (" FOR UPDATE" if lock else ""),
        patient_id,
        agency_id,
    )


async def update_patient(
    conn: asyncpg.Connection, patient_id: uuid.UUID, changes: dict[str, Any], at: datetime
) -> uuid.UUID | None:
    """Apply changes; if they make the patient a likely duplicate, change nothing and return the other id."""
    try:
        async with conn.transaction():  # a savepoint, so a duplicate leaves the outer transaction usable
            await update_by_id(conn, "patients", patient_id, changes, at=at)
    except asyncpg.UniqueViolationError:
        other: uuid.UUID = await conn.fetchval(
            "SELECT o.id FROM patients p JOIN patients o ON o.agency_id = p.agency_id"
            " AND o.name_key = $2 AND o.birth_date = $3 AND o.id <> p.id WHERE p.id = $1",
            patient_id,
            changes.get("name_key"),
            changes.get("birth_date"),
        )
        return other
    return None


async def list_patients(db: Db, agency_id: str, limit: int, offset: int) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {PATIENT_COLUMNS} FROM patients WHERE agency_id = $1"
        " ORDER BY created_at, id LIMIT $2 OFFSET $3",
        agency_id,
        limit,
        offset,
    )


async def insert_consent(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO consents (id, patient_id, agency_id, purpose, agencies, program_categories,"
        " period_start, period_end, status, recorded_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9)",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["purpose"],
        row["agencies"],
        row["program_categories"],
        row["period_start"],
        row["period_end"],
        row["recorded_at"],
    )


async def get_consent(
    db: Db, agency_id: str, patient_id: uuid.UUID, consent_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {CONSENT_COLUMNS} FROM consents WHERE id = $1 AND patient_id = $2 AND agency_id = $3"
        + (" FOR UPDATE" if lock else ""),
        consent_id,
        patient_id,
        agency_id,
    )


async def revoke_consent(conn: asyncpg.Connection, consent_id: uuid.UUID, at: datetime) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"UPDATE consents SET status = 'revoked', revoked_at = $2 WHERE id = $1 RETURNING {CONSENT_COLUMNS}",
        consent_id,
        at,
    )
    return row


async def list_consents(db: Db, agency_id: str, patient_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {CONSENT_COLUMNS} FROM consents WHERE patient_id = $1 AND agency_id = $2"
        " ORDER BY recorded_at, id",
        patient_id,
        agency_id,
    )


async def insert_assessment(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO assessments (id, patient_id, agency_id, instrument, rules_version, answers,"
        " observations, total_score, interpretation, needs, risk_level, urgent_flags,"
        " recommended_instruments, assessed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["instrument"],
        row["rules_version"],
        row["answers"],
        row["observations"],
        row["total_score"],
        row["interpretation"],
        row["needs"],
        row["risk_level"],
        row["urgent_flags"],
        row["recommended_instruments"],
        row["assessed_at"],
    )


async def get_assessment(db: Db, agency_id: str, assessment_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE id = $1 AND agency_id = $2",
        assessment_id,
        agency_id,
    )


async def list_assessments(
    db: Db, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE patient_id = $1 AND agency_id = $2"
        " ORDER BY assessed_at, id LIMIT $3 OFFSET $4",
        patient_id,
        agency_id,
        limit,
        offset,
    )
