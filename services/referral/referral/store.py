"""referral's tables. Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from careloop_shared.contracts import ReferralMade


async def insert_referral_once(
    conn: asyncpg.Connection, referral: ReferralMade, *, created_at: datetime
) -> bool:
    """Insert unless the intervention already has a referral; True when inserted."""
    inserted = await conn.fetchval(
        "INSERT INTO referrals (id, patient_id, agency_id, plan_id, intervention_id, need,"
        " program_id, receiving_agency_id, status, response_due_at, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (intervention_id) DO NOTHING RETURNING true",
        referral.referral_id,
        referral.patient_id,
        referral.agency_id,
        referral.plan_id,
        referral.intervention_id,
        referral.need,
        referral.program_id,
        referral.receiving_agency_id,
        referral.status,
        referral.response_due_at,
        created_at,
    )
    return bool(inserted)


async def referrals_of(pool: asyncpg.Pool, agency_id: str, patient_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, patient_id, plan_id, intervention_id, need, program_id, receiving_agency_id,"
        " status, response_due_at, created_at FROM referrals"
        " WHERE agency_id = $1 AND patient_id = $2 ORDER BY created_at",
        agency_id,
        patient_id,
    )
