"""referral's tables. Referral reads are scoped to the caller's agency; the directory is shared."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from referral.domain.consent import Consent
from referral.domain.quality import History
from referral.schemas import OrganizationIn, ServiceIn

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

REFERRAL_COLUMNS = (
    "id, service_request_id, patient_id, agency_id, agency_id AS referring_agency_id, plan_id,"
    " intervention_id, need, program_category, program_id, receiving_agency_id, status, status_reason,"
    " priority, language, postal_area, consent_id, outcome, replaces_referral_id, made_at,"
    " response_due_at, outcome_due_at, response_overdue_at IS NOT NULL AS response_overdue,"
    " outcome_overdue_at IS NOT NULL AS outcome_overdue, accepted_at, created_at, updated_at"
)
SERVICE_COLUMNS = (
    "s.id, s.organization_id, s.name, s.description, s.program_category, s.needs, s.status, s.languages,"
    " s.interpretation_services, s.eligibility, s.hours, s.capacity_status, s.capacity_notes,"
    " s.capacity_updated_at, s.contact, s.location_ids, s.updated_at, o.agency_id AS receiving_agency_id"
)
# Who may see a referral: the referring agency always; the receiving agency once it was sent.
_VISIBLE = "(agency_id = $1 OR (receiving_agency_id = $1 AND status <> 'draft'))"


# --- directory ---------------------------------------------------------------------------------


async def upsert_organization(
    conn: asyncpg.Connection, org: OrganizationIn, *, source: str, at: datetime
) -> bool | None:
    """Insert or update; True when created, None when a seed load met a row the API changed."""
    created = await conn.fetchval(
        "INSERT INTO organizations AS o (id, agency_id, name, description, url, email, phone, source,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (id) DO UPDATE SET agency_id = EXCLUDED.agency_id, name = EXCLUDED.name,"
        " description = EXCLUDED.description, url = EXCLUDED.url, email = EXCLUDED.email,"
        " phone = EXCLUDED.phone, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at"
        " WHERE EXCLUDED.source = 'api' OR o.source = 'seed'"
        " RETURNING (xmax = 0)",
        org.id,
        org.agency_id,
        org.name,
        org.description,
        org.url,
        org.email,
        org.phone,
        source,
        at,
    )
    if created is None:
        return None
    await conn.execute(
        "DELETE FROM locations WHERE organization_id = $1 AND NOT (id = ANY($2::text[]))",
        org.id,
        [loc.id for loc in org.locations],
    )
    await conn.executemany(
        "INSERT INTO locations (id, organization_id, name, location_type, postal_code)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
        " location_type = EXCLUDED.location_type, postal_code = EXCLUDED.postal_code"
        " WHERE locations.organization_id = EXCLUDED.organization_id",
        [(loc.id, org.id, loc.name, loc.location_type, loc.postal_code) for loc in org.locations],
    )
    return bool(created)


async def upsert_service(
    conn: asyncpg.Connection, svc: ServiceIn, *, source: str, at: datetime
) -> bool | None:
    """Insert or update; True when created, None when a seed load met a row the API changed."""
    created = await conn.fetchval(
        "INSERT INTO services AS s (id, organization_id, name, description, program_category, needs, status,"
        " languages, interpretation_services, eligibility, hours, capacity_status, capacity_notes,"
        " capacity_updated_at, contact, location_ids, source, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $14)"
        " ON CONFLICT (id) DO UPDATE SET organization_id = EXCLUDED.organization_id,"
        " name = EXCLUDED.name, description = EXCLUDED.description,"
        " program_category = EXCLUDED.program_category, needs = EXCLUDED.needs, status = EXCLUDED.status,"
        " languages = EXCLUDED.languages, interpretation_services = EXCLUDED.interpretation_services,"
        " eligibility = EXCLUDED.eligibility, hours = EXCLUDED.hours,"
        " capacity_status = EXCLUDED.capacity_status, capacity_notes = EXCLUDED.capacity_notes,"
        " capacity_updated_at = CASE WHEN (s.capacity_status, s.capacity_notes)"
        "   IS DISTINCT FROM (EXCLUDED.capacity_status, EXCLUDED.capacity_notes)"
        "   THEN EXCLUDED.capacity_updated_at ELSE s.capacity_updated_at END,"
        " contact = EXCLUDED.contact, location_ids = EXCLUDED.location_ids, source = EXCLUDED.source,"
        " updated_at = EXCLUDED.updated_at"
        " WHERE EXCLUDED.source = 'api' OR s.source = 'seed'"
        " RETURNING (xmax = 0)",
        svc.id,
        svc.organization_id,
        svc.name,
        svc.description,
        svc.program_category,
        svc.needs,
        svc.status,
        svc.languages,
        svc.interpretation_services,
        svc.eligibility.model_dump(),
        [h.model_dump() for h in svc.hours],
        svc.capacity.status,
        svc.capacity.notes,
        at,
        svc.contact.model_dump(exclude_none=True),
        svc.location_ids,
        source,
    )
    return None if created is None else bool(created)


async def get_organization(db: Db, org_id: str) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "SELECT id, agency_id, name, description, url, email, phone, updated_at FROM organizations"
        " WHERE id = $1",
        org_id,
    )
    if row is None:
        return None
    locations = await db.fetch(
        "SELECT id, name, location_type, postal_code FROM locations WHERE organization_id = $1 ORDER BY id",
        org_id,
    )
    return {**dict(row), "locations": [dict(r) for r in locations]}


async def list_organizations(db: Db, limit: int, offset: int) -> list[dict[str, Any]]:
    ids = await db.fetch("SELECT id FROM organizations ORDER BY id LIMIT $1 OFFSET $2", limit, offset)
    return [org for r in ids if (org := await get_organization(db, r["id"])) is not None]


def _service_out(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["capacity"] = {"status": out.pop("capacity_status"), "notes": out.pop("capacity_notes")}
    return out


async def get_service(db: Db, service_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await db.fetchrow(
        f"SELECT {SERVICE_COLUMNS} FROM services s JOIN organizations o ON o.id = s.organization_id"
        " WHERE s.id = $1" + (" FOR UPDATE OF s" if lock else ""),
        service_id,
    )
    return None if row is None else _service_out(row)


async def search_services(
    db: Db,
    *,
    need: str | None,
    category: str | None,
    language: str | None,
    postal_area: str | None,
    capacity: str | None,
    organization_id: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {SERVICE_COLUMNS} FROM services s JOIN organizations o ON o.id = s.organization_id"
        " WHERE ($1::text IS NULL OR s.needs ? $1 OR s.program_category = $1)"
        " AND ($2::text IS NULL OR s.program_category = $2)"
        " AND ($3::text IS NULL OR s.interpretation_services OR EXISTS (SELECT 1 FROM"
        "   jsonb_array_elements_text(s.languages) l WHERE lower(split_part(l, '-', 1)) = $3))"
        " AND ($4::text IS NULL OR jsonb_array_length(s.eligibility->'postal_prefixes') = 0"
        "   OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(s.eligibility->'postal_prefixes') p"
        "   WHERE $4 LIKE upper(p) || '%' OR upper(p) LIKE $4 || '%'))"
        " AND ($5::text IS NULL OR s.capacity_status = $5)"
        " AND ($6::text IS NULL OR s.organization_id = $6)"
        " ORDER BY s.id LIMIT $7 OFFSET $8",
        need,
        category,
        language,
        postal_area,
        capacity,
        organization_id,
        limit,
        offset,
    )
    return [_service_out(r) for r in rows]


async def update_capacity(
    conn: asyncpg.Connection, service_id: str, status: str, notes: str | None, at: datetime
) -> None:
    await conn.execute(
        "UPDATE services SET capacity_status = $2, capacity_notes = $3, capacity_updated_at = $4,"
        " updated_at = $4, source = 'api' WHERE id = $1",
        service_id,
        status,
        notes,
        at,
    )


async def candidate_services(db: Db, category: str | None, need: str) -> list[asyncpg.Record]:
    """Active services addressing the need; ranking decides the rest."""
    return await db.fetch(
        f"SELECT {SERVICE_COLUMNS} FROM services s JOIN organizations o ON o.id = s.organization_id"
        " WHERE s.status = 'active' AND (s.program_category = $1 OR s.needs ? $2) ORDER BY s.id",
        category,
        need,
    )


async def histories(db: Db, service_ids: Sequence[str]) -> dict[str, History]:
    rows = await db.fetch(
        "SELECT program_id, count(*) AS sent,"
        " count(*) FILTER (WHERE accepted_at IS NOT NULL) AS accepted,"
        " count(*) FILTER (WHERE status = 'rejected') AS rejected,"
        " count(*) FILTER (WHERE accepted_at IS NOT NULL"
        "   AND status IN ('completed', 'failed', 'cancelled')) AS closed,"
        " count(*) FILTER (WHERE status = 'completed') AS completed,"
        " count(*) FILTER (WHERE accepted_at IS NOT NULL AND outcome IS NOT NULL"
        "   AND status IN ('completed', 'failed', 'cancelled')) AS closed_with_outcome,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM accepted_at - made_at) / 3600)"
        "   FILTER (WHERE accepted_at IS NOT NULL) AS median_hours_to_accept"
        " FROM referrals WHERE program_id = ANY($1::text[]) AND made_at IS NOT NULL"
        " AND status <> 'entered-in-error' GROUP BY program_id",
        list(service_ids),
    )
    return {
        r["program_id"]: History(
            sent=r["sent"],
            accepted=r["accepted"],
            rejected=r["rejected"],
            closed=r["closed"],
            completed=r["completed"],
            closed_with_outcome=r["closed_with_outcome"],
            median_hours_to_accept=None
            if r["median_hours_to_accept"] is None
            else round(float(r["median_hours_to_accept"]), 2),
        )
        for r in rows
    }


# --- what referral knows of patients and their consents -----------------------------------------


async def upsert_patient(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    """Keep the newest details; an older event arriving late changes nothing."""
    await conn.execute(
        "INSERT INTO patients AS p (patient_id, agency_id, preferred_language, contact_preference,"
        " postal_area, as_of) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (patient_id) DO UPDATE SET preferred_language = EXCLUDED.preferred_language,"
        " contact_preference = EXCLUDED.contact_preference, postal_area = EXCLUDED.postal_area,"
        " as_of = EXCLUDED.as_of WHERE p.as_of <= EXCLUDED.as_of",
        row["patient_id"],
        row["agency_id"],
        row["preferred_language"],
        row["contact_preference"],
        row["postal_area"],
        row["as_of"],
    )


async def get_patient(db: Db, patient_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM patients WHERE patient_id = $1", patient_id)


async def record_consent(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    # A revocation read before its consent left a row behind: fill it in, keep it revoked.
    await conn.execute(
        "INSERT INTO consents (id, patient_id, agency_id, purpose, agencies, program_categories,"
        " period_start, period_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (id) DO UPDATE SET purpose = EXCLUDED.purpose, agencies = EXCLUDED.agencies,"
        " program_categories = EXCLUDED.program_categories, period_start = EXCLUDED.period_start,"
        " period_end = EXCLUDED.period_end",
        row["id"],
        row["patient_id"],
        row["agency_id"],
        row["purpose"],
        row["agencies"],
        row["program_categories"],
        row["period_start"],
        row["period_end"],
    )


async def revoke_consent(
    conn: asyncpg.Connection, consent_id: uuid.UUID, patient_id: uuid.UUID, agency_id: str, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO consents (id, patient_id, agency_id, purpose, agencies, program_categories,"
        " period_start, revoked_at) VALUES ($1, $2, $3, 'unknown', '[]', '[]', $4, $4)"
        " ON CONFLICT (id) DO UPDATE SET revoked_at = coalesce(consents.revoked_at, EXCLUDED.revoked_at)",
        consent_id,
        patient_id,
        agency_id,
        at,
    )


async def consents_of(db: Db, patient_id: uuid.UUID) -> list[Consent]:
    rows = await db.fetch("SELECT * FROM consents WHERE patient_id = $1", patient_id)
    return [
        Consent(
            id=r["id"],
            purpose=r["purpose"],
            agencies=frozenset(r["agencies"]),
            program_categories=frozenset(r["program_categories"]),
            period_start=r["period_start"],
            period_end=r["period_end"],
            revoked=r["revoked_at"] is not None,
        )
        for r in rows
    ]


# --- referrals ------------------------------------------------------------------------------------


async def insert_referral(conn: asyncpg.Connection, row: dict[str, Any]) -> bool:
    """Insert unless the intervention (or the referral it re-routes) already has one; True when inserted."""
    inserted = await conn.fetchval(
        "INSERT INTO referrals (id, service_request_id, patient_id, agency_id, plan_id, intervention_id,"
        " need, program_category, program_id, receiving_agency_id, status, status_reason, priority,"
        " language, postal_area, consent_id, replaces_referral_id, made_at, response_due_at,"
        " outcome_due_at, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,"
        " $20, $21, $21) ON CONFLICT DO NOTHING RETURNING true",
        row["id"],
        row["service_request_id"],
        row["patient_id"],
        row["agency_id"],
        row["plan_id"],
        row["intervention_id"],
        row["need"],
        row["program_category"],
        row["program_id"],
        row["receiving_agency_id"],
        row["status"],
        row["status_reason"],
        row["priority"],
        row["language"],
        row["postal_area"],
        row["consent_id"],
        row["replaces_referral_id"],
        row["made_at"],
        row["response_due_at"],
        row["outcome_due_at"],
        row["created_at"],
    )
    return bool(inserted)


async def interventions_with_referral(db: Db, intervention_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these interventions already have their (original) referral."""
    rows = await db.fetch(
        "SELECT intervention_id FROM referrals"
        " WHERE intervention_id = ANY($1::uuid[]) AND replaces_referral_id IS NULL",
        list(intervention_ids),
    )
    return {r["intervention_id"] for r in rows}


async def services_tried(db: Db, intervention_id: uuid.UUID) -> list[str]:
    return [
        r["program_id"]
        for r in await db.fetch(
            "SELECT program_id FROM referrals WHERE intervention_id = $1 AND status <> 'draft'",
            intervention_id,
        )
    ]


async def get_referral(db: Db, referral_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        referral_id,
    )


async def visible_referral(db: Db, agency_id: str, referral_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE {_VISIBLE} AND id = $2", agency_id, referral_id
    )


async def list_referrals(
    db: Db,
    agency_id: str,
    *,
    patient_id: uuid.UUID | None,
    receiving_agency: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE {_VISIBLE}"
        " AND ($2::uuid IS NULL OR patient_id = $2) AND ($3::text IS NULL OR receiving_agency_id = $3)"
        " AND ($4::text IS NULL OR status = $4) ORDER BY created_at, id LIMIT $5 OFFSET $6",
        agency_id,
        patient_id,
        receiving_agency,
        status,
        limit,
        offset,
    )


async def history_of(db: Db, referral_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT from_status, to_status, by_agency_id, by_party, reason, outcome, note, changed_at"
        " FROM referral_status_history WHERE referral_id = $1 ORDER BY position",
        referral_id,
    )


async def add_history(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO referral_status_history (referral_id, from_status, to_status, by_agency_id, by_party,"
        " reason, outcome, note, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        row["referral_id"],
        row["from_status"],
        row["to_status"],
        row["by_agency_id"],
        row["by_party"],
        row.get("reason"),
        row.get("outcome"),
        row.get("note"),
        row["changed_at"],
    )


async def set_status(
    conn: asyncpg.Connection,
    referral_id: uuid.UUID,
    *,
    status: str,
    reason: str | None,
    outcome: dict[str, Any] | None,
    at: datetime,
    closed: bool,
) -> None:
    await conn.execute(
        "UPDATE referrals SET status = $2, status_reason = $3, outcome = coalesce($4, outcome),"
        " accepted_at = CASE WHEN $2 = 'accepted' THEN coalesce(accepted_at, $5) ELSE accepted_at END,"
        " closed_at = CASE WHEN $6 THEN $5 ELSE closed_at END, updated_at = $5 WHERE id = $1",
        referral_id,
        status,
        reason,
        outcome,
        at,
        closed,
    )


async def send_draft(conn: asyncpg.Connection, referral_id: uuid.UUID, row: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE referrals SET status = 'requested', status_reason = NULL, program_id = $2,"
        " receiving_agency_id = $3, consent_id = $4, made_at = $5, response_due_at = $6,"
        " outcome_due_at = $7, updated_at = $5 WHERE id = $1",
        referral_id,
        row["program_id"],
        row["receiving_agency_id"],
        row["consent_id"],
        row["made_at"],
        row["response_due_at"],
        row["outcome_due_at"],
    )


async def set_consent(conn: asyncpg.Connection, referral_id: uuid.UUID, consent_id: uuid.UUID | None) -> None:
    await conn.execute("UPDATE referrals SET consent_id = $2 WHERE id = $1", referral_id, consent_id)


async def drafts_of(conn: asyncpg.Connection, patient_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE patient_id = $1 AND status = 'draft'"
        " ORDER BY created_at, id FOR UPDATE",
        patient_id,
    )


async def requested_under(conn: asyncpg.Connection, consent_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE consent_id = $1 AND status = 'requested'"
        " ORDER BY created_at, id FOR UPDATE",
        consent_id,
    )


async def record_gap_once(conn: asyncpg.Connection, row: dict[str, Any]) -> bool:
    return bool(
        await conn.fetchval(
            "INSERT INTO network_gaps (intervention_id, patient_id, need, program_category, postal_area,"
            " language, detected_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (intervention_id) DO NOTHING RETURNING true",
            row["intervention_id"],
            row["patient_id"],
            row["need"],
            row["program_category"],
            row["postal_area"],
            row["language"],
            row["detected_at"],
        )
    )


async def resolve_gap(conn: asyncpg.Connection, intervention_id: uuid.UUID, at: datetime) -> None:
    await conn.execute(
        "UPDATE network_gaps SET resolved_at = $2 WHERE intervention_id = $1 AND resolved_at IS NULL",
        intervention_id,
        at,
    )


# --- deadlines ------------------------------------------------------------------------------------


async def claim_response_overdue(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Lock unanswered referrals past their response deadline; other replicas skip them."""
    return await conn.fetch(
        "UPDATE referrals SET response_overdue_at = $1 WHERE id IN (SELECT id FROM referrals"
        " WHERE status = 'requested' AND response_overdue_at IS NULL AND response_due_at <= $1"
        " ORDER BY response_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, patient_id, agency_id, receiving_agency_id, response_due_at AS due_at",
        now,
        limit,
    )


async def claim_outcome_overdue(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "UPDATE referrals SET outcome_overdue_at = $1 WHERE id IN (SELECT id FROM referrals"
        " WHERE status IN ('requested', 'accepted', 'in-progress', 'on-hold')"
        " AND outcome_overdue_at IS NULL AND outcome_due_at <= $1"
        " ORDER BY outcome_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, patient_id, agency_id, receiving_agency_id, outcome_due_at AS due_at",
        now,
        limit,
    )
