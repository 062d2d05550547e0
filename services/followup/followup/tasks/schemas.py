"""HTTP bodies of the task list. Reasons are codes from the task rules, never free text."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from careloop_shared.body import Body
from followup.schemas import Code

StatusFilter = Literal["open", "in-progress", "done", "cancelled", "active"]  # active: open or in-progress


class TaskStatusIn(Body):
    status: Literal["in-progress", "done", "cancelled"]
    reason: Code | None = Field(
        None, description="Coded, from the task rules' close_reasons, e.g. not-needed."
    )


class ToDoIn(Body):
    patient_id: uuid.UUID
    purpose: Code = Field(
        description="What it is for: a code of the task rules' to_do purposes, e.g. paperwork."
    )
    priority: Code = Field(
        "routine", description="urgent, high or routine (the task rules' to_do priorities)."
    )
    due_at: AwareDatetime = Field(
        description="When it is due: in the future, within the rules' furthest_days."
    )
    for_care_manager: bool = Field(
        False,
        description="For the patient's care manager (who keeps it as the caseload moves) rather than the"
        " caller; 409 when the patient has none.",
    )


class TaskCauseOut(BaseModel):
    event_id: uuid.UUID
    event_type: str
    referral_id: uuid.UUID | None
    follow_up_id: uuid.UUID | None
    assessment_id: uuid.UUID | None
    intervention_id: uuid.UUID | None
    instrument: str | None


class TaskOut(BaseModel):
    id: uuid.UUID
    kind: str
    patient_id: uuid.UUID
    priority: str = Field(description="stat, urgent, high or routine.")
    status: str = Field(description="open, in-progress, done or cancelled.")
    due_at: datetime
    escalate_at: datetime | None = Field(description="When it goes to a supervisor if still open.")
    escalated_at: datetime | None
    for_role: str = Field(description="Whose work it is by the rules: care-manager, admin, ...")
    assignee_id: str | None = Field(description="The person it is for; null when for a role.")
    assignee_role: str = Field(
        description="The role it is for: care-manager, admin, or supervisor once escalated."
    )
    cause: TaskCauseOut
    closed_at: datetime | None
    closed_by: str | None = Field(description="Who closed it; null when its cause was resolved by an event.")
    closed_by_role: str | None
    closed_reason: str | None = Field(description="resolved, or the closer's coded reason.")
    resolved_by_event_id: uuid.UUID | None
    resolved_by_event_type: str | None
    purpose: str | None = Field(None, description="A to-do's coded purpose; null for a task an event opened.")
    opened_by: str | None = Field(None, description="Who added a to-do; null for a task an event opened.")
    opened_by_role: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> TaskOut:
        cause = {k: row["cause_event_" + k] for k in ("id", "type")}
        ids = ("referral_id", "follow_up_id", "assessment_id", "intervention_id", "instrument")
        return cls(
            **{k: row[k] for k in cls.model_fields if k != "cause"},
            cause=TaskCauseOut(event_id=cause["id"], event_type=cause["type"], **{k: row[k] for k in ids}),
        )
