"""Events referral publishes: referrals along the closed loop, network gaps, deadlines."""

from __future__ import annotations

import uuid

from pydantic import Field

from careloop_shared.contracts.common import ActorId, ActorRole, EventTime, Part
from careloop_shared.events import Event, register


@register
class ReferralMade(Event):
    """A referral was made to a program for one plan intervention."""

    type = "careloop.referral.referral_made.v1"
    source = "/careloop/referral"

    referral_id: uuid.UUID
    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_id: str
    receiving_agency_id: str
    status: str = Field(description="Gravity SDOH task status; requested when made.")
    response_due_at: EventTime
    outcome_due_at: EventTime | None = None
    replaces_referral_id: uuid.UUID | None = Field(
        None, description="The referral this one re-routes after a rejection."
    )
    service_request_id: uuid.UUID | None = None
    program_category: str | None = Field(
        None, description="The kind of program referred to, e.g. food-assistance (what a consent may name)."
    )
    # Null when made on careloop's own (a plan arrived); otherwise the person whose action made it: the
    # care manager who chose the program by hand, the person whose rejection re-routed it, or who
    # activated the recruited provider it goes to.
    actor_id: ActorId = None
    actor_role: ActorRole = None


class ReferralOutcome(Part):
    service_delivered: bool | None = None
    enrollment_status: str | None = Field(
        None, description="Gravity program-enrollment: enrolled, not-enrolled, not-enrolled-on-waitlist."
    )
    reason: str | None = Field(None, description="Coded reason when the service was not delivered.")


@register
class ReferralStatusChanged(Event):
    """A referral moved along the Gravity SDOH referral task lifecycle."""

    type = "careloop.referral.referral_status_changed.v1"
    source = "/careloop/referral"

    referral_id: uuid.UUID
    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    from_status: str
    to_status: str
    by_agency_id: str
    by_party: str = Field(description="requester or target.")
    reason: str | None = Field(
        None, description="Coded reason (no free text): no-capacity, not-eligible, ..."
    )
    outcome: ReferralOutcome | None = None
    changed_at: EventTime
    # The person who moved it (of ``by_agency_id``); null when careloop did (consent revoked, released).
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class AppointmentStatusChanged(Event):
    """The receiving agency booked the referred patient's appointment with its program, moved it, or said
    how it went (FHIR Appointment statuses): a missed one is the care manager's to follow up."""

    type = "careloop.referral.appointment_status_changed.v1"
    source = "/careloop/referral"

    referral_id: uuid.UUID
    from_status: str | None = Field(None, description="The appointment's status before; null: none booked.")
    status: str = Field(description="booked, fulfilled, noshow or cancelled.")
    starts_at: EventTime
    by_agency_id: str = Field(description="The receiving agency, which books and keeps its appointments.")
    changed_at: EventTime
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class NetworkGapDetected(Event):
    """No eligible program exists for a need, area and language: a provider to recruit."""

    type = "careloop.referral.network_gap_detected.v1"
    source = "/careloop/referral"

    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_category: str | None
    postal_area: str | None
    language: str | None
    detected_at: EventTime


@register
class ReferralOverdue(Event):
    """A referral was not answered, not closed with an outcome, or its appointment's attendance not
    recorded, by its deadline."""

    type = "careloop.referral.referral_overdue.v1"
    source = "/careloop/referral"

    referral_id: uuid.UUID
    receiving_agency_id: str
    deadline: str = Field(
        description="response, outcome, or attendance (a booked appointment's time passed with no word"
        " of whether the patient came; once per booking)."
    )
    due_at: EventTime
