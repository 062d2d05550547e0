"""The plans wing's tables: patients' preferences, plans with what they are drafted from, plan versions
(append-only). Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.coalesce import rounds
from careloop_shared.db import Db, Store, by_key, columns_of, insert_rows_each, rows_from
from careplan.domain.plan import INPUTS, PlanDocument, PlanState


class PlanStore(Store):
    async def upsert_patient(
        self,
        patient_id: uuid.UUID,
        agency_id: str,
        language: str | None,
        contact_preference: str | None,
        safe_channels: list[str] | None,
        at: datetime,
    ) -> None:
        """Record the patient's preferences; an older event than the last one applied changes nothing.
        The safe channels are as the event says: none said means none safe. Patients' events handled
        side by side share one statement."""
        row = {
            "patient_id": patient_id,
            "agency_id": agency_id,
            "preferred_language": language,
            "contact_preference": contact_preference,
            "safe_channels": safe_channels,
            "updated_at": at,
        }
        await self.one(_upsert_patients, row)

    async def lock_plan(self, patient_id: uuid.UUID) -> PlanState | None:
        """The patient's plan, locked; plans asked for side by side are locked in one statement."""
        plan: PlanState | None = await self.one(_lock_plans, patient_id)
        return plan

    async def lock_plans(self, patient_ids: list[uuid.UUID]) -> dict[uuid.UUID, PlanState]:
        """Several patients' plans, locked in one lock order (so concurrent batches cannot deadlock)."""
        plans = await _lock_plans(self.db, patient_ids)
        return {i: plan for i, plan in zip(patient_ids, plans, strict=True) if plan}

    async def open_plans(self, openings: dict[uuid.UUID, tuple[str, datetime]]) -> None:
        """A draft plan at version 0 for each patient that has none yet (patient -> agency, time)."""
        await self.db.execute(
            "INSERT INTO plans (patient_id, plan_id, agency_id, version, status, updated_at)"
            " SELECT p, gen_random_uuid(), a, 0, 'draft', t"
            " FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS x(p, a, t)"
            " ON CONFLICT (patient_id) DO NOTHING",
            list(openings),
            [a for a, _ in openings.values()],
            [t for _, t in openings.values()],
        )

    async def set_plan_inputs(self, plan: PlanState) -> None:
        """Store what the plan is drafted from, when drafting it anew changed nothing."""
        inputs = plan.stored_inputs()
        await self.db.execute(
            "UPDATE plans SET assessments = $2, services = $3, agreed_goals = $4, overrides = $5,"
            " stated_needs = $6, personal_goals = $7 WHERE patient_id = $1",
            plan.patient_id,
            *(inputs[c] for c in INPUTS),
        )

    async def save_version(
        self,
        plan: PlanState,
        *,
        version: int,
        status: str,
        document: PlanDocument,
        reason: str,
        changed_by: str,
        changed_by_subject: str | None,
        caused_by_event: uuid.UUID | None,
        at: datetime,
    ) -> None:
        """Append the version and move the plan to it, with what it was drafted from, in one statement."""
        inputs = plan.stored_inputs()
        row = (
            plan.patient_id,
            plan.plan_id,
            version,
            status,
            document.stored(),
            reason,
            changed_by,
            changed_by_subject,
            caused_by_event,
            at,
            *(inputs[c] for c in INPUTS),
            plan.agency_id,
        )
        await self.one(_save_versions, row)

    async def plan_version(
        self, agency_id: str, patient_id: uuid.UUID, version: int | None = None
    ) -> asyncpg.Record | None:
        """The given version of the patient's plan, or the current one."""
        return await self.db.fetchrow(
            "SELECT p.plan_id, v.version, v.status, v.document, v.reason, v.changed_by, v.changed_by_subject,"
            " v.created_at"
            " FROM plans p JOIN plan_versions v ON v.plan_id = p.plan_id"
            " AND v.version = COALESCE($3::int, p.version)"
            " WHERE p.patient_id = $1 AND p.agency_id = $2",
            patient_id,
            agency_id,
            version,
        )

    async def plan_versions(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        return await self.db.fetch(
            "SELECT p.plan_id, v.version, v.status, v.reason, v.changed_by, v.changed_by_subject,"
            " v.created_at FROM plans p"
            " JOIN plan_versions v ON v.plan_id = p.plan_id WHERE p.patient_id = $1 AND p.agency_id = $2"
            " ORDER BY v.version LIMIT $3 OFFSET $4",
            patient_id,
            agency_id,
            limit,
            offset,
        )

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        """Whose patient this is: the plan's agency, else the one intake's events named."""
        agency: str | None = await self.db.fetchval(
            "SELECT COALESCE((SELECT agency_id FROM plans WHERE patient_id = $1),"
            " (SELECT agency_id FROM patients WHERE patient_id = $1))",
            patient_id,
        )
        return agency


async def _upsert_patients(db: Db, rows: list[dict[str, Any]]) -> list[None]:
    """Many patients' preferences in one statement (see ``PlanStore.upsert_patient``)."""
    return await insert_rows_each(
        db,
        "patients",
        rows,
        conflict="(patient_id) DO UPDATE SET preferred_language = EXCLUDED.preferred_language,"
        " contact_preference = COALESCE(EXCLUDED.contact_preference, patients.contact_preference),"
        " safe_channels = EXCLUDED.safe_channels,"
        " updated_at = EXCLUDED.updated_at WHERE patients.updated_at <= EXCLUDED.updated_at",
        upsert_key="patient_id",
    )


async def _lock_plans(db: Db, patient_ids: list[uuid.UUID]) -> list[PlanState | None]:
    """Each patient's plan (None without one), all locked in the patients' order."""
    rows = await db.fetch(
        "SELECT p.patient_id, p.plan_id, p.agency_id, p.version, p.status, p.assessments, p.services,"
        " p.agreed_goals, p.overrides, p.stated_needs, p.personal_goals, v.document, pr.preferred_language,"
        " pr.contact_preference, pr.safe_channels"
        " FROM plans p"
        " LEFT JOIN plan_versions v ON v.plan_id = p.plan_id AND v.version = p.version"
        " LEFT JOIN patients pr ON pr.patient_id = p.patient_id"
        " WHERE p.patient_id = ANY($1::uuid[]) ORDER BY p.patient_id FOR UPDATE OF p",
        sorted(set(patient_ids)),
    )
    found = by_key(patient_ids, rows, "patient_id")
    return [None if r is None else PlanState.model_validate(dict(r)) for r in found]


# A saved version's values, in the order ``PlanStore.save_version`` gives them, with their types.
_VERSION = {
    "patient_id": "uuid",
    "plan_id": "uuid",
    "version": "integer",
    "status": "text",
    "document": "jsonb",
    "reason": "text",
    "changed_by": "text",
    "changed_by_subject": "text",
    "caused_by_event": "uuid",
    "created_at": "timestamptz",
    **dict.fromkeys(INPUTS, "jsonb"),
    "agency_id": "text",
}
_KEPT = (
    "plan_id, version, status, document, reason, changed_by, changed_by_subject, caused_by_event, created_at"
)


async def _save_versions(db: Db, rows: list[tuple[Any, ...]]) -> list[None]:
    """Many patients' new versions in one statement (see ``PlanStore.save_version``); a patient's second
    version among them in a statement after it (one statement cannot update a plan twice)."""
    for round_ in rounds(rows, key=lambda row: row[0]):
        await db.execute(
            f"WITH r AS (SELECT * FROM {rows_from(_VERSION)}),"
            f" v AS (INSERT INTO plan_versions ({_KEPT}, agency_id) SELECT {_KEPT}, agency_id FROM r)"
            " UPDATE plans p SET version = r.version, status = r.status, updated_at = r.created_at,"
            + ", ".join(f" {c} = r.{c}" for c in INPUTS)
            + " FROM r WHERE p.patient_id = r.patient_id",
            *columns_of(round_, _VERSION),
        )
    return [None] * len(rows)
