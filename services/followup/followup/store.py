"""followup's tables: follow-ups, the patients' plans as last heard of, outcomes and reschedules, the
patients intake erased; and its wings' stores: ``tasks`` (the task list), ``caseload`` (each
patient's care manager) and ``sealing`` (outcome notes recorded before notes were sealed).

Every read for the API is scoped to the caller's agency.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from careloop_shared.coalesce import rounds
from careloop_shared.db import (
    Db,
    Store,
    by_columns,
    by_key,
    insert_row,
    insert_rows_returning,
    update_by_id,
)
from careloop_shared.idempotency import forget_patient
from careloop_shared.outbox import UnitOfWork
from followup.caseload.store import CaseloadStore
from followup.domain.rules import PRIORITIES
from followup.sealing.store import SealingStore
from followup.tasks.store import TaskStore

COLUMNS = (
    "id, patient_id, agency_id, reason, plan_id, referral_id, priority, due_at, overdue_at, status,"
    " attempt, due_point, every_days, cadence_anchor_at, overdue_since, completed_at, reassessment,"
    " channel, purpose, created_at, updated_at"
)
_F_COLUMNS = ", ".join("f." + c.strip() for c in COLUMNS.split(","))
# A follow-up as shown: with whose it is, the patient's care manager as followup knows them.
_SHOWN = f"SELECT {_F_COLUMNS}, p.care_manager_id AS assignee_id FROM follow_ups f"
_SHOWN += " LEFT JOIN patients p ON p.patient_id = f.patient_id"
_ASSIGNEE = "(SELECT care_manager_id FROM patients p WHERE p.patient_id = follow_ups.patient_id)"
OPEN_STATUSES = ("scheduled", "due", "overdue")


class FollowupStore(Store):
    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self.tasks = TaskStore(db)
        self.caseload = CaseloadStore(db)
        self.sealing = SealingStore(db)  # the notes recorded before sealing

    async def insert_follow_up(self, row: dict[str, Any]) -> bool:
        """Insert a follow-up; False when an equivalent one exists (a redelivery, a recurrence): the
        patient's open cadence follow-up, or the referral's check-in of that reason."""
        return bool(await self.one(_insert_follow_ups, row))

    async def update_follow_up(
        self, follow_up_id: uuid.UUID, changes: dict[str, Any], at: datetime
    ) -> asyncpg.Record:
        returning = f"{COLUMNS}, {_ASSIGNEE} AS assignee_id"
        row = await update_by_id(self.db, "follow_ups", follow_up_id, changes, at=at, returning=returning)
        assert row is not None
        return row

    async def get_follow_up(
        self, agency_id: str, follow_up_id: uuid.UUID, *, lock: bool = False
    ) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"{_SHOWN} WHERE f.id = $1 AND f.agency_id = $2" + (" FOR UPDATE OF f" if lock else ""),
            follow_up_id,
            agency_id,
        )

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        """Whose patient this is (for the audit log's readers): from the caseload, the plan heard of, or a
        follow-up."""
        agency: str | None = await self.db.fetchval(
            "SELECT agency_id FROM patients WHERE patient_id = $1"
            " UNION ALL SELECT agency_id FROM patient_plans WHERE patient_id = $1"
            " UNION ALL (SELECT agency_id FROM follow_ups WHERE patient_id = $1 LIMIT 1) LIMIT 1",
            patient_id,
        )
        return agency

    async def open_cadence(self, patient_id: uuid.UUID) -> asyncpg.Record | None:
        """The patient's one open plan-cadence follow-up, locked."""
        return await self.one(_open_cadences, patient_id)

    async def open_follow_ups(self, patient_id: uuid.UUID) -> list[asyncpg.Record]:
        """The patient's open follow-ups of every reason (its plan cadence, its check-ins), locked."""
        found: list[asyncpg.Record] = await self.one(_open_follow_ups, patient_id)
        return found

    async def cancel_open(
        self,
        at: datetime,
        *,
        patient_id: uuid.UUID | None = None,
        referral_id: uuid.UUID | None = None,
        reason: str,
        statuses: tuple[str, ...] = OPEN_STATUSES,
    ) -> list[asyncpg.Record]:
        """Cancel a patient's open follow-ups of one reason, or a referral's; returns them (id, patient)."""
        return await self.db.fetch(
            "UPDATE follow_ups SET status = 'cancelled', updated_at = $1"
            " WHERE reason = $2 AND status = ANY($3::text[])"
            " AND ($4::uuid IS NULL OR patient_id = $4) AND ($5::uuid IS NULL OR referral_id = $5)"
            " RETURNING id, patient_id",
            at,
            reason,
            list(statuses),
            patient_id,
            referral_id,
        )

    async def set_channel(
        self, follow_up_ids: Sequence[uuid.UUID], channel: str | None, at: datetime
    ) -> None:
        """The plan's follow-up channel on these follow-ups (the patient's open ones, their rows locked by
        the caller); one already on it is left as it is."""
        await self.one(_set_channels, (tuple(follow_up_ids), channel, at))

    async def get_plan(self, patient_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.one(_plans, patient_id)

    async def save_plan(self, row: dict[str, Any]) -> bool:
        """The patient's current plan, replacing the one heard of before unless that is this plan's
        version or a later one; whether it replaced it. The patient's plan row is locked either way."""
        return bool(await self.one(_save_plans, row))

    async def claim_due(self, now: datetime, limit: int) -> list[asyncpg.Record]:
        """Mark due follow-ups as due; rows another replica is claiming are skipped, not waited on."""
        return await self.db.fetch(
            "WITH due AS (SELECT id FROM follow_ups WHERE status = 'scheduled' AND due_at <= $1"
            " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " UPDATE follow_ups f SET status = 'due', updated_at = $1 FROM due WHERE f.id = due.id"
            f" RETURNING {_F_COLUMNS}",
            now,
            limit,
        )

    async def claim_overdue(self, now: datetime, limit: int) -> list[asyncpg.Record]:
        """Mark due follow-ups past their grace period as overdue, once, skipping rows being claimed."""
        return await self.db.fetch(
            "WITH late AS (SELECT id FROM follow_ups WHERE status = 'due' AND overdue_at <= $1"
            " ORDER BY overdue_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " UPDATE follow_ups f SET status = 'overdue', overdue_since = f.overdue_at, updated_at = $1"
            f" FROM late WHERE f.id = late.id RETURNING {_F_COLUMNS}",
            now,
            limit,
        )

    async def list_follow_ups(
        self, agency_id: str, patient_id: uuid.UUID | None, status: str | None, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        return await self.db.fetch(
            f"{_SHOWN} WHERE f.agency_id = $1"
            " AND ($2::uuid IS NULL OR f.patient_id = $2) AND ($3::text IS NULL OR f.status = $3)"
            " ORDER BY f.due_at, f.id LIMIT $4 OFFSET $5",
            agency_id,
            patient_id,
            status,
            limit,
            offset,
        )

    async def work_queue(self, agency_id: str, limit: int, offset: int) -> list[asyncpg.Record]:
        """The agency's due and overdue follow-ups, most urgent priority first, then the longest waiting."""
        return await self.db.fetch(
            f"{_SHOWN} WHERE f.agency_id = $1 AND f.status IN ('due', 'overdue')"
            " ORDER BY array_position($2::text[], f.priority), f.due_at, f.id LIMIT $3 OFFSET $4",
            agency_id,
            list(PRIORITIES),
            limit,
            offset,
        )

    async def insert_outcome(self, row: dict[str, Any]) -> None:
        await insert_row(self.db, "follow_up_outcomes", row)

    async def list_outcomes(self, follow_up_id: uuid.UUID) -> list[asyncpg.Record]:
        return await self.db.fetch(
            "SELECT attempt, reached, goal_progress, barriers, next_step, note, note_sealed, recorded_by,"
            " recorded_by_role, recorded_at FROM follow_up_outcomes WHERE follow_up_id = $1 ORDER BY attempt",
            follow_up_id,
        )

    async def insert_reschedule(self, row: dict[str, Any]) -> None:
        await insert_row(self.db, "follow_up_reschedules", row)

    async def erase_patient(self, patient_id: uuid.UUID, agency_id: str, erased_at: datetime) -> int:
        """Record the patient as erased (the first erasure's time stays) and blank their outcomes' notes,
        plaintext and sealed; returns how many notes were blanked (none on a redelivery)."""
        await self.db.execute(
            "INSERT INTO erased_patients (patient_id, agency_id, erased_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (patient_id) DO NOTHING",
            patient_id,
            agency_id,
            erased_at,
        )
        # Outcomes are recorded with their follow-up locked: holding the patient's follow-ups first, the
        # blanking below (a statement of its own, so a later snapshot) sees every note committed before.
        await self.db.execute("SELECT FROM follow_ups WHERE patient_id = $1 FOR UPDATE", patient_id)
        blanked = await self.db.execute(
            "UPDATE follow_up_outcomes o SET note = NULL, note_sealed = NULL FROM follow_ups f"
            " WHERE f.id = o.follow_up_id AND f.patient_id = $1"
            " AND (o.note IS NOT NULL OR o.note_sealed IS NOT NULL)",
            patient_id,
        )
        await forget_patient(self.db, patient_id)  # responses kept for Idempotency-Key replays
        return int(blanked.split()[-1])

    async def erased_at(self, patient_id: uuid.UUID) -> datetime | None:
        """When intake erased the patient, if it did."""
        at: datetime | None = await self.db.fetchval(
            "SELECT erased_at FROM erased_patients WHERE patient_id = $1", patient_id
        )
        return at


# The hot statements of consumed events, set-based: one statement for every patient handled at once.


async def _insert_follow_ups(db: Db, rows: list[dict[str, Any]]) -> list[bool]:
    return await insert_rows_returning(db, "follow_ups", rows, key="id", conflict="DO NOTHING")


async def _open_cadences(db: Db, patient_ids: list[uuid.UUID]) -> list[asyncpg.Record | None]:
    rows = await db.fetch(
        f"SELECT {COLUMNS} FROM follow_ups WHERE patient_id = ANY($1::uuid[]) AND reason = 'plan-cadence'"
        " AND status IN ('scheduled', 'due', 'overdue') ORDER BY id FOR UPDATE",
        patient_ids,
    )
    return by_key(patient_ids, rows, "patient_id")


async def _open_follow_ups(db: Db, patient_ids: list[uuid.UUID]) -> list[list[asyncpg.Record]]:
    rows = await db.fetch(
        f"SELECT {COLUMNS} FROM follow_ups WHERE patient_id = ANY($1::uuid[])"
        " AND status IN ('scheduled', 'due', 'overdue') ORDER BY id FOR UPDATE",
        patient_ids,
    )
    found: dict[uuid.UUID, list[asyncpg.Record]] = {p: [] for p in patient_ids}
    for row in rows:
        found[row["patient_id"]].append(row)
    return [found[p] for p in patient_ids]


# Planned for its rows at every call (migration 011 says why).
SET_CHANNELS = "SELECT careloop_set_channels($1::uuid[], $2::text[], $3::timestamptz[])"


async def _set_channels(
    db: Db, changes: list[tuple[tuple[uuid.UUID, ...], str | None, datetime]]
) -> list[None]:
    """Each call's follow-ups take its channel, in one statement (a follow-up named twice: the later in a
    statement after it).

    By their ids, the primary key, not by the patients' (before a fresh platform's first analyze of
    ``follow_ups``, a batch's few hundred patients were looked for in a scan of the whole table: README,
    Performance), joined to the given rows so that each follow-up finds its channel once (a hash join;
    found by its position in the array, each looked through the whole array three times: a batch of
    500, 3.4 of the statement's 12 ms). The update is planned at every call, for the rows it is given
    (migration 011)."""
    each = [(follow_up, channel, at) for follow_ups, channel, at in changes for follow_up in follow_ups]
    for round_ in rounds(each, key=lambda change: change[0]):
        ids, channels, times = (list(column) for column in zip(*round_, strict=True))
        await db.execute(SET_CHANNELS, ids, channels, times)
    return [None] * len(changes)


async def _plans(db: Db, patient_ids: list[uuid.UUID]) -> list[asyncpg.Record | None]:
    rows = await db.fetch(
        "SELECT * FROM patient_plans WHERE patient_id = ANY($1::uuid[]) ORDER BY patient_id FOR UPDATE",
        patient_ids,
    )
    return by_key(patient_ids, rows, "patient_id")


async def _save_plans(db: Db, rows: list[dict[str, Any]]) -> list[bool]:
    saved = [False] * len(rows)
    for columns, positions in by_columns(rows).items():
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "patient_id")
        # A redelivered or late version changes nothing (the conflicting row is locked all the same).
        conflict = (
            f"(patient_id) DO UPDATE SET {assignments} WHERE patient_plans.plan_id IS DISTINCT FROM"
            " EXCLUDED.plan_id OR patient_plans.version < EXCLUDED.version"
        )
        group = [rows[i] for i in positions]
        went_in = await insert_rows_returning(db, "patient_plans", group, key="patient_id", conflict=conflict)
        for i, applied in zip(positions, went_in, strict=True):
            saved[i] = applied
    return saved


Uow: TypeAlias = UnitOfWork[FollowupStore]  # what every followup use case works in
