"""HTTP bodies of the closed loop: a status change asked for, and referrals with their history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from careloop_shared.body import Body
from referral.domain.directory import Code

TaskStatus = Literal[
    "requested",
    "accepted",
    "rejected",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
]


class _In(Body):
    """A request body of the referral loop."""


class OutcomeIn(_In):
    service_delivered: bool | None = None
    enrollment_status: Literal["enrolled", "not-enrolled", "not-enrolled-on-waitlist"] | None = None
    reason: Code | None = Field(None, description="Coded reason when the service was not delivered.")


class StatusChangeIn(_In):
    status: TaskStatus
    reason: Code | None = Field(None, description="Coded reason; required for rejected, cancelled, ...")
    outcome: OutcomeIn | None = Field(None, description="Required to complete.")
    note: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Free text kept in referral's database only, never in events or logs."
    )


class HistoryEntry(BaseModel):
    from_status: str | None
    to_status: str
    by_agency_id: str
    by_party: str
    by_subject: str | None = Field(
        None, description="The person who made the change (their subject id); null when careloop did."
    )
    by_role: str | None = Field(None, description="Their role: care-manager, provider, ...")
    reason: str | None
    outcome: dict[str, Any] | None
    note: str | None
    changed_at: datetime


class ReferralOut(BaseModel):
    id: uuid.UUID
    service_request_id: uuid.UUID
    patient_id: uuid.UUID
    referring_agency_id: str
    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_category: str | None
    program_id: str
    receiving_agency_id: str
    status: str
    status_reason: str | None
    priority: str
    outcome: dict[str, Any] | None
    replaces_referral_id: uuid.UUID | None
    choice: Literal["automatic", "by-hand"] = Field(
        description="Who chose the program: careloop's ranking, or a care manager by hand."
    )
    made_at: datetime | None
    response_due_at: datetime | None
    outcome_due_at: datetime | None
    response_overdue: bool
    outcome_overdue: bool
    appointment_status: str | None = Field(
        None, description="The patient's appointment with the program: booked, fulfilled, noshow, cancelled."
    )
    appointment_starts_at: datetime | None = None
    attendance_overdue: bool = Field(
        False, description="Its booked time passed a while ago with no word of whether the patient came."
    )
    created_at: datetime
    updated_at: datetime


class ReferralDetail(ReferralOut):
    history: list[HistoryEntry]


class StatusChanged(BaseModel):
    referral: ReferralDetail
    rerouted_to: uuid.UUID | None = Field(None, description="The new referral a rejection re-routed to.")


class ReferralSummary(BaseModel):
    """How the referrals an agency made in a period went, as counts: no patient, no program."""

    since: datetime | None = Field(description="Referrals made at or after this time; null: from the first.")
    until: datetime | None = Field(description="Referrals made before this time; null: up to now.")
    made: int = Field(description="Referrals made (an automatic one, one by hand, each re-route one more).")
    needs_referred: int = Field(
        0,
        description="The plan interventions they were for: a need re-routed or referred again counts once.",
    )
    needs_served: int = Field(
        0, description="Of those, the interventions a referral delivered the service for."
    )
    waiting_for_consent: int = Field(
        description="Drafts not sent: the patient's consent does not cover them."
    )
    open: int = Field(description="Sent and not closed: requested, accepted, in progress or on hold.")
    answer_overdue: int = Field(description="Requested, and not answered by the time the rules allow.")
    outcome_overdue: int = Field(description="Accepted, and no outcome by the time the rules allow.")
    accepted: int = Field(description="Accepted by the receiving agency, whatever became of them since.")
    rejected: int
    delivered: int = Field(description="Completed with the service delivered.")
    not_delivered: int = Field(description="Failed, or completed with an outcome saying not delivered.")
    cancelled: int = Field(description="Withdrawn, replaced by a care manager's choice, or consent revoked.")
    hours_to_accept_median: float | None = Field(description="From sent to accepted; null: none accepted.")
    hours_to_deliver_median: float | None = Field(description="From sent to completed with the service.")
