"""What careplan is asked to do: one command per use case, built by the API from a request.

Every command names who asks (``Command``): the caller's agency, the person (``by``, their token's
subject) and their role (``by_role``), stored with what the command changes and carried by the event
that announces it. Commands that edit the plan name the version they were made against
(``expected_version``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Command:
    """Who asks: the caller's agency, the person and their role."""

    agency_id: str
    by: str  # the person: their identity provider's subject id
    by_role: str


@dataclass(frozen=True)
class ChangePlanStatus(Command):
    patient_id: uuid.UUID
    status: str
    expected_version: int


@dataclass(frozen=True)
class MoveIntervention(Command):
    """An intervention's activity status moved by hand (one not served by a referral)."""

    patient_id: uuid.UUID
    intervention_id: uuid.UUID
    status: str
    expected_version: int


@dataclass(frozen=True)
class MoveGoal(Command):
    """A goal's lifecycle or achievement as a person says it; ``None``: left as it is."""

    patient_id: uuid.UUID
    goal_id: uuid.UUID
    lifecycle_status: str | None
    achievement_status: str | None
    expected_version: int


@dataclass(frozen=True)
class RecordEducation(Command):
    """Materials given for an intervention; ``None`` means the intervention's own materials (else the
    one explaining its need). ``channel`` and ``teach_back_confirmed``: ``None`` when not said."""

    patient_id: uuid.UUID
    intervention_id: uuid.UUID
    materials: list[str] | None = None
    channel: str | None = None  # in-person, phone, text, email, mail
    teach_back_confirmed: bool | None = None  # the patient explained it back in their own words


@dataclass(frozen=True)
class AddCareTeamMember(Command):
    patient_id: uuid.UUID
    name: str
    relationship: str
    role: str  # the member's role in the team, e.g. primary-support
    contact: str | None = None


@dataclass(frozen=True)
class ChangeCareTeamMember(Command):
    """Only the fields in ``changes`` change; ``None`` clears the contact."""

    patient_id: uuid.UUID
    member_id: uuid.UUID
    changes: dict[str, Any]


@dataclass(frozen=True)
class RemoveCareTeamMember(Command):
    patient_id: uuid.UUID
    member_id: uuid.UUID


@dataclass(frozen=True)
class ContributeToPlan(Command):
    """A care team member's note, agreed goal, preference, stated need (or its withdrawal) or a goal in the
    patient's own words (personal-goal: the words are its note); each kind carries its own part."""

    patient_id: uuid.UUID
    member_id: uuid.UUID
    kind: str  # note, agreed-goal, preference, stated-need, need-withdrawn, personal-goal or goal-reworded
    expected_version: int
    note: str | None = None
    goal_id: uuid.UUID | None = None
    preference: dict[str, str] | None = None  # preferred_language and/or contact_preference
    need: str | None = None  # a need code of the plan library
    due: datetime | None = None  # personal-goal: when it is due (else the library's default)


@dataclass(frozen=True)
class RequestService(Command):
    patient_id: uuid.UUID
    service_code: str
    expected_version: int


@dataclass(frozen=True)
class ChooseAlternative(Command):
    patient_id: uuid.UUID
    request_id: uuid.UUID
    alternative: str
    expected_version: int
