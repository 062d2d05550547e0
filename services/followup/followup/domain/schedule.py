"""When follow-ups fall due, and the one id each due point has. Pure: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

_DUE_IDS = uuid.UUID("0b7d3f0e-5c2a-4e8f-9a61-2d4c8e1f7a53")


def system_clock() -> datetime:
    return datetime.now(UTC)


def next_cadence_due(plan_time: datetime, every_days: float) -> datetime:
    return plan_time + timedelta(days=every_days)


def due_event_id(follow_up_id: uuid.UUID, due_at: datetime) -> uuid.UUID:
    """The same follow-up at the same due point is one FollowUpDue event, whoever emits it."""
    return uuid.uuid5(_DUE_IDS, f"{follow_up_id}/{due_at.astimezone(UTC).isoformat()}")
