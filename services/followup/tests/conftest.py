"""followup's test fixtures: an in-memory store that behaves like ``FollowupStore``, a context, a clock;
and, for the integration tests, settings and follow-ups put straight into a running service's database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from careloop_shared.rules import load_rules
from careloop_shared.runtime import ServiceRuntime
from careloop_shared.testing.fakes import FakeClock
from followup.config import FollowupContext, FollowupSettings
from followup.domain.follow_up import PLAN_CADENCE, REFERRAL_CHECK_IN, SERVICE_CHECK_IN
from followup.domain.rules import PRIORITIES, RULES_FILE, FollowUpRules
from followup.domain.scheduling import new_follow_up
from followup.store import COLUMNS, OPEN_STATUSES

REASONS = (PLAN_CADENCE, REFERRAL_CHECK_IN, SERVICE_CHECK_IN)
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
    )
)
_OUTCOME_COLUMNS = (
    "attempt",
    "reached",
    "goal_progress",
    "barriers",
    "next_step",
    "note",
    "recorded_by",
    "recorded_by_role",
    "recorded_at",
)


class ConstraintViolation(Exception):
    """What PostgreSQL would refuse: a duplicate key, a missing reference, a value a CHECK forbids."""


class FakeFollowupStore:
    """``FollowupStore`` over dicts: the same answers, including its keys, ON CONFLICT and ordering."""

    def __init__(self) -> None:
        self.follow_ups: dict[uuid.UUID, dict[str, Any]] = {}
        self.plans: dict[uuid.UUID, dict[str, Any]] = {}
        self.outcomes: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}
        self.reschedules: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}

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
        return dict(updated)

    async def get_follow_up(
        self, agency_id: str, follow_up_id: uuid.UUID, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = self.follow_ups.get(follow_up_id)
        return dict(row) if row is not None and row["agency_id"] == agency_id else None

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        plan = self.plans.get(patient_id)
        if plan is not None:
            return str(plan["agency_id"])
        mine = (f["agency_id"] for f in self.follow_ups.values() if f["patient_id"] == patient_id)
        return next(mine, None)

    async def open_cadence(self, patient_id: uuid.UUID) -> dict[str, Any] | None:
        return next(
            (
                dict(f)
                for f in self.follow_ups.values()
                if f["patient_id"] == patient_id
                and f["reason"] == PLAN_CADENCE
                and f["status"] in OPEN_STATUSES
            ),
            None,
        )

    async def cancel_open(
        self,
        at: datetime,
        *,
        patient_id: uuid.UUID | None = None,
        referral_id: uuid.UUID | None = None,
        reason: str,
        statuses: tuple[str, ...] = OPEN_STATUSES,
    ) -> int:
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
        return len(cancelled)

    async def get_plan(self, patient_id: uuid.UUID) -> dict[str, Any] | None:
        plan = self.plans.get(patient_id)
        return dict(plan) if plan is not None else None

    async def save_plan(self, row: dict[str, Any]) -> None:
        self.plans[row["patient_id"]] = dict(row)

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
        return [dict(f) for f in listed[offset : offset + limit]]

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
        return [dict(f) for f in queue[offset : offset + limit]]

    async def insert_outcome(self, row: dict[str, Any]) -> None:
        key = (row["follow_up_id"], row["attempt"])
        if row["follow_up_id"] not in self.follow_ups or key in self.outcomes:
            raise ConstraintViolation("follow_up_outcomes: primary or foreign key")
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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def rules() -> FollowUpRules:
    return load_rules(FollowUpRules, RULES_FILE)


@pytest.fixture
def ctx(clock: FakeClock, rules: FollowUpRules) -> FollowupContext:
    return FollowupContext(rules, clock)


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
