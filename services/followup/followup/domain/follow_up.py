"""What a follow-up is: its reasons and states, what followup knows of the plan, what an attempt found,
and the refusals. Pure: no I/O.

``scheduled -> due -> overdue``; an outcome completes it or schedules another attempt. What changes a
follow-up is decided in ``scheduling`` and ``outcomes``; the events it announces are in ``announcements``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from careloop_shared.errors import Conflict, Invalid

PLAN_CADENCE = "plan-cadence"
REFERRAL_CHECK_IN = "referral-check-in"
SERVICE_CHECK_IN = "referral-outcome-check-in"
ARRANGED_CONTACT = "arranged-contact"  # a one-off contact a care manager agreed with the patient

OUTSTANDING = frozenset({"due", "overdue"})
OPEN = frozenset({"scheduled", "due", "overdue"})


class NotOutstanding(Conflict):
    """The follow-up is in a state that does not allow the change. The message names the state only."""


class InvalidInput(Invalid):
    """Input that does not fit the rules. Each problem names where and why, never the value."""


@dataclass(frozen=True)
class FollowUp:
    id: uuid.UUID
    patient_id: uuid.UUID
    agency_id: str
    reason: str
    status: str
    priority: str
    due_at: datetime
    attempt: int
    due_point: int
    every_days: float | None = None
    plan_id: uuid.UUID | None = None
    referral_id: uuid.UUID | None = None
    overdue_since: datetime | None = None
    cadence_anchor_at: datetime | None = None
    created_at: datetime | None = None
    channel: str | None = None  # how to reach the patient, from the plan (None: their preference, or phone)
    purpose: str | None = None  # what an arranged contact is for (a code)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FollowUp:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Actor:
    """The person who made a change: their identity provider's subject and careloop role. Never a patient."""

    subject: str
    role: str


@dataclass(frozen=True)
class Plan:
    """The patient's current plan as followup last heard of it."""

    status: str
    goal_ids: frozenset[uuid.UUID]
    channel: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Plan:
        return cls(row["status"], frozenset(row["goal_ids"]), row.get("channel"))


@dataclass(frozen=True)
class Outcome:
    """What one contact attempt found. The note is free text about the patient: stored, never announced."""

    reached: bool
    goal_progress: Sequence[tuple[uuid.UUID, str]] = ()
    barriers: Sequence[str] = ()
    next_step: str | None = None
    note: str | None = None
