"""What followup is asked to do: one command per use case, built by the API from a request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from followup.domain.follow_up import Actor, Outcome


class ByCaller:
    """A command the caller makes as themselves (``by_subject``, ``by_role``: fields of each command)."""

    by_subject: str
    by_role: str

    @property
    def actor(self) -> Actor:
        return Actor(self.by_subject, self.by_role)


@dataclass(frozen=True)
class RecordOutcome:
    """One contact attempt's outcome, recorded by the care manager (their subject and role) who made it."""

    agency_id: str
    follow_up_id: uuid.UUID
    recorded_by: str
    recorded_by_role: str
    reached: bool
    goal_progress: tuple[tuple[uuid.UUID, str], ...] = ()
    barriers: tuple[str, ...] = ()
    next_step: str | None = None
    note: str | None = None  # free text about the patient: stored, never announced or logged

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.reached, self.goal_progress, self.barriers, self.next_step, self.note)

    @property
    def actor(self) -> Actor:
        return Actor(self.recorded_by, self.recorded_by_role)


@dataclass(frozen=True)
class RescheduleFollowUp(ByCaller):
    """Move an open follow-up to another time, for a coded reason, by the caller (their subject and role)."""

    agency_id: str
    follow_up_id: uuid.UUID
    by_subject: str
    by_role: str
    reason: str
    due_at: datetime


@dataclass(frozen=True)
class ChangeTaskStatus:
    """Start, finish or cancel a task, by the caller (their subject and role), for a coded reason."""

    agency_id: str
    task_id: uuid.UUID
    by: str
    by_role: str
    status: str
    reason: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.by, self.by_role)


@dataclass(frozen=True)
class ArrangeContact(ByCaller):
    """A contact the caller (their subject and role) agreed with the patient: when, how, what for."""

    agency_id: str
    patient_id: uuid.UUID
    by_subject: str
    by_role: str
    due_at: datetime
    channel: str
    purpose: str


@dataclass(frozen=True)
class ChangeArrangement(ByCaller):
    """Reach the patient another way or for another purpose at an arranged contact, by the caller."""

    agency_id: str
    follow_up_id: uuid.UUID
    by_subject: str
    by_role: str
    channel: str | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class CancelContact(ByCaller):
    """Call off an arranged contact, for a coded reason, by the caller (their subject and role)."""

    agency_id: str
    follow_up_id: uuid.UUID
    by_subject: str
    by_role: str
    reason: str


@dataclass(frozen=True)
class MakeToDo(ByCaller):
    """A to-do the caller (their subject and role) adds about a patient for themselves, or for the
    patient's care manager."""

    agency_id: str
    patient_id: uuid.UUID
    by_subject: str
    by_role: str
    purpose: str
    priority: str
    due_at: datetime
    for_care_manager: bool = False
