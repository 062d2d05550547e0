"""The closed loop's tables: referrals and their status history, and what referral knows of patients,
their consents (from intake's events) and their current care plans (from careplan's).

A referral is visible to the agency that made it, and to the receiving agency once it was sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row, insert_rows, update_by_id
from referral.domain.consent import Consent
from referral.loop import batches

REFERRAL_COLUMNS = (
    "id, service_request_id, patient_id, agency_id, agency_id AS referring_agency_id, plan_id,"
    " intervention_id, need, program_category, program_id, receiving_agency_id, status, status_reason,"
    " priority, language, postal_area, consent_id, outcome, replaces_referral_id, made_at,"
    " response_due_at, outcome_due_at, response_overdue_at IS NOT NULL AS response_overdue,"
    " outcome_overdue_at IS NOT NULL AS outcome_overdue, accepted_at, created_at, updated_at, choice,"
    " made_by, made_by_role, appointment_status, appointment_starts_at,"
    " attendance_overdue_at IS NOT NULL AS attendance_overdue"
)
# Who may see a referral: the referring agency always; the receiving agency once it was sent.
_VISIBLE = "(agency_id = $1 OR (receiving_agency_id = $1 AND status <> 'draft'))"
# A provider (a receiving agency's staff) sees only what was sent to its agency.
_SENT_TO = "(receiving_agency_id = $1 AND status <> 'draft')"
_OVERDUE_COLUMNS = "id, patient_id, agency_id, receiving_agency_id"


# A consent recorded again (a redelivery), or after a revocation read before it left a row behind: its
# terms filled in, a revocation kept.
_CONSENT_KEPT = (
    "(id) DO UPDATE SET purpose = EXCLUDED.purpose, agencies = EXCLUDED.agencies,"
    " program_categories = EXCLUDED.program_categories, period_start = EXCLUDED.period_start,"
    " period_end = EXCLUDED.period_end"
)


_DELIVERED = "coalesce((outcome->>'service_delivered')::boolean, true)"
_HOURS = "extract(epoch FROM {} - made_at) / 3600"
# An agency's referrals made in a period, counted (ReferralSummary). Entered in error: as if never made.
_SUMMARY = (
    "SELECT count(*) AS made,"
    " count(DISTINCT intervention_id) AS needs_referred,"
    f" count(DISTINCT intervention_id) FILTER (WHERE status = 'completed' AND {_DELIVERED}) AS needs_served,"
    " count(*) FILTER (WHERE status = 'draft') AS waiting_for_consent,"
    " count(*) FILTER (WHERE status IN ('requested', 'accepted', 'in-progress', 'on-hold')) AS open,"
    " count(*) FILTER (WHERE status = 'requested' AND response_due_at < $4) AS answer_overdue,"
    " count(*) FILTER (WHERE status IN ('accepted', 'in-progress', 'on-hold') AND outcome_due_at < $4)"
    " AS outcome_overdue,"
    " count(*) FILTER (WHERE accepted_at IS NOT NULL) AS accepted,"
    " count(*) FILTER (WHERE status = 'rejected') AS rejected,"
    f" count(*) FILTER (WHERE status = 'completed' AND {_DELIVERED}) AS delivered,"
    f" count(*) FILTER (WHERE status = 'failed' OR (status = 'completed' AND NOT {_DELIVERED}))"
    " AS not_delivered,"
    " count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"
    f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {_HOURS.format('accepted_at')})"
    " FILTER (WHERE accepted_at IS NOT NULL AND made_at IS NOT NULL) AS hours_to_accept_median,"
    f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {_HOURS.format('closed_at')})"
    f" FILTER (WHERE status = 'completed' AND {_DELIVERED} AND made_at IS NOT NULL)"
    " AS hours_to_deliver_median"
    " FROM referrals WHERE {whose} AND status <> 'entered-in-error'"
    " AND ($2::timestamptz IS NULL OR created_at >= $2) AND ($3::timestamptz IS NULL OR created_at < $3)"
)
_SUMMARY_MADE = _SUMMARY.replace("{whose}", "agency_id = $1")
# Those sent to the agency (a waiting draft is the referring agency's alone).
_SUMMARY_RECEIVED = _SUMMARY.replace("{whose}", "receiving_agency_id = $1 AND status <> 'draft'")


class LoopStore(Store):
    # --- what intake told us of patients and their consents -------------------------------------

    async def upsert_patient(self, row: dict[str, Any]) -> None:
        """Keep the newest details; an older event arriving late changes nothing. Patients' events
        handled side by side share one statement."""
        await self.one(batches.upsert_patients, row)

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        """Whose patient this is: as intake told us, else as the patient's referrals say."""
        agency: str | None = await self.db.fetchval(
            "SELECT coalesce((SELECT agency_id FROM patients WHERE patient_id = $1),"
            " (SELECT agency_id FROM referrals WHERE patient_id = $1 LIMIT 1))",
            patient_id,
        )
        return agency

    async def get_patient(self, patient_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.one(batches.patients_of, patient_id)

    async def record_consents(self, rows: list[dict[str, Any]]) -> None:
        """Several consents in one statement (one per row when a consent comes twice)."""
        await insert_rows(self.db, "consents", rows, conflict=_CONSENT_KEPT, upsert_key="id")

    async def revoke_consent(
        self, consent_id: uuid.UUID, patient_id: uuid.UUID, agency_id: str, at: datetime
    ) -> None:
        """Revoked from ``at``; a revocation arriving before its consent leaves a placeholder row."""
        placeholder = {
            "id": consent_id,
            "patient_id": patient_id,
            "agency_id": agency_id,
            "purpose": "unknown",
            "agencies": [],
            "program_categories": [],
            "period_start": at,
            "revoked_at": at,
        }
        await insert_row(
            self.db,
            "consents",
            placeholder,
            conflict="(id) DO UPDATE SET revoked_at = coalesce(consents.revoked_at, EXCLUDED.revoked_at)",
        )

    async def consents_of(self, patient_id: uuid.UUID) -> list[Consent]:
        consents: list[Consent] = await self.one(batches.consents_of, patient_id)
        return consents

    # --- what careplan told us of the patient's current plan --------------------------------------

    async def remember_plan(self, plan: dict[str, Any], interventions: list[dict[str, Any]]) -> bool | None:
        """Keep the patient's newest plan version and its interventions; False for an older or the same
        version arriving again (then nothing changes); None for a plan naming an intervention id another
        patient's plan holds, or one id twice (its interventions skipped: the plan is to be refused)."""
        newer: bool | None = await self.one(batches.remember_plans, (plan, interventions))
        return newer

    async def plan_intervention(
        self, patient_id: uuid.UUID, intervention_id: uuid.UUID
    ) -> asyncpg.Record | None:
        """The patient's current plan (agency, id, version, status), with the intervention when it is in
        it (its columns null otherwise); None when no plan of the patient is known."""
        return await self.db.fetchrow(
            "SELECT p.agency_id, p.plan_id, p.version, p.status AS plan_status, i.intervention_id, i.need,"
            " i.program_category, i.priority, i.language, i.status"
            " FROM plans p LEFT JOIN plan_interventions i"
            " ON i.patient_id = p.patient_id AND i.intervention_id = $2 WHERE p.patient_id = $1",
            patient_id,
            intervention_id,
        )

    # --- referrals ----------------------------------------------------------------------------------

    async def insert_referral(self, row: dict[str, Any]) -> bool:
        """Insert unless the intervention (or the referral it re-routes) already has one; True when
        inserted."""
        return bool(await self.one(batches.insert_referrals, row))

    async def interventions_with_referral(self, intervention_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these interventions already have their (original) referral."""
        found: set[uuid.UUID] = await self.one(batches.with_referral, tuple(intervention_ids))
        return found

    async def latest_referral(self, intervention_id: uuid.UUID) -> asyncpg.Record | None:
        """The intervention's newest referral (the one no other replaces), locked."""
        return await self.db.fetchrow(
            f"SELECT {REFERRAL_COLUMNS} FROM referrals r WHERE intervention_id = $1 AND NOT EXISTS"
            " (SELECT 1 FROM referrals n WHERE n.replaces_referral_id = r.id) FOR UPDATE",
            intervention_id,
        )

    async def services_tried(self, intervention_id: uuid.UUID) -> list[str]:
        """The programs the intervention's referrals were sent to."""
        rows = await self.db.fetch(
            "SELECT program_id FROM referrals WHERE intervention_id = $1 AND status <> 'draft'",
            intervention_id,
        )
        return [r["program_id"] for r in rows]

    async def get_referral(self, referral_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE id = $1" + (" FOR UPDATE" if lock else ""),
            referral_id,
        )

    async def visible_referral(
        self, agency_id: str, referral_id: uuid.UUID, *, sent_to_only: bool = False
    ) -> asyncpg.Record | None:
        visible = _SENT_TO if sent_to_only else _VISIBLE
        return await self.db.fetchrow(
            f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE {visible} AND id = $2", agency_id, referral_id
        )

    async def list_referrals(
        self,
        agency_id: str,
        *,
        patient_id: uuid.UUID | None,
        receiving_agency: str | None,
        status: Sequence[str] | None,
        limit: int,
        offset: int,
        sent_to_only: bool = False,
        attendance_overdue: bool | None = None,
    ) -> list[asyncpg.Record]:
        """``status``: any of these (None: any status); ``attendance_overdue``: only those whose booked
        appointment is (True) or is not (False) flagged as nobody having said whether the patient came."""
        visible = _SENT_TO if sent_to_only else _VISIBLE
        return await self.db.fetch(
            f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE {visible}"
            " AND ($2::uuid IS NULL OR patient_id = $2) AND ($3::text IS NULL OR receiving_agency_id = $3)"
            " AND ($4::text[] IS NULL OR status = ANY($4::text[]))"
            " AND ($7::boolean IS NULL OR (attendance_overdue_at IS NOT NULL) = $7)"
            " ORDER BY created_at, id LIMIT $5 OFFSET $6",
            agency_id,
            patient_id,
            receiving_agency,
            None if status is None else list(status),
            limit,
            offset,
            attendance_overdue,
        )

    async def summary(
        self,
        agency_id: str,
        since: datetime | None,
        until: datetime | None,
        now: datetime,
        *,
        received: bool = False,
    ) -> asyncpg.Record:
        """How the referrals the agency made in [since, until) went (``ReferralSummary``), or those sent to
        it (``received``); one read."""
        query = _SUMMARY_RECEIVED if received else _SUMMARY_MADE
        return await self.db.fetchrow(query, agency_id, since, until, now)

    async def history_of(self, referral_id: uuid.UUID) -> list[asyncpg.Record]:
        return await self.db.fetch(
            "SELECT from_status, to_status, by_agency_id, by_party, by_subject, by_role, reason, outcome,"
            " note, note_sealed, changed_at"
            " FROM referral_status_history WHERE referral_id = $1 ORDER BY position",
            referral_id,
        )

    async def add_history(self, row: dict[str, Any]) -> None:
        await self.one(batches.add_histories, row)

    async def set_appointment(self, referral_id: uuid.UUID, columns: dict[str, Any], at: datetime) -> None:
        """The referral's appointment as the receiving agency booked it or said how it went."""
        await update_by_id(self.db, "referrals", referral_id, columns, at=at)

    async def set_status(
        self,
        referral_id: uuid.UUID,
        *,
        status: str,
        reason: str | None,
        outcome: dict[str, Any] | None,
        at: datetime,
        closed: bool,
    ) -> None:
        """The new status; an outcome once given stays, and so does the first acceptance."""
        await self.db.execute(
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

    async def send_draft(self, referral_id: uuid.UUID, sent: dict[str, Any]) -> None:
        """A waiting referral goes out: ``sent`` names the program, consent, ``made_at`` and deadlines."""
        await update_by_id(
            self.db,
            "referrals",
            referral_id,
            {"status": "requested", "status_reason": None, **sent},
            at=sent["made_at"],
        )

    async def set_consent(self, referral_id: uuid.UUID, consent_id: uuid.UUID | None) -> None:
        await self.db.execute("UPDATE referrals SET consent_id = $2 WHERE id = $1", referral_id, consent_id)

    async def drafts_of(self, patient_id: uuid.UUID) -> list[asyncpg.Record]:
        """The patient's referrals waiting for consent, locked."""
        return (await self.drafts_of_patients([patient_id])).get(patient_id, [])

    async def drafts_of_patients(
        self, patient_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[asyncpg.Record]]:
        """Each patient's referrals waiting for consent (patients with some), locked, in one statement."""
        found: dict[uuid.UUID, list[asyncpg.Record]] = {}
        for row in await self.db.fetch(
            f"SELECT {REFERRAL_COLUMNS} FROM referrals"
            " WHERE patient_id = ANY($1::uuid[]) AND status = 'draft' ORDER BY created_at, id FOR UPDATE",
            sorted(set(patient_ids)),
        ):
            found.setdefault(row["patient_id"], []).append(row)
        return found

    async def requested_under(self, consent_id: uuid.UUID) -> list[asyncpg.Record]:
        """Referrals sent under the consent and not yet answered, locked."""
        return await self.db.fetch(
            f"SELECT {REFERRAL_COLUMNS} FROM referrals WHERE consent_id = $1 AND status = 'requested'"
            " ORDER BY created_at, id FOR UPDATE",
            consent_id,
        )

    # --- deadlines ----------------------------------------------------------------------------------

    async def claim_response_overdue(self, now: datetime, limit: int) -> list[asyncpg.Record]:
        """Flag unanswered referrals past their response deadline; other replicas skip locked ones."""
        return await self.db.fetch(
            "UPDATE referrals SET response_overdue_at = $1 WHERE id IN (SELECT id FROM referrals"
            " WHERE status = 'requested' AND response_overdue_at IS NULL AND response_due_at <= $1"
            " ORDER BY response_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_OVERDUE_COLUMNS}, response_due_at AS due_at",
            now,
            limit,
        )

    async def claim_outcome_overdue(self, now: datetime, limit: int) -> list[asyncpg.Record]:
        """Flag open referrals past their outcome deadline; other replicas skip locked ones."""
        return await self.db.fetch(
            "UPDATE referrals SET outcome_overdue_at = $1 WHERE id IN (SELECT id FROM referrals"
            " WHERE status IN ('requested', 'accepted', 'in-progress', 'on-hold')"
            " AND outcome_overdue_at IS NULL AND outcome_due_at <= $1"
            " ORDER BY outcome_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_OVERDUE_COLUMNS}, outcome_due_at AS due_at",
            now,
            limit,
        )

    async def claim_attendance_overdue(
        self, now: datetime, limit: int, grace: timedelta, statuses: list[str]
    ) -> list[asyncpg.Record]:
        """Flag booked appointments of referrals in ``statuses`` whose time passed ``grace`` ago with no
        word of whether the patient came; other replicas skip locked ones."""
        return await self.db.fetch(
            "UPDATE referrals SET attendance_overdue_at = $1 WHERE id IN (SELECT id FROM referrals"
            " WHERE appointment_status = 'booked' AND attendance_overdue_at IS NULL"
            " AND appointment_starts_at <= $1::timestamptz - $3::interval"
            " AND status = ANY($4::text[]) ORDER BY appointment_starts_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_OVERDUE_COLUMNS}, appointment_starts_at + $3::interval AS due_at",
            now,
            limit,
            grace,
            statuses,
        )
