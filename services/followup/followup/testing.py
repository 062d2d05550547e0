"""Helpers for followup's tests: a clock tests move by hand, settings, and follow-ups put in place."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from careloop_shared.runtime import ServiceRuntime
from followup import store
from followup.domain.rules import FollowUpRules
from followup.main import FollowupSettings


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def settings(bootstrap: str, dsn: str, prefix: str, **extra: Any) -> FollowupSettings:
    return FollowupSettings(
        database_url=dsn,
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        scheduler_tick_s=0.05,
        relay_poll_interval_s=0.2,
        consumer_backoff_s=0.01,
        **extra,
    )


async def schedule(
    runtime: ServiceRuntime,
    *,
    patient_id: uuid.UUID,
    due_at: datetime,
    agency_id: str = "agency-a",
    priority: str = "high",
    reason: str = "plan-cadence",
    every_days: float | None = 7,
    rules: FollowUpRules | None = None,
) -> uuid.UUID:
    """Put a scheduled follow-up straight into the database, as a consumed event would."""
    rules = rules or FollowUpRules.load()
    follow_up_id = uuid.uuid4()
    async with runtime.uow() as uow:
        inserted = await store.insert_follow_up(
            uow.conn,
            {
                "id": follow_up_id,
                "patient_id": patient_id,
                "agency_id": agency_id,
                "reason": reason,
                "plan_id": uuid.uuid4() if reason == "plan-cadence" else None,
                "referral_id": uuid.uuid4() if reason != "plan-cadence" else None,
                "priority": priority,
                "due_at": due_at,
                "overdue_at": rules.overdue_at(due_at, priority),
                "every_days": every_days if reason == "plan-cadence" else None,
                "cadence_anchor_at": due_at - timedelta(days=every_days or 0),
            },
            due_at - timedelta(days=1),
        )
    assert inserted
    return follow_up_id


async def emitted(runtime: ServiceRuntime, patient_id: uuid.UUID, event_type: str) -> list[dict[str, Any]]:
    """Bodies of the events of one type this service wrote to its outbox for a patient, in order."""
    rows = await runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2 ORDER BY position",
        str(patient_id),
        event_type,
    )
    return [json.loads(r["payload"]) for r in rows]


async def follow_ups(runtime: ServiceRuntime, patient_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await runtime.pool.fetch(
        f"SELECT {store.COLUMNS} FROM follow_ups WHERE patient_id = $1 ORDER BY created_at, due_at",
        patient_id,
    )
    return [dict(r) for r in rows]
