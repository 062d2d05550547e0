"""careplan's tables. Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from careloop_shared.db import update_by_id

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

MEMBER_COLUMNS = "id, patient_id, name, relationship, role, contact, status, created_at, updated_at"
REQUEST_COLUMNS = (
    "id, patient_id, plan_id, service_code, met, failed_criteria, alternatives, criteria_version,"
    " chosen_alternative, chosen_at, created_at"
)


async def upsert_patient(
    conn: asyncpg.Connection,
    patient_id: uuid.UUID,
    agency_id: str,
    language: str | None,
    contact_preference: str | None,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO patients (patient_id, agency_id, preferred_language, contact_preference, updated_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (patient_id) DO UPDATE SET"
        " preferred_language = EXCLUDED.preferred_language,"
        " contact_preference = COALESCE(EXCLUDED.contact_preference, patients.contact_preference),"
        " updated_at = EXCLUDED.updated_at WHERE patients.updated_at <= EXCLUDED.updated_at",
        patient_id,
        agency_id,
        language,
        contact_preference,
        at,
    )


async def lock_plan(conn: asyncpg.Connection, patient_id: uuid.UUID) -> dict[str, Any] | None:
    return (await lock_plans(conn, [patient_id])).get(patient_id)


async def lock_plans(
    conn: asyncpg.Connection, patient_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Several patients' plans, locked in one lock order (so concurrent batches cannot deadlock)."""
    rows = await conn.fetch(
        "SELECT p.patient_id, p.plan_id, p.agency_id, p.version, p.status, p.assessments, p.services,"
        " p.agreed_goals, p.overrides, v.document, pr.preferred_language, pr.contact_preference FROM plans p"
        " LEFT JOIN plan_versions v ON v.plan_id = p.plan_id AND v.version = p.version"
        " LEFT JOIN patients pr ON pr.patient_id = p.patient_id"
        " WHERE p.patient_id = ANY($1::uuid[]) ORDER BY p.patient_id FOR UPDATE OF p",
        sorted(set(patient_ids)),
    )
    return {r["patient_id"]: dict(r) for r in rows}


async def open_plans(conn: asyncpg.Connection, openings: dict[uuid.UUID, tuple[str, datetime]]) -> None:
    """A draft plan for each patient that has none yet (patient -> agency, time)."""
    await conn.execute(
        "INSERT INTO plans (patient_id, plan_id, agency_id, version, status, updated_at)"
        " SELECT p, gen_random_uuid(), a, 0, 'draft', t"
        " FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS x(p, a, t)"
        " ON CONFLICT (patient_id) DO NOTHING",
        list(openings),
        [a for a, _ in openings.values()],
        [t for _, t in openings.values()],
    )


_INPUTS = ("assessments", "services", "agreed_goals", "overrides")


async def set_plan_inputs(conn: asyncpg.Connection, plan: dict[str, Any]) -> None:
    """Store what the plan is drafted from, when drafting it anew changed nothing."""
    await conn.execute(
        "UPDATE plans SET assessments = $2, services = $3, agreed_goals = $4, overrides = $5"
        " WHERE patient_id = $1",
        plan["patient_id"],
        *(plan[c] for c in _INPUTS),
    )


async def save_version(
    conn: asyncpg.Connection,
    plan: dict[str, Any],
    *,
    version: int,
    status: str,
    document: dict[str, Any],
    reason: str,
    changed_by: str,
    caused_by_event: uuid.UUID | None,
    at: datetime,
) -> None:
    """Append the version and move the plan to it, with what it was drafted from, in one statement."""
    await conn.execute(
        "WITH v AS (INSERT INTO plan_versions (plan_id, version, status, document, reason, changed_by,"
        " caused_by_event, created_at) VALUES ($2, $3, $4, $5, $6, $7, $8, $9))"
        " UPDATE plans SET version = $3, status = $4, updated_at = $9, assessments = $10, services = $11,"
        " agreed_goals = $12, overrides = $13 WHERE patient_id = $1",
        plan["patient_id"],
        plan["plan_id"],
        version,
        status,
        document,
        reason,
        changed_by,
        caused_by_event,
        at,
        *(plan[c] for c in _INPUTS),
    )


async def plan_version(
    db: Db, agency_id: str, patient_id: uuid.UUID, version: int | None = None
) -> asyncpg.Record | None:
    """The given version of the patient's plan, or the current one."""
    return await db.fetchrow(
        "SELECT p.plan_id, v.version, v.status, v.document, v.reason, v.changed_by, v.created_at"
        " FROM plans p JOIN plan_versions v ON v.plan_id = p.plan_id"
        " AND v.version = COALESCE($3::int, p.version)"
        " WHERE p.patient_id = $1 AND p.agency_id = $2",
        patient_id,
        agency_id,
        version,
    )


async def plan_versions(
    db: Db, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT v.version, v.status, v.reason, v.changed_by, v.created_at FROM plans p"
        " JOIN plan_versions v ON v.plan_id = p.plan_id WHERE p.patient_id = $1 AND p.agency_id = $2"
        " ORDER BY v.version LIMIT $3 OFFSET $4",
        patient_id,
        agency_id,
        limit,
        offset,
    )


async def insert_member(conn: asyncpg.Connection, row: dict[str, Any]) -> asyncpg.Record:
    record: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO care_team_members (id, patient_id, agency_id, name, relationship, role, contact, status,"
        " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8)"
        f" RETURNING {MEMBER_COLUMNS}",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["name"],
        row["relationship"],
        row["role"],
        row["contact"],
        row["at"],
    )
    return record


async def get_member(
    db: Db, agency_id: str, patient_id: uuid.UUID, member_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {MEMBER_COLUMNS} FROM care_team_members WHERE id = $1 AND patient_id = $2 AND agency_id = $3"
        + (" FOR UPDATE" if lock else ""),
        member_id,
        patient_id,
        agency_id,
    )


async def update_member(
    conn: asyncpg.Connection, member_id: uuid.UUID, changes: dict[str, Any], at: datetime
) -> asyncpg.Record:
    record = await update_by_id(
        conn, "care_team_members", member_id, changes, at=at, returning=MEMBER_COLUMNS
    )
    assert record is not None
    return record


async def care_team(db: Db, agency_id: str, patient_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {MEMBER_COLUMNS} FROM care_team_members WHERE patient_id = $1 AND agency_id = $2"
        " ORDER BY created_at, id",
        patient_id,
        agency_id,
    )


async def insert_contribution(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO contributions (id, patient_id, agency_id, member_id, kind, goal_id, note, preference,"
        " plan_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["member_id"],
        row["kind"],
        row["goal_id"],
        row["note"],
        row["preference"],
        row["plan_version"],
        row["at"],
    )


async def insert_service_request(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO service_requests (id, patient_id, agency_id, plan_id, service_code, met,"
        " failed_criteria, alternatives, criteria_version, requested_by, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["plan_id"],
        row["service_code"],
        row["met"],
        row["failed_criteria"],
        row["alternatives"],
        row["criteria_version"],
        row["requested_by"],
        row["at"],
    )


async def get_service_request(
    db: Db, agency_id: str, patient_id: uuid.UUID, request_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {REQUEST_COLUMNS} FROM service_requests WHERE id = $1 AND patient_id = $2 AND agency_id = $3"
        + (" FOR UPDATE" if lock else ""),
        request_id,
        patient_id,
        agency_id,
    )


async def choose_alternative(
    conn: asyncpg.Connection, request_id: uuid.UUID, alternative: str, at: datetime
) -> None:
    await conn.execute(
        "UPDATE service_requests SET chosen_alternative = $2, chosen_at = $3 WHERE id = $1",
        request_id,
        alternative,
        at,
    )


async def service_requests(db: Db, agency_id: str, patient_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {REQUEST_COLUMNS} FROM service_requests WHERE patient_id = $1 AND agency_id = $2"
        " ORDER BY created_at, id",
        patient_id,
        agency_id,
    )


async def insert_education(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO education_records (id, patient_id, agency_id, plan_id, intervention_id, materials,"
        " language, recorded_by, provided_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["plan_id"],
        row["intervention_id"],
        row["materials"],
        row["language"],
        row["recorded_by"],
        row["at"],
    )
