"""When follow-ups fall due, and the one id each due point has. Pure: no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from careloop_shared.ids import NameBased

_DUE_IDS = NameBased(uuid.UUID("0b7d3f0e-5c2a-4e8f-9a61-2d4c8e1f7a53"))
_EVENT_IDS = NameBased(uuid.UUID("6f1c2a8e-3b4d-4c7a-8e91-5a2b7c9d0e14"))


def next_cadence_due(anchor: datetime, every_days: float) -> datetime:
    """A cadence counts from the last contact (or the plan's start), not from each plan revision."""
    return anchor + timedelta(days=every_days)


def due_event_id(follow_up_id: uuid.UUID, due_at: datetime, due_point: int = 1) -> uuid.UUID:
    """The same follow-up at the same due point is one FollowUpDue event, whoever emits it.

    ``due_point`` counts the due times a follow-up has had, so moving it back to an earlier time it
    already fired at is still a new due point.
    """
    return _DUE_IDS(f"{follow_up_id}/{due_point}/{due_at.astimezone(UTC).isoformat()}")


def event_id(kind: str, follow_up_id: uuid.UUID, number: int = 1) -> uuid.UUID:
    """Deterministic id of the ``number``-th event of a kind about one follow-up (scheduled, overdue...)."""
    return _EVENT_IDS(f"{kind}/{follow_up_id}/{number}")
