"""Caseloads: each patient's care manager, and the counts a care manager and a supervisor work from."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Db, Store, by_key, insert_rows_returning

# One patient's open care tasks (those for the care manager by the rules, escalated or not) and follow-ups.
_COUNTS = (
    " LEFT JOIN LATERAL (SELECT count(*) AS open_tasks, count(*) FILTER (WHERE due_at < $2) AS overdue_tasks,"
    " count(*) FILTER (WHERE priority = ANY($3::text[])) AS urgent_tasks FROM tasks"
    " WHERE tasks.patient_id = p.patient_id AND status IN ('open', 'in-progress')"
    " AND for_role = $4) t ON true"
    " LEFT JOIN LATERAL (SELECT min(due_at) AS next_follow_up_due,"
    " count(*) FILTER (WHERE status = 'overdue') AS overdue_follow_ups FROM follow_ups"
    " WHERE follow_ups.patient_id = p.patient_id AND status IN ('scheduled', 'due', 'overdue')) f ON true"
)


class CaseloadStore(Store):
    async def learn_care_manager(self, row: dict[str, Any]) -> bool:
        """The patient's care manager as of ``assigned_at``: the newest assignment wins, and a known care
        manager is never forgotten for none. True when this one is now the patient's. Patients' events
        handled side by side share one statement."""
        return bool(await self.one(_learn_care_managers, row))

    async def care_manager(self, patient_id: uuid.UUID) -> str | None:
        found: str | None = await self.one(_care_managers, patient_id)
        return found

    async def care_managers(self, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        rows = await self.db.fetch(
            "SELECT patient_id, care_manager_id FROM patients WHERE patient_id = ANY($1::uuid[])",
            list(patient_ids),
        )
        return {r["patient_id"]: r["care_manager_id"] for r in rows}

    async def caseload(
        self,
        agency_id: str,
        care_manager_id: str,
        now: datetime,
        urgent: Sequence[str],
        care_role: str,
        limit: int,
        offset: int,
    ) -> list[asyncpg.Record]:
        """A care manager's patients with their counts: the most urgent and overdue first, then the
        soonest follow-up."""
        return await self.db.fetch(
            "SELECT p.patient_id, p.assigned_at, t.open_tasks, t.overdue_tasks, t.urgent_tasks,"
            " f.next_follow_up_due, f.overdue_follow_ups, pp.risk_level,"
            " coalesce(pp.open_needs, '{}') AS open_needs,"
            " (SELECT max(o.recorded_at) FROM follow_ups fu"
            "  JOIN follow_up_outcomes o ON o.follow_up_id = fu.id"
            "  WHERE fu.patient_id = p.patient_id AND o.reached) AS last_contact FROM patients p"
            + _COUNTS
            + " LEFT JOIN patient_plans pp ON pp.patient_id = p.patient_id"
            " WHERE p.agency_id = $1 AND p.care_manager_id = $5"
            " ORDER BY t.urgent_tasks DESC, t.overdue_tasks DESC, f.next_follow_up_due NULLS LAST,"
            " p.patient_id"
            " LIMIT $6 OFFSET $7",
            agency_id,
            now,
            list(urgent),
            care_role,
            care_manager_id,
            limit,
            offset,
        )

    async def agency_caseloads(
        self, agency_id: str, now: datetime, urgent: Sequence[str], care_role: str, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        """Per care manager of the agency (null: patients nobody is responsible for): counts only."""
        return await self.db.fetch(
            "SELECT p.care_manager_id, count(*) AS patients, sum(t.open_tasks)::int AS open_tasks,"
            " sum(t.overdue_tasks)::int AS overdue_tasks, sum(t.urgent_tasks)::int AS urgent_tasks,"
            " sum(f.overdue_follow_ups)::int AS overdue_follow_ups FROM patients p"
            + _COUNTS
            + " WHERE p.agency_id = $1 GROUP BY p.care_manager_id ORDER BY p.care_manager_id NULLS LAST"
            " LIMIT $5 OFFSET $6",
            agency_id,
            now,
            list(urgent),
            care_role,
            limit,
            offset,
        )


async def _learn_care_managers(db: Db, rows: list[dict[str, Any]]) -> list[bool]:
    """Many patients' care managers in one statement (see ``CaseloadStore.learn_care_manager``)."""
    return await insert_rows_returning(
        db,
        "patients",
        rows,
        key="patient_id",
        conflict="(patient_id) DO UPDATE SET care_manager_id = EXCLUDED.care_manager_id,"
        " assigned_at = EXCLUDED.assigned_at, agency_id = EXCLUDED.agency_id"
        " WHERE EXCLUDED.care_manager_id IS NOT NULL AND (patients.care_manager_id IS NULL"
        " OR patients.assigned_at < EXCLUDED.assigned_at)",
    )


async def _care_managers(db: Db, patient_ids: list[uuid.UUID]) -> list[str | None]:
    rows = await db.fetch(
        "SELECT patient_id, care_manager_id FROM patients WHERE patient_id = ANY($1::uuid[])", patient_ids
    )
    return [r["care_manager_id"] if r else None for r in by_key(patient_ids, rows, "patient_id")]
