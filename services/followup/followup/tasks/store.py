"""The tasks' tables: tasks (one per kind and cause) and what resolved them. Reads are agency-scoped."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.coalesce import rounds
from careloop_shared.db import (
    Db,
    Store,
    columns_of,
    fetch_inserting,
    insert_rows_returning,
    rows_from,
    update_by_id,
)

TASK_COLUMNS = (
    "id, kind, cause_key, patient_id, agency_id, subject, cause_event_id, cause_event_type, cause_at,"
    " referral_id, follow_up_id, assessment_id, intervention_id, instrument, priority, priority_rank, status,"
    " due_at, escalate_at, escalated_at, for_role, assignee_id, assignee_role, closed_at, closed_by,"
    " closed_by_role, closed_reason, resolved_by_event_id, resolved_by_event_type, created_at, updated_at,"
    " purpose, opened_by, opened_by_role"
)
_T_COLUMNS = ", ".join("t." + c.strip() for c in TASK_COLUMNS.split(","))
ACTIVE = ["open", "in-progress"]


class TaskStore(Store):
    async def insert_task(self, row: dict[str, Any]) -> bool:
        """False when the task of that kind and cause exists already (a redelivery, a replica)."""
        return bool(await self.one(_insert_tasks, row))

    async def get_task(
        self, agency_id: str, task_id: uuid.UUID, *, lock: bool = False
    ) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND agency_id = $2"
            + (" FOR UPDATE" if lock else ""),
            task_id,
            agency_id,
        )

    async def update_task(self, task_id: uuid.UUID, changes: dict[str, Any], at: datetime) -> asyncpg.Record:
        row = await update_by_id(self.db, "tasks", task_id, changes, at=at, returning=TASK_COLUMNS)
        assert row is not None
        return row

    async def resolve(
        self, resolutions: Sequence[dict[str, Any]], *, remember: bool | Sequence[bool] = True
    ) -> list[list[asyncpg.Record]]:
        """For each resolution (``domain.tasks.resolutions``), the patient's open and in-progress tasks it
        resolves, locked: of its kind, about its subject, caused no later than it (any time, when it says
        so) and not by its own event. ``remember`` (all, none, or one flag a resolution) records them too,
        in the same statement (the look-up reads tasks only), for causes still to come."""
        asks = [
            (
                r["patient_id"],
                (r["kind"],),
                r["subject"],
                None if r["any_time"] else r["resolved_at"],
                r["event_id"],
            )
            for r in resolutions
        ]
        kept = [remember] * len(resolutions) if isinstance(remember, bool) else list(remember)
        found: list[list[asyncpg.Record]] = await self.one(
            _resolve, (asks, [r for r, keep in zip(resolutions, kept, strict=True) if keep])
        )
        return found

    async def resolution_for(
        self, patient_id: uuid.UUID, kind: str, subject: str, cause_at: datetime, cause_event_id: uuid.UUID
    ) -> asyncpg.Record | None:
        """An event other than the cause that resolved such a task at or after the cause's time."""
        found: asyncpg.Record | None = await self.one(
            _resolutions_for, (patient_id, kind, subject, cause_at, cause_event_id)
        )
        return found

    async def active_about(
        self,
        patient_id: uuid.UUID,
        kinds: Sequence[str],
        subject: str,
        *,
        caused_until: datetime | None = None,
        except_cause: uuid.UUID | None = None,
    ) -> list[asyncpg.Record]:
        """The patient's open and in-progress tasks of these kinds about ``subject``, caused no later than
        ``caused_until`` (when given) and not by ``except_cause``; locked."""
        found: list[asyncpg.Record] = await self.one(
            _tasks_about, (patient_id, tuple(kinds), subject, caused_until, except_cause)
        )
        return found

    async def claim_escalations(self, now: datetime, to_role: str, limit: int) -> list[asyncpg.Record]:
        """Open tasks past their escalation time go to ``to_role``, once; rows another replica is claiming
        are skipped, not waited on."""
        return await self.db.fetch(
            "WITH late AS (SELECT id FROM tasks WHERE escalated_at IS NULL AND status = ANY($3::text[])"
            " AND escalate_at <= $1 ORDER BY escalate_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " UPDATE tasks t SET assignee_id = NULL, assignee_role = $2, escalated_at = $1, updated_at = $1"
            f" FROM late WHERE t.id = late.id RETURNING {_T_COLUMNS}",
            now,
            to_role,
            ACTIVE,
            limit,
        )

    async def move_to_care_manager(
        self, patient_id: uuid.UUID, care_manager_id: str, role: str, at: datetime
    ) -> int:
        """The patient's open tasks still for the care-manager ``role`` (not escalated) go to their new
        care manager; returns how many moved. Patients' moves made side by side share one statement."""
        moved: int = await self.one(_move_to_care_managers, (patient_id, care_manager_id, role, at))
        return moved

    async def list_tasks(
        self,
        agency_id: str,
        *,
        caller: str,
        caller_role: str,
        sees_all: bool,
        mine: bool,
        assignee_id: str | None,
        statuses: Sequence[str] | None,
        patient_id: uuid.UUID | None,
        limit: int,
        offset: int,
    ) -> list[asyncpg.Record]:
        """The tasks the caller may see (a supervisor: the agency's; anyone else: their own and their
        role's unassigned ones), filtered, most pressing priority first, then the earliest due."""
        own = "(assignee_id = $2 OR (assignee_id IS NULL AND assignee_role = $3))"
        return await self.db.fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE agency_id = $1 AND ($4 OR {own})"
            f" AND (NOT $5 OR {own}) AND ($6::text IS NULL OR assignee_id = $6)"
            " AND ($7::text[] IS NULL OR status = ANY($7::text[])) AND ($8::uuid IS NULL OR patient_id = $8)"
            " ORDER BY priority_rank, due_at, id LIMIT $9 OFFSET $10",
            agency_id,
            caller,
            caller_role,
            sees_all,
            mine,
            assignee_id,
            None if statuses is None else list(statuses),
            patient_id,
            limit,
            offset,
        )


# The hot statements of consumed events, set-based: one statement for every patient handled at once.

# Each ask's active tasks, locked: one index probe an ask (the subquery, kept apart by OFFSET 0, is run
# for each). Written as a join, it was planned by the table's statistics, and before a growing table's
# first ANALYZE (a fresh platform's first minutes) PostgreSQL read every open task on each call (hashing
# them, or reading the asks once for each): 94 ms for 24 asks among 13,330 open tasks, 0.3 ms this way.
TASKS_ABOUT = (
    f"SELECT q.i AS ask, {_T_COLUMNS} FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[],"
    " $5::timestamptz[], $6::uuid[]) AS q(i, patient_id, kind, subject, caused_until, except_cause)"
    " CROSS JOIN LATERAL (SELECT * FROM tasks t WHERE t.patient_id = q.patient_id AND t.kind = q.kind"
    " AND t.subject = q.subject AND t.status = ANY($7::text[])"
    " AND (q.caused_until IS NULL OR t.cause_at <= q.caused_until)"
    " AND (q.except_cause IS NULL OR t.cause_event_id <> q.except_cause) OFFSET 0) t"
    " ORDER BY q.i, t.created_at, t.id FOR UPDATE OF t"
)


ActiveAbout = tuple[uuid.UUID, tuple[str, ...], str, datetime | None, uuid.UUID | None]


async def _resolve(
    db: Db, calls: list[tuple[list[ActiveAbout], list[dict[str, Any]]]]
) -> list[list[list[asyncpg.Record]]]:
    """Each call's asks answered and resolutions recorded (see ``TaskStore.resolve``), in one statement."""
    asks = [ask for call_asks, _ in calls for ask in call_asks]
    found = await _tasks_about(db, asks, [row for _, rows in calls for row in rows])
    answers, start = [], 0
    for call_asks, _ in calls:
        answers.append(found[start : start + len(call_asks)])
        start += len(call_asks)
    return answers


async def _tasks_about(
    db: Db, asks: Sequence[ActiveAbout], resolutions: Sequence[dict[str, Any]] = ()
) -> list[list[asyncpg.Record]]:
    """Each ask's active tasks, locked, oldest first, with ``resolutions`` recorded in the same statement:
    one row a kind asked, whatever the kinds."""
    rows = await fetch_inserting(
        db,
        TASKS_ABOUT,
        tasks_about_arguments(asks),
        "task_resolutions",
        resolutions,
        conflict="DO NOTHING",
    )
    found: list[list[asyncpg.Record]] = [[] for _ in asks]
    for row in rows:
        found[row["ask"]].append(row)
    return found


def tasks_about_arguments(asks: Sequence[ActiveAbout]) -> list[Any]:
    """``TASKS_ABOUT``'s parameters: one row a kind asked, numbered by its ask."""
    pairs = [(i, kind) for i, ask in enumerate(asks) for kind in ask[1]]
    return [
        [i for i, _ in pairs],
        [asks[i][0] for i, _ in pairs],
        [kind for _, kind in pairs],
        [asks[i][2] for i, _ in pairs],
        [asks[i][3] for i, _ in pairs],
        [asks[i][4] for i, _ in pairs],
        ACTIVE,
    ]


async def _insert_tasks(db: Db, rows: list[dict[str, Any]]) -> list[bool]:
    return await insert_rows_returning(db, "tasks", rows, key="id", conflict="DO NOTHING")


ResolutionFor = tuple[uuid.UUID, str, str, datetime, uuid.UUID]


async def _resolutions_for(db: Db, asks: list[ResolutionFor]) -> list[asyncpg.Record | None]:
    """Each ask's earliest resolving event (see ``TaskStore.resolution_for``), in one statement."""
    rows = await db.fetch(
        "SELECT q.i AS ask, r.event_id, r.event_type FROM unnest($1::int[], $2::uuid[], $3::text[],"
        " $4::text[], $5::timestamptz[], $6::uuid[]) AS q(i, patient_id, kind, subject, cause_at, cause)"
        " CROSS JOIN LATERAL (SELECT event_id, event_type FROM task_resolutions"
        " WHERE patient_id = q.patient_id AND kind = q.kind AND subject = q.subject AND event_id <> q.cause"
        " AND (any_time OR resolved_at >= q.cause_at) ORDER BY resolved_at, event_id LIMIT 1) r",
        list(range(len(asks))),
        *([ask[column] for ask in asks] for column in range(5)),
    )
    found: list[asyncpg.Record | None] = [None] * len(asks)
    for row in rows:
        found[row["ask"]] = row
    return found


# A move of a patient's open tasks to their care manager (``TaskStore.move_to_care_manager``).
_MOVE = {"patient_id": "uuid", "care_manager_id": "text", "role": "text", "at": "timestamptz"}


async def _move_to_care_managers(db: Db, moves: list[tuple[Any, ...]]) -> list[int]:
    """Many patients' moves in one statement, a patient's second among them in a statement after it; for
    each, how many tasks moved."""
    moved = [0] * len(moves)
    for round_ in rounds(list(enumerate(moves)), key=lambda item: item[1][0]):
        rows = await db.fetch(
            f"UPDATE tasks t SET assignee_id = r.care_manager_id, updated_at = r.at FROM {rows_from(_MOVE)}"
            " WHERE t.patient_id = r.patient_id AND t.status = ANY($5::text[]) AND t.assignee_role = r.role"
            " AND t.assignee_id IS DISTINCT FROM r.care_manager_id RETURNING t.patient_id",
            *columns_of([move for _, move in round_], _MOVE),
            ACTIVE,
        )
        count = Counter(row["patient_id"] for row in rows)
        for i, move in round_:
            moved[i] = count[move[0]]
    return moved
