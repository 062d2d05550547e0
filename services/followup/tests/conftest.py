"""followup's test fixtures: an in-memory store that behaves like ``FollowupStore``, a context, a clock;
and, for the integration tests, settings and follow-ups put straight into a running service's database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from careloop_shared import db
from careloop_shared.rules import load_rules
from careloop_shared.runtime import ServiceRuntime
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from followup.config import FollowupContext, FollowupSettings
from followup.domain.follow_up import ARRANGED_CONTACT, PLAN_CADENCE, REFERRAL_CHECK_IN, SERVICE_CHECK_IN
from followup.domain.rules import PRIORITIES, RULES_FILE, FollowUpRules
from followup.domain.scheduling import new_follow_up
from followup.store import COLUMNS, OPEN_STATUSES, FollowupStore
from followup.tasks.store import TASK_COLUMNS

REASONS = (PLAN_CADENCE, REFERRAL_CHECK_IN, SERVICE_CHECK_IN, ARRANGED_CONTACT)
STATUSES = ("scheduled", "due", "completed", "overdue", "cancelled")
_NOT_NULL = ("id", "patient_id", "agency_id", "reason", "priority", "due_at", "overdue_at", "status")
_DEFAULTS = {"attempt": 1, "due_point": 1} | dict.fromkeys(
    (
        "plan_id",
        "referral_id",
        "every_days",
        "cadence_anchor_at",
        "overdue_since",
        "completed_at",
        "reassessment",
        "channel",
        "purpose",
    )
)
_OUTCOME_COLUMNS = (
    "attempt",
    "reached",
    "goal_progress",
    "barriers",
    "next_step",
    "note",
    "note_sealed",
    "recorded_by",
    "recorded_by_role",
    "recorded_at",
)


class ConstraintViolation(Exception):
    """What PostgreSQL would refuse: a duplicate key, a missing reference, a value a CHECK forbids."""


_TASK_NOT_NULL = (
    *("id", "kind", "cause_key", "patient_id", "agency_id", "subject", "cause_event_id", "cause_event_type"),
    *("cause_at", "priority", "priority_rank", "status", "due_at", "for_role", "assignee_role"),
)
_TASK_DEFAULTS = dict.fromkeys(c.strip() for c in TASK_COLUMNS.split(","))
_ACTIVE = ("open", "in-progress")


class FakeTaskStore:
    """``TaskStore`` over dicts: one task per (kind, cause_key), resolutions keyed as the table is."""

    def __init__(self) -> None:
        self.tasks: dict[uuid.UUID, dict[str, Any]] = {}
        self.resolutions: dict[tuple[uuid.UUID, str, str, uuid.UUID], dict[str, Any]] = {}

    async def insert_task(self, row: dict[str, Any]) -> bool:
        stored = {**_TASK_DEFAULTS, **row}
        if any(stored[c] is None for c in _TASK_NOT_NULL) or stored["status"] not in (
            *_ACTIVE,
            "done",
            "cancelled",
        ):
            raise ConstraintViolation("tasks: a NOT NULL or CHECK constraint")
        if stored["id"] in self.tasks or any(
            (t["kind"], t["cause_key"]) == (stored["kind"], stored["cause_key"]) for t in self.tasks.values()
        ):
            return False
        self.tasks[stored["id"]] = stored
        return True

    async def get_task(
        self, agency_id: str, task_id: uuid.UUID, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = self.tasks.get(task_id)
        return dict(row) if row is not None and row["agency_id"] == agency_id else None

    async def update_task(self, task_id: uuid.UUID, changes: dict[str, Any], at: datetime) -> dict[str, Any]:
        self.tasks[task_id].update(changes, updated_at=at)
        return dict(self.tasks[task_id])

    async def resolve(
        self, resolutions: Sequence[dict[str, Any]], *, remember: bool | Sequence[bool] = True
    ) -> list[list[dict[str, Any]]]:
        found = [
            await self.active_about(
                r["patient_id"],
                [r["kind"]],
                r["subject"],
                caused_until=None if r["any_time"] else r["resolved_at"],
                except_cause=r["event_id"],
            )
            for r in resolutions
        ]
        kept = [remember] * len(resolutions) if isinstance(remember, bool) else remember
        for row in (r for r, keep in zip(resolutions, kept, strict=True) if keep):
            key = (row["patient_id"], row["kind"], row["subject"], row["event_id"])
            self.resolutions.setdefault(key, dict(row))
        return found

    async def resolution_for(
        self, patient_id: uuid.UUID, kind: str, subject: str, cause_at: datetime, cause_event_id: uuid.UUID
    ) -> dict[str, Any] | None:
        found = sorted(
            (
                r
                for (p, k, s, e), r in self.resolutions.items()
                if (p, k, s) == (patient_id, kind, subject)
                and e != cause_event_id
                and (r["any_time"] or r["resolved_at"] >= cause_at)
            ),
            key=lambda r: (r["resolved_at"], r["event_id"]),
        )
        return {"event_id": found[0]["event_id"], "event_type": found[0]["event_type"]} if found else None

    async def active_about(
        self,
        patient_id: uuid.UUID,
        kinds: Sequence[str],
        subject: str,
        *,
        caused_until: datetime | None = None,
        except_cause: uuid.UUID | None = None,
    ) -> list[dict[str, Any]]:
        found = (
            t
            for t in self.tasks.values()
            if t["patient_id"] == patient_id
            and t["kind"] in kinds
            and t["subject"] == subject
            and t["status"] in _ACTIVE
            and (caused_until is None or t["cause_at"] <= caused_until)
            and (except_cause is None or t["cause_event_id"] != except_cause)
        )
        return [dict(t) for t in sorted(found, key=lambda t: (t["created_at"], t["id"]))]

    async def claim_escalations(self, now: datetime, to_role: str, limit: int) -> list[dict[str, Any]]:
        late = sorted(
            (
                t
                for t in self.tasks.values()
                if t["escalated_at"] is None
                and t["status"] in _ACTIVE
                and t["escalate_at"] is not None
                and t["escalate_at"] <= now
            ),
            key=lambda t: t["escalate_at"],
        )[:limit]
        for t in late:
            t.update(assignee_id=None, assignee_role=to_role, escalated_at=now, updated_at=now)
        return [dict(t) for t in late]

    async def move_to_care_manager(
        self, patient_id: uuid.UUID, care_manager_id: str, role: str, at: datetime
    ) -> int:
        moved = [
            t
            for t in self.tasks.values()
            if t["patient_id"] == patient_id
            and t["status"] in _ACTIVE
            and t["assignee_role"] == role
            and t["assignee_id"] != care_manager_id
        ]
        for t in moved:
            t.update(assignee_id=care_manager_id, updated_at=at)
        return len(moved)

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
    ) -> list[dict[str, Any]]:
        def own(t: dict[str, Any]) -> bool:
            return t["assignee_id"] == caller or (
                t["assignee_id"] is None and t["assignee_role"] == caller_role
            )

        found = sorted(
            (
                t
                for t in self.tasks.values()
                if t["agency_id"] == agency_id
                and (sees_all or own(t))
                and (not mine or own(t))
                and (assignee_id is None or t["assignee_id"] == assignee_id)
                and (statuses is None or t["status"] in statuses)
                and (patient_id is None or t["patient_id"] == patient_id)
            ),
            key=lambda t: (t["priority_rank"], t["due_at"], t["id"]),
        )
        return [dict(t) for t in found[offset : offset + limit]]


class FakeCaseloadStore:
    """``CaseloadStore`` over dicts, counting from the follow-ups' and the tasks' dicts."""

    def __init__(
        self,
        follow_ups: dict[uuid.UUID, dict[str, Any]],
        tasks: dict[uuid.UUID, dict[str, Any]],
        plans: dict[uuid.UUID, dict[str, Any]] | None = None,
        outcomes: dict[tuple[uuid.UUID, int], dict[str, Any]] | None = None,
    ) -> None:
        self.patients: dict[uuid.UUID, dict[str, Any]] = {}
        self._follow_ups = follow_ups
        self._tasks = tasks
        self._plans = plans if plans is not None else {}
        self._outcomes = outcomes if outcomes is not None else {}

    def _plan_and_contact(self, patient_id: uuid.UUID) -> dict[str, Any]:
        plan = self._plans.get(patient_id, {})
        reached = [
            o["recorded_at"]
            for (follow_up_id, _), o in self._outcomes.items()
            if o["reached"] and self._follow_ups.get(follow_up_id, {}).get("patient_id") == patient_id
        ]
        return {
            "risk_level": plan.get("risk_level"),
            "open_needs": list(plan.get("open_needs", [])),
            "last_contact": max(reached, default=None),
        }

    async def learn_care_manager(self, row: dict[str, Any]) -> bool:
        known = self.patients.get(row["patient_id"])
        if known is not None and (
            row["care_manager_id"] is None
            or (known["care_manager_id"] is not None and known["assigned_at"] >= row["assigned_at"])
        ):
            return False
        self.patients[row["patient_id"]] = dict(row)
        return True

    async def care_manager(self, patient_id: uuid.UUID) -> str | None:
        known = self.patients.get(patient_id)
        return known["care_manager_id"] if known else None

    async def care_managers(self, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        return {p: self.patients[p]["care_manager_id"] for p in patient_ids if p in self.patients}

    def _counts(
        self, patient_id: uuid.UUID, now: datetime, urgent: Sequence[str], care_role: str
    ) -> dict[str, Any]:
        tasks = [
            t
            for t in self._tasks.values()
            if t["patient_id"] == patient_id and t["status"] in _ACTIVE and t["for_role"] == care_role
        ]
        follow_ups = [
            f
            for f in self._follow_ups.values()
            if f["patient_id"] == patient_id and f["status"] in OPEN_STATUSES
        ]
        return {
            "open_tasks": len(tasks),
            "overdue_tasks": sum(t["due_at"] < now for t in tasks),
            "urgent_tasks": sum(t["priority"] in urgent for t in tasks),
            "next_follow_up_due": min((f["due_at"] for f in follow_ups), default=None),
            "overdue_follow_ups": sum(f["status"] == "overdue" for f in follow_ups),
        }

    async def caseload(
        self,
        agency_id: str,
        care_manager_id: str,
        now: datetime,
        urgent: Sequence[str],
        care_role: str,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        mine = [
            {"patient_id": p["patient_id"], "assigned_at": p["assigned_at"]}
            | self._counts(p["patient_id"], now, urgent, care_role)
            | self._plan_and_contact(p["patient_id"])
            for p in self.patients.values()
            if p["agency_id"] == agency_id and p["care_manager_id"] == care_manager_id
        ]
        far = datetime.max.replace(tzinfo=UTC)
        mine.sort(
            key=lambda r: (
                -r["urgent_tasks"],
                -r["overdue_tasks"],
                r["next_follow_up_due"] or far,
                r["patient_id"],
            )
        )
        return mine[offset : offset + limit]

    async def agency_caseloads(
        self, agency_id: str, now: datetime, urgent: Sequence[str], care_role: str, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        loads: dict[str | None, dict[str, Any]] = {}
        for p in self.patients.values():
            if p["agency_id"] != agency_id:
                continue
            counts = self._counts(p["patient_id"], now, urgent, care_role)
            load = loads.setdefault(
                p["care_manager_id"],
                {"care_manager_id": p["care_manager_id"], "patients": 0}
                | dict.fromkeys(("open_tasks", "overdue_tasks", "urgent_tasks", "overdue_follow_ups"), 0),
            )
            load["patients"] += 1
            for key in ("open_tasks", "overdue_tasks", "urgent_tasks", "overdue_follow_ups"):
                load[key] += counts[key]
        ordered = sorted(
            loads.values(), key=lambda r: (r["care_manager_id"] is None, r["care_manager_id"] or "")
        )
        return ordered[offset : offset + limit]


class FakeSealingStore:
    """``SealingStore`` over the outcomes' and the follow-ups' dicts: notes in the clear in (follow-up,
    attempt) order; nothing is held by another transaction here."""

    def __init__(
        self,
        follow_ups: dict[uuid.UUID, dict[str, Any]],
        outcomes: dict[tuple[uuid.UUID, int], dict[str, Any]],
    ) -> None:
        self._follow_ups = follow_ups
        self._outcomes = outcomes

    def _next(self, limit: int, after: tuple[uuid.UUID, int] | None) -> list[dict[str, Any]]:
        clear = sorted(
            (key, o)
            for key, o in self._outcomes.items()
            if o.get("note") is not None and o.get("note_sealed") is None and (after is None or key > after)
        )
        return [
            {
                "follow_up_id": follow_up_id,
                "attempt": attempt,
                "note": o["note"],
                "agency_id": self._follow_ups[follow_up_id]["agency_id"],
                "patient_id": self._follow_ups[follow_up_id]["patient_id"],
            }
            for (follow_up_id, attempt), o in clear[:limit]
        ]

    async def patients_in_the_clear(
        self, limit: int, after: tuple[uuid.UUID, int] | None
    ) -> list[dict[str, Any]]:
        patients = {(r["agency_id"], r["patient_id"]) for r in self._next(limit, after)}
        return [{"agency_id": a, "patient_id": p} for a, p in sorted(patients)]

    async def in_the_clear(self, limit: int, after: tuple[uuid.UUID, int] | None) -> list[dict[str, Any]]:
        return self._next(limit, after)

    async def left_in_the_clear(self) -> int:
        return len(self._next(len(self._outcomes), None))

    async def seal(self, notes: Sequence[dict[str, Any]]) -> None:
        for n in notes:
            self._outcomes[(n["follow_up_id"], n["attempt"])].update(note=None, note_sealed=n["note_sealed"])


class FakeFollowupStore:
    """``FollowupStore`` over dicts: the same answers, including its keys, ON CONFLICT and ordering."""

    def __init__(self) -> None:
        self.follow_ups: dict[uuid.UUID, dict[str, Any]] = {}
        self.plans: dict[uuid.UUID, dict[str, Any]] = {}
        self.outcomes: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}
        self.reschedules: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}
        self.erased: dict[uuid.UUID, dict[str, Any]] = {}
        self.tasks = FakeTaskStore()
        self.caseload = FakeCaseloadStore(self.follow_ups, self.tasks.tasks, self.plans, self.outcomes)
        self.sealing = FakeSealingStore(self.follow_ups, self.outcomes)

    def _shown(self, row: dict[str, Any]) -> dict[str, Any]:
        """The follow-up with whose it is: ``LEFT JOIN patients``."""
        patient = self.caseload.patients.get(row["patient_id"])
        return {**row, "assignee_id": patient["care_manager_id"] if patient else None}

    def _checked(self, row: dict[str, Any]) -> dict[str, Any]:
        if any(row.get(c) is None for c in _NOT_NULL) or row["reason"] not in REASONS:
            raise ConstraintViolation("follow_ups: a NOT NULL or CHECK constraint")
        if row["status"] not in STATUSES:
            raise ConstraintViolation("follow_ups_status_check")
        return row

    def _duplicates(self, row: dict[str, Any]) -> bool:
        """The unique keys of follow_ups: id; (referral_id, reason); one open cadence per patient."""
        for other in self.follow_ups.values():
            if other["id"] == row["id"]:
                continue
            if row["referral_id"] is not None and (other["referral_id"], other["reason"]) == (
                row["referral_id"],
                row["reason"],
            ):
                return True
            if (
                row["reason"] == other["reason"] == PLAN_CADENCE
                and row["patient_id"] == other["patient_id"]
                and row["status"] in OPEN_STATUSES
                and other["status"] in OPEN_STATUSES
            ):
                return True
        return False

    async def insert_follow_up(self, row: dict[str, Any]) -> bool:
        stored = self._checked({**_DEFAULTS, **row})
        if stored["id"] in self.follow_ups or self._duplicates(stored):
            return False  # ON CONFLICT DO NOTHING
        self.follow_ups[stored["id"]] = stored
        return True

    async def update_follow_up(
        self, follow_up_id: uuid.UUID, changes: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        updated = self._checked({**self.follow_ups[follow_up_id], **changes, "updated_at": at})
        if self._duplicates(updated):
            raise ConstraintViolation("follow_ups: a unique index")
        self.follow_ups[follow_up_id] = updated
        return self._shown(updated)

    async def get_follow_up(
        self, agency_id: str, follow_up_id: uuid.UUID, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = self.follow_ups.get(follow_up_id)
        return self._shown(row) if row is not None and row["agency_id"] == agency_id else None

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        known = self.caseload.patients.get(patient_id)
        if known is not None:
            return str(known["agency_id"])
        plan = self.plans.get(patient_id)
        if plan is not None:
            return str(plan["agency_id"])
        mine = (f["agency_id"] for f in self.follow_ups.values() if f["patient_id"] == patient_id)
        return next(mine, None)

    async def open_cadence(self, patient_id: uuid.UUID) -> dict[str, Any] | None:
        return next((f for f in await self.open_follow_ups(patient_id) if f["reason"] == PLAN_CADENCE), None)

    async def open_follow_ups(self, patient_id: uuid.UUID) -> list[dict[str, Any]]:
        mine = (f for f in self.follow_ups.values() if f["patient_id"] == patient_id)
        return sorted((dict(f) for f in mine if f["status"] in OPEN_STATUSES), key=lambda f: f["id"])

    async def cancel_open(
        self,
        at: datetime,
        *,
        patient_id: uuid.UUID | None = None,
        referral_id: uuid.UUID | None = None,
        reason: str,
        statuses: tuple[str, ...] = OPEN_STATUSES,
    ) -> list[dict[str, Any]]:
        cancelled = [
            f
            for f in self.follow_ups.values()
            if f["reason"] == reason
            and f["status"] in statuses
            and (patient_id is None or f["patient_id"] == patient_id)
            and (referral_id is None or f["referral_id"] == referral_id)
        ]
        for f in cancelled:
            f.update(status="cancelled", updated_at=at)
        return [{"id": f["id"], "patient_id": f["patient_id"]} for f in cancelled]

    async def set_channel(
        self, follow_up_ids: Sequence[uuid.UUID], channel: str | None, at: datetime
    ) -> None:
        for follow_up_id in follow_up_ids:
            f = self.follow_ups[follow_up_id]
            if f["channel"] != channel:
                f.update(channel=channel, updated_at=at)

    async def get_plan(self, patient_id: uuid.UUID) -> dict[str, Any] | None:
        plan = self.plans.get(patient_id)
        return dict(plan) if plan is not None else None

    async def save_plan(self, row: dict[str, Any]) -> bool:
        known = self.plans.get(row["patient_id"])
        if known is not None and known["plan_id"] == row["plan_id"] and known["version"] >= row["version"]:
            return False
        self.plans[row["patient_id"]] = dict(row)
        return True

    def _ready(self, status: str, at: str, now: datetime, limit: int) -> list[dict[str, Any]]:
        waiting = (f for f in self.follow_ups.values() if f["status"] == status and f[at] <= now)
        return sorted(waiting, key=lambda f: f[at])[:limit]

    async def claim_due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        claimed = self._ready("scheduled", "due_at", now, limit)
        for f in claimed:
            f.update(status="due", updated_at=now)
        return [dict(f) for f in claimed]

    async def claim_overdue(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        claimed = self._ready("due", "overdue_at", now, limit)
        for f in claimed:
            f.update(status="overdue", overdue_since=f["overdue_at"], updated_at=now)
        return [dict(f) for f in claimed]

    async def list_follow_ups(
        self, agency_id: str, patient_id: uuid.UUID | None, status: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        listed = sorted(
            (
                f
                for f in self.follow_ups.values()
                if f["agency_id"] == agency_id
                and (patient_id is None or f["patient_id"] == patient_id)
                and (status is None or f["status"] == status)
            ),
            key=lambda f: (f["due_at"], f["id"]),
        )
        return [self._shown(f) for f in listed[offset : offset + limit]]

    async def work_queue(self, agency_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
        def rank(f: dict[str, Any]) -> tuple[int, datetime, uuid.UUID]:
            # array_position is NULL for a priority not in the list: those sort last.
            known = f["priority"] in PRIORITIES
            return (PRIORITIES.index(f["priority"]) if known else len(PRIORITIES), f["due_at"], f["id"])

        queue = sorted(
            (
                f
                for f in self.follow_ups.values()
                if f["agency_id"] == agency_id and f["status"] in ("due", "overdue")
            ),
            key=rank,
        )
        return [self._shown(f) for f in queue[offset : offset + limit]]

    async def insert_outcome(self, row: dict[str, Any]) -> None:
        key = (row["follow_up_id"], row["attempt"])
        if row["follow_up_id"] not in self.follow_ups or key in self.outcomes:
            raise ConstraintViolation("follow_up_outcomes: primary or foreign key")
        if row.get("note") is not None and row.get("note_sealed") is not None:
            raise ConstraintViolation("follow_up_outcomes_note_kept_once")
        self.outcomes[key] = dict(row)

    async def list_outcomes(self, follow_up_id: uuid.UUID) -> list[dict[str, Any]]:
        mine = sorted(
            (o for (f, _), o in self.outcomes.items() if f == follow_up_id), key=lambda o: o["attempt"]
        )
        return [{c: o.get(c) for c in _OUTCOME_COLUMNS} for o in mine]  # a column not given is NULL

    async def insert_reschedule(self, row: dict[str, Any]) -> None:
        key = (row["follow_up_id"], row["due_point"])
        if row["follow_up_id"] not in self.follow_ups or key in self.reschedules:
            raise ConstraintViolation("follow_up_reschedules: primary or foreign key")
        self.reschedules[key] = dict(row)

    async def erase_patient(self, patient_id: uuid.UUID, agency_id: str, erased_at: datetime) -> int:
        self.erased.setdefault(patient_id, {"agency_id": agency_id, "erased_at": erased_at})
        theirs = [
            o
            for (f, _), o in self.outcomes.items()
            if self.follow_ups[f]["patient_id"] == patient_id
            and (o.get("note") is not None or o.get("note_sealed") is not None)
        ]
        for o in theirs:
            o.update(note=None, note_sealed=None)
        return len(theirs)

    async def erased_at(self, patient_id: uuid.UUID) -> datetime | None:
        known = self.erased.get(patient_id)
        return known["erased_at"] if known else None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def rules() -> FollowUpRules:
    return load_rules(FollowUpRules, RULES_FILE)


@pytest.fixture
def keys() -> FakePatientKeys:
    """intake's patients' data keys, in memory."""
    return FakePatientKeys()


@pytest.fixture
def ctx(clock: FakeClock, rules: FollowUpRules, keys: FakePatientKeys) -> FollowupContext:
    return FollowupContext(rules, clock, keys=keys)


@pytest.fixture
def store() -> FakeFollowupStore:
    return FakeFollowupStore()


@pytest.fixture(scope="session")
def make_settings() -> Callable[..., FollowupSettings]:
    """Settings for a followup under test: its own database and topics, a fast scheduler and relay."""

    def make(bootstrap: str, dsn: str, prefix: str, **extra: Any) -> FollowupSettings:
        return FollowupSettings(
            database_url=dsn,
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=prefix,
            scheduler_tick_s=0.05,
            relay_poll_interval_s=0.2,
            consumer_backoff_s=0.01,
            **extra,
        )

    return make


@pytest.fixture(scope="session")
def schedule() -> Callable[..., Awaitable[uuid.UUID]]:
    """Put a scheduled follow-up straight into a running followup's database, as a consumed event would."""

    async def put(
        runtime: ServiceRuntime,
        *,
        patient_id: uuid.UUID,
        due_at: datetime,
        agency_id: str = "agency-a",
        priority: str = "high",
        reason: str = PLAN_CADENCE,
        every_days: float | None = 7,
    ) -> uuid.UUID:
        cadence = reason == PLAN_CADENCE
        row = new_follow_up(
            runtime.context.rules,
            due_at - timedelta(days=1),
            patient_id=patient_id,
            agency_id=agency_id,
            reason=reason,
            plan_id=uuid.uuid4() if cadence else None,
            referral_id=None if cadence else uuid.uuid4(),
            priority=priority,
            due_at=due_at,
            every_days=every_days if cadence else None,
            cadence_anchor_at=due_at - timedelta(days=every_days or 0),
        )
        async with runtime.uow() as uow:
            assert await uow.store.insert_follow_up(row)
        follow_up_id: uuid.UUID = row["id"]
        return follow_up_id

    return put


@pytest.fixture(scope="session")
def emitted() -> Callable[[ServiceRuntime, uuid.UUID, str], Awaitable[list[dict[str, Any]]]]:
    """Bodies of the events of one type a running followup wrote to its outbox for a patient, in order."""

    async def bodies(runtime: ServiceRuntime, patient_id: uuid.UUID, event_type: str) -> list[dict[str, Any]]:
        rows = await runtime.pool.fetch(
            "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2 ORDER BY position",
            str(patient_id),
            event_type,
        )
        return [json.loads(r["payload"]) for r in rows]

    return bodies


@pytest.fixture(scope="session")
def follow_ups() -> Callable[[ServiceRuntime, uuid.UUID], Awaitable[list[dict[str, Any]]]]:
    """A patient's follow-ups in a running followup's database, oldest first."""

    async def rows(runtime: ServiceRuntime, patient_id: uuid.UUID) -> list[dict[str, Any]]:
        found = await runtime.pool.fetch(
            f"SELECT {COLUMNS} FROM follow_ups WHERE patient_id = $1 ORDER BY created_at, due_at",
            patient_id,
        )
        return [dict(r) for r in found]

    return rows


# ---- the store on PostgreSQL and on the fake, for tests that hold both to the same answers -------------

MIGRATIONS = Path(__file__).resolve().parents[1] / "followup" / "migrations"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(request: pytest.FixtureRequest, database_factory: Any) -> Any:
    """A migrated followup database of the test module's own, named after it (``test_followup_store``:
    ``followup_store``)."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    pool = await db.create_pool(await database_factory(name), min_size=1, max_size=2)
    await db.migrate(pool, [*db.kernel_migrations(), *db.folder_migrations("followup", MIGRATIONS)])
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def postgres_store(pool: Any) -> Any:
    """``FollowupStore`` in a transaction rolled back after the test."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        yield FollowupStore(conn)
        await transaction.rollback()


@pytest.fixture(params=["fake", pytest.param("postgres", marks=pytest.mark.integration)])
def any_store(request: pytest.FixtureRequest) -> Any:
    """Each test once on the in-memory fake and once on PostgreSQL."""
    return request.getfixturevalue("store" if request.param == "fake" else "postgres_store")
