"""HTTP request and response bodies of followup. Codes are checked against the rules file."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from careloop_shared.body import AwareMoment, Body

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9-]*$")]
Status = Literal["scheduled", "due", "completed", "overdue", "cancelled"]


class GoalProgressIn(Body):
    goal_id: uuid.UUID
    progress: Code = Field(description="improving, no-change, worsening or achieved")


class OutcomeIn(Body):
    reached: bool
    goal_progress: list[GoalProgressIn] = Field(default_factory=list, max_length=100)
    barriers: list[Code] = Field(
        default_factory=list, max_length=30, description="Coded barriers, e.g. transportation, cost."
    )
    next_step: Code | None = Field(None, description="Coded next step, e.g. continue-plan, reassess.")
    note: str | None = Field(
        None,
        max_length=4000,
        description="Free text for the care team. Kept in followup's database only; never in events.",
    )


class RescheduleIn(Body):
    reason: Code = Field(description="Coded reason, e.g. patient-request, patient-unavailable.")
    due_at: AwareMoment


class ArrangeIn(Body):
    patient_id: uuid.UUID
    due_at: AwareMoment = Field(
        description="When, agreed with the patient: in the future, within the rules' limit."
    )
    channel: Code = Field(
        description="How: the plan's channel or in-person-only (phone, text, ... before a plan)."
    )
    purpose: Code = Field(description="What for, coded: check-in, plan-review, referral-help, ...")


class ArrangementIn(Body):
    channel: Code | None = Field(
        None, description="Another way to reach the patient: the plan's channel or in-person-only."
    )
    purpose: Code | None = Field(None, description="Another purpose, coded: check-in, plan-review, ...")

    @model_validator(mode="after")
    def _names_a_change(self) -> ArrangementIn:
        if self.channel is None and self.purpose is None:
            raise ValueError("name a channel or a purpose to change")
        return self


class CancelIn(Body):
    reason: Code = Field(description="Coded reason, e.g. patient-request, no-longer-needed.")


class FollowUpOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    reason: str
    plan_id: uuid.UUID | None
    referral_id: uuid.UUID | None
    priority: str
    due_at: datetime
    overdue_at: datetime
    status: str
    attempt: int
    overdue_since: datetime | None
    completed_at: datetime | None
    reassessment: str | None
    channel: str | None = Field(
        None, description="How to reach the patient, from the plan; null: their preference, or phone."
    )
    assignee_id: str | None = Field(None, description="The patient's care manager, when followup knows them.")
    purpose: str | None = Field(None, description="What an arranged contact is for; null for the others.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> FollowUpOut:
        return cls(**{k: row[k] for k in cls.model_fields if k in row})


class OutcomeOut(BaseModel):
    attempt: int
    reached: bool
    goal_progress: list[dict[str, Any]]
    barriers: list[str]
    next_step: str | None
    note: str | None
    recorded_by: str = Field(description="Who recorded it: their identity provider's subject id.")
    recorded_by_role: str | None = Field(
        description="Their role; null for outcomes recorded before roles were kept."
    )
    recorded_at: datetime


class FollowUpDetail(FollowUpOut):
    outcomes: list[OutcomeOut]


class OutcomeResult(BaseModel):
    follow_up: FollowUpOut
    attempt: int = Field(description="The attempt this outcome was recorded for.")
    reassessment: str | None = Field(None, description="not-reached or worsening when one was requested.")
    next_follow_up_id: uuid.UUID | None = Field(
        None, description="The next cadence follow-up, when this one completed a plan-cadence contact."
    )
