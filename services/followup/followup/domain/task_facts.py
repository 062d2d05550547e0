"""What a task needs to know of an event: whose, when, and what it is about. Pure: no I/O.

The task rules name events; this is the one place that knows how to read each of them (see
``task_rules.ABOUT_BY_EVENT`` for what each can be about).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from careloop_shared.contracts import (
    AppointmentStatusChanged,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    NetworkGapDetected,
    PatientAssessed,
    PlanAlternativesProposed,
    PlanUpdated,
    ReassessmentRequested,
    ReferralMade,
    ReferralOverdue,
    ReferralStatusChanged,
)
from careloop_shared.events import Event

ATTENDANCE = "attendance"  # ReferralOverdue's deadline that comes again with each booked appointment


@dataclass(frozen=True)
class Facts:
    """What a task needs to know of an event: whose, when, and what it is about."""

    event_id: uuid.UUID
    event_type: str
    patient_id: uuid.UUID
    agency_id: str
    at: datetime  # when it happened: causes and resolutions are compared by it
    about: Mapping[str, str]  # "referral", "instrument", ... -> which one ("patient" -> "")
    cause_key: str  # one task of a kind per cause
    due_base: datetime | None = None  # what a task it opens is due from (default: ``at``)
    recommended: tuple[str, ...] = ()
    urgent_flags: frozenset[str] = frozenset()
    to_status: str | None = None
    not_delivered: bool = False  # ReferralStatusChanged: completed, its outcome saying without the service
    deadline: str | None = None  # ReferralOverdue: which one
    plan_reason: str | None = None
    priority: str | None = None  # the cause's own priority (a follow-up's)
    ids: Mapping[str, uuid.UUID] = field(default_factory=dict)  # for the TaskCause


def facts_of(event: Event, event_id: uuid.UUID, time: datetime, *, due_base: datetime | None = None) -> Facts:
    """Read an event the rules may name. ``time`` is its CloudEvents time, used when it has no time of its
    own (and for NetworkGapDetected, so that it compares with ReferralMade on referral's one clock)."""
    about: dict[str, str] = {"patient": ""}
    ids: dict[str, uuid.UUID] = {}
    extra: dict[str, Any] = {}
    at, key = time, str(event_id)
    if isinstance(event, PatientAssessed):
        ids["assessment_id"] = event.assessment_id
        about |= {"assessment": str(event.assessment_id), "instrument": event.instrument}
        at, key = event.assessed_at, str(event.assessment_id)
        extra = {
            "recommended": tuple(event.recommended_instruments),
            "urgent_flags": frozenset(event.urgent_flags),
        }
    elif isinstance(
        event, FollowUpDue | FollowUpOverdue | FollowUpCompleted | FollowUpScheduled | FollowUpCancelled
    ):
        ids["follow_up_id"] = event.follow_up_id
        about["follow-up"] = str(event.follow_up_id)
        if isinstance(event, FollowUpDue):
            at, extra = event.due_at, {"priority": event.priority.value}
            ids |= {"referral_id": event.referral_id} if event.referral_id else {}
        elif isinstance(event, FollowUpOverdue):
            at = event.overdue_since
        elif isinstance(event, FollowUpCompleted):
            at = event.completed_at
        elif isinstance(event, FollowUpCancelled):
            at = event.cancelled_at
    elif isinstance(event, ReassessmentRequested):
        ids["follow_up_id"] = event.follow_up_id
        about["follow-up"] = str(event.follow_up_id)
        at, key = event.requested_at, str(event.follow_up_id)
    elif isinstance(event, ReferralOverdue):
        ids["referral_id"] = event.referral_id
        about["referral"] = str(event.referral_id)
        at, key = event.due_at, f"{event.referral_id}/{event.deadline}"
        if event.deadline == ATTENDANCE:  # once per booking: a later booking's is another cause
            key = f"{key}/{event.due_at.isoformat()}"
        extra = {"deadline": event.deadline}
    elif isinstance(event, ReferralStatusChanged):
        ids |= {"referral_id": event.referral_id, "intervention_id": event.intervention_id}
        about |= {"referral": str(event.referral_id), "intervention": str(event.intervention_id)}
        at, key, extra = (
            event.changed_at,
            f"{event.referral_id}/{event.to_status}",
            {"to_status": event.to_status, "not_delivered": _not_delivered(event)},
        )
    elif isinstance(event, ReferralMade):
        ids["intervention_id"] = event.intervention_id
        about["intervention"] = str(event.intervention_id)
        if event.replaces_referral_id is not None:
            about["referral"] = str(event.replaces_referral_id)
    elif isinstance(event, AppointmentStatusChanged):
        ids["referral_id"] = event.referral_id
        about["referral"] = str(event.referral_id)
        # One task per appointment missed: a patient who misses the one booked again is followed up again.
        at, key = event.changed_at, f"{event.referral_id}/{event.starts_at.isoformat()}/{event.status}"
        extra = {"to_status": event.status}
    elif isinstance(event, PlanAlternativesProposed):
        about["service-request"] = str(event.service_request_id)
        key = str(event.service_request_id)
    elif isinstance(event, PlanUpdated):
        extra = {"plan_reason": event.reason}
    elif isinstance(event, NetworkGapDetected):
        ids["intervention_id"] = event.intervention_id
        about["intervention"] = str(event.intervention_id)
        key = str(event.intervention_id)
    return Facts(
        event_id=event_id,
        event_type=event.type,
        patient_id=event.patient_id,
        agency_id=event.agency_id,
        at=at,
        about=about,
        cause_key=key,
        due_base=due_base,
        ids=ids,
        **extra,
    )


def _not_delivered(event: ReferralStatusChanged) -> bool:
    return (
        event.to_status == "completed"
        and event.outcome is not None
        and event.outcome.service_delivered is False
    )
