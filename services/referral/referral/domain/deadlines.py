"""When a referral must be answered and closed, and the one id each overdue flag has. Pure: no I/O.

The deadlines come from ``rules/deadlines.v1.json``; an organisation may point
``REFERRAL_DEADLINES_FILE`` at its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import Field

from careloop_shared.ids import NameBased
from careloop_shared.rules import RulesFile

DEADLINES_FILE = Path(__file__).resolve().parent.parent / "rules" / "deadlines.v1.json"

_OVERDUE_IDS = NameBased(uuid.UUID("5d0c6f1e-8a43-4b7e-9c2f-61e0a7b3d915"))


def add_business_days(start: datetime, days: float) -> datetime:
    """``start`` plus ``days`` working days (Monday to Friday), keeping the time of day."""
    whole = int(days)
    at = start
    while whole > 0:
        at += timedelta(days=1)
        if at.weekday() < 5:
            whole -= 1
    at += timedelta(days=days - int(days))
    while at.weekday() >= 5:  # a deadline falling on a weekend moves to Monday
        at += timedelta(days=1)
    return at


class Deadlines(RulesFile):
    """How long the receiving agency has to answer a sent referral, to close it with an outcome, and to say
    whether the patient came to a booked appointment once its time has passed."""

    response_business_days: float = Field(ge=0)
    outcome_days: float = Field(ge=0)
    attendance_hours: float = Field(24, ge=0)

    def response_due(self, made_at: datetime) -> datetime:
        return add_business_days(made_at, self.response_business_days)

    def outcome_due(self, made_at: datetime) -> datetime:
        return made_at + timedelta(days=self.outcome_days)

    @property
    def attendance_grace(self) -> timedelta:
        """How long after a booked appointment's time whether the patient came is overdue."""
        return timedelta(hours=self.attendance_hours)


def overdue_event_id(referral_id: uuid.UUID, deadline: str, due_at: datetime | None = None) -> uuid.UUID:
    """One ReferralOverdue per referral and deadline, whichever replica notices it; for a deadline that
    comes again with each booking (attendance), one per referral, deadline and due time."""
    occasion = "" if due_at is None else f"/{due_at.isoformat()}"
    return _OVERDUE_IDS(f"{referral_id}/{deadline}{occasion}")
