"""The care plan as careplan holds it: the versioned document, and the plan's state as it is locked.

The document is stored as JSON in every version and returned by the API as stored, so its JSON never
changes shape: ``stored()`` writes only the fields a value was read with or given, so a document read
back is written again exactly as it was, even one written before some of its keys existed.
Pure: no I/O here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from careloop_shared.contracts import RiskLevel


class Stored(BaseModel):
    """A value kept as JSON; tolerant of keys written by other versions of this code, and keeps them."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def stored(self) -> dict[str, Any]:
        """The JSON this value is stored as: the fields it was read with or given, nothing more."""
        return self.model_dump(mode="json", exclude_unset=True)


def isoformat(at: datetime) -> str:
    """As stored since the first version: ``datetime.isoformat()`` (``+00:00``, never ``Z``)."""
    return at.isoformat()


class Goal(Stored):
    id: uuid.UUID
    need: str
    description: str
    target: str
    due: datetime
    lifecycle_status: str = "active"  # FHIR Goal.lifecycleStatus
    achievement_status: str | None = None  # FHIR Goal.achievementStatus

    @field_serializer("due")
    def _due(self, due: datetime) -> str:
        return isoformat(due)


PERSONAL_GOAL = "personal-goal"  # the contribution kind that sets one
NEED_WITHDRAWN = "need-withdrawn"  # the contribution kind that takes a stated need out of the plan's inputs
GOAL_REWORDED = "goal-reworded"  # the contribution kind that puts a personal goal in new words (its note)
PERSONAL_GOAL_NEED = "personal"  # the need of a personal goal that names none of the library's


class PersonalGoal(Stored):
    """A goal the patient set in their own words with the care team: its words stay with the contribution
    that made it (sealed), the plan keeps only which goal, for which need, and when."""

    id: uuid.UUID  # the contribution's id, and the goal's
    need: str  # a need of the plan library, or "personal"
    due: datetime

    @field_serializer("due")
    def _due(self, due: datetime) -> str:
        return isoformat(due)


class Intervention(Stored):
    id: uuid.UUID
    need: str
    kind: str  # referral, education, clinical
    program_category: str | None = None
    needs_referral: bool
    status: str = "not-started"  # FHIR CarePlan.activity status
    priority: str = "routine"
    language: str | None = None
    education_materials: list[str] = Field(default_factory=list)
    service_code: str | None = None


class FollowUp(Stored):
    every_days: int | float  # as the plan library writes it: 7 stays 7, not 7.0
    priority: RiskLevel
    channel: str | None = None


class PlanDocument(Stored):
    """One version of a care plan: what it aims at, what is done about it, how often to follow up."""

    library_version: str
    risk_level: RiskLevel
    urgent_flags: list[str] = Field(default_factory=list)
    needs: list[str] = Field(default_factory=list)
    preferred_language: str | None = None
    contact_preference: str | None = None
    goals: list[Goal]
    interventions: list[Intervention]
    follow_up: FollowUp

    def goal(self, goal_id: uuid.UUID) -> Goal | None:
        return next((g for g in self.goals if g.id == goal_id), None)

    def intervention(self, intervention_id: uuid.UUID) -> Intervention | None:
        return next((i for i in self.interventions if i.id == intervention_id), None)


class AssessedNeed(Stored):
    code: str
    severity: str | None = None


class Assessment(Stored):
    """The latest result of one kind of assessment, as the plan is drafted from it."""

    instrument: str
    assessment_id: uuid.UUID
    needs: list[AssessedNeed]
    risk_level: RiskLevel
    urgent_flags: list[str]
    assessed_at: datetime

    @field_serializer("assessed_at")
    def _assessed_at(self, at: datetime) -> str:
        return isoformat(at)


class Preferences(Stored):
    """Preferences the care team recorded; they win over what intake knows."""

    preferred_language: str | None = None
    contact_preference: str | None = None


INPUTS = ("assessments", "services", "agreed_goals", "overrides", "stated_needs", "personal_goals")


class PlanState(BaseModel):
    """A patient's plan as locked for a change: which version it is at, and what it is drafted from.

    Version 0 is a plan opened by a first assessment and not drafted yet: it has no document.
    """

    model_config = ConfigDict(extra="forbid")

    patient_id: uuid.UUID
    plan_id: uuid.UUID
    agency_id: str
    version: int
    status: str
    document: PlanDocument | None
    # What the plan is drafted from (``INPUTS``, stored with the plan).
    assessments: dict[str, Assessment]  # latest result per instrument group
    services: list[str]  # service codes approved or chosen
    agreed_goals: list[uuid.UUID]  # goals agreed with the care team
    overrides: Preferences
    stated_needs: list[str]  # needs the patient or their family raised with the care team (library codes)
    personal_goals: list[PersonalGoal]  # goals the patient set in their own words
    # What careplan knows of the patient's preferences, from intake's events.
    preferred_language: str | None
    contact_preference: str | None
    safe_channels: list[str] | None = None  # the channels the patient marked safe; None: not said

    @property
    def drafted(self) -> PlanDocument:
        """The current document; a plan past version 0 always has one."""
        if self.document is None:
            raise LookupError("the plan has no version yet")
        return self.document

    def stored_inputs(self) -> dict[str, Any]:
        """The inputs as their columns hold them."""
        return self.model_dump(mode="json", include=set(INPUTS), exclude_unset=True)
