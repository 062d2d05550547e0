"""HTTP bodies of the caseloads: pseudonymous ids, counts and a due time; nothing else about a patient."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class CaseloadPatient(BaseModel):
    patient_id: uuid.UUID
    assigned_at: datetime = Field(description="Since when the caller is responsible for the patient.")
    open_tasks: int = Field(description="Open and in-progress care tasks (escalated ones included).")
    overdue_tasks: int = Field(description="Of those, past their due time.")
    urgent_tasks: int = Field(description="Of those, of an urgent priority (stat or urgent).")
    overdue_follow_ups: int
    next_follow_up_due: datetime | None = Field(description="The earliest open follow-up's due time.")
    risk_level: str | None = Field(
        None, description="The plan's risk level, when followup has heard of a plan."
    )
    open_needs: list[str] = Field(
        default_factory=list, description="Needs of the plan's goals not yet achieved."
    )
    last_contact: datetime | None = Field(None, description="When a follow-up last reached the patient.")


class CareManagerLoad(BaseModel):
    care_manager_id: str | None = Field(description="Null: the agency's patients nobody is responsible for.")
    patients: int
    open_tasks: int
    overdue_tasks: int
    urgent_tasks: int
    overdue_follow_ups: int
