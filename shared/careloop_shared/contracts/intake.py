"""Events intake publishes: patients, their consent and their assessments."""

from __future__ import annotations

import uuid

from pydantic import Field

from careloop_shared.contracts.common import (
    ActorId,
    ActorRole,
    ContactPreference,
    EventTime,
    Need,
    Observation,
    RiskLevel,
    SafeChannels,
)
from careloop_shared.crypto import Sealed
from careloop_shared.events import Event, register


@register
class PatientRegistered(Event):
    """An agency registered a patient. Identifying details stay in intake's database."""

    type = "careloop.intake.patient_registered.v1"
    source = "/careloop/intake"

    preferred_language: str = Field(description="BCP-47 language tag, e.g. en, es.")
    registered_at: EventTime
    contact_preference: ContactPreference | None = None
    postal_area: str | None = Field(None, description="First three characters of the postal code.")
    safe_channels: SafeChannels = None
    care_manager_id: str | None = Field(
        None, description="The staff member responsible for the patient (their identity provider's id)."
    )
    # The staff member who registered the patient.
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class PatientUpdated(Event):
    """A patient's details or preferences changed. Carries only the non-identifying ones."""

    type = "careloop.intake.patient_updated.v1"
    source = "/careloop/intake"

    preferred_language: str
    contact_preference: ContactPreference
    postal_area: str | None = Field(None, description="First three characters of the postal code.")
    changed_fields: list[str] = Field(description="Names of the fields that changed, never their values.")
    safe_channels: SafeChannels = None
    updated_at: EventTime
    # The staff member who changed the details.
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class ConsentRecorded(Event):
    """The patient agreed to share their case with other agencies or program categories."""

    type = "careloop.intake.consent_recorded.v1"
    source = "/careloop/intake"

    consent_id: uuid.UUID
    purpose: str = Field(description="What sharing is for: referral, care-coordination, ...")
    agencies: list[str] = Field(description="Agencies the case may be shared with.")
    program_categories: list[str] = Field(description="Program categories the case may be shared with.")
    period_start: EventTime
    period_end: EventTime | None = None
    recorded_at: EventTime
    # The staff member who recorded the consent.
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class ConsentRevoked(Event):
    """The patient withdrew a consent; sharing under it stops."""

    type = "careloop.intake.consent_revoked.v1"
    source = "/careloop/intake"

    consent_id: uuid.UUID
    revoked_at: EventTime
    # The staff member who recorded the withdrawal.
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class PatientAssessed(Event):
    """A screening instrument was scored into needs, a risk level and urgent flags."""

    type = "careloop.intake.patient_assessed.v1"
    source = "/careloop/intake"

    assessment_id: uuid.UUID
    instrument: str = Field(description="Instrument id, e.g. phq-2, phq-9, ahc-hrsn.")
    rules_version: str = Field(description="Version of the scoring rules data file used.")
    total_score: int | None = None
    needs: list[Need]
    risk_level: RiskLevel
    urgent_flags: list[str] = Field(default_factory=list)
    assessed_at: EventTime
    observations: list[Observation] = Field(
        default_factory=list,
        description="The totals in the clear; item-level answers only in `sealed` (from intake 2026-11-30;"
        " events before carry the items here).",
    )
    sealed: Sealed | None = Field(
        None,
        description="The item-level answers, sealed with the patient's data key (AES-256-GCM, `kid`"
        " `<patient id>/<version>`): readable only by a service given that key, and by no one once the"
        " patient's data was erased.",
    )
    interpretation: str | None = Field(None, description="Band of the instrument's total score.")
    recommended_instruments: list[str] = Field(
        default_factory=list, description="Instruments the result asks for next, e.g. phq-9 after phq-2."
    )
    # The staff member who recorded the answers.
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class CareManagerAssigned(Event):
    """A care manager became responsible for the patient: at registration, or reassigned by a supervisor."""

    type = "careloop.intake.care_manager_assigned.v1"
    source = "/careloop/intake"

    care_manager_id: str = Field(description="The responsible staff member's id (identity provider subject).")
    previous_care_manager_id: str | None = None
    reason: str = Field(description="registration or reassignment.")
    assigned_at: EventTime
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class PatientErased(Event):
    """The patient's identifying details and sealed data were erased at a supervisor's request: the data
    key is destroyed, so every sealed copy anywhere is unreadable. The pseudonymous case goes on."""

    type = "careloop.intake.patient_erased.v1"
    source = "/careloop/intake"

    erased_at: EventTime
    actor_id: ActorId = None
    actor_role: ActorRole = None
