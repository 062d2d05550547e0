"""Event contracts, version 1. Published as JSON Schema under ``schemas/`` for analytics consumers.

Evolution rule: a ``.v1`` type only gains optional fields; anything else is a new ``.v2`` type.
Events carry pseudonymous ids and coded values only: never names, birth dates, phone numbers,
addresses or free text written about a patient.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from careloop_shared.events import Event, register


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RiskLevel(StrEnum):
    low = "low"
    moderate = "moderate"
    high = "high"
    urgent = "urgent"


class Need(_Part):
    code: str = Field(description="Gravity SDOH domain code or clinical need, e.g. food-insecurity.")
    severity: str | None = Field(None, description="Severity band where the instrument has one.")


class Observation(_Part):
    """One answered item or a derived total, coded in LOINC."""

    code: str = Field(description="LOINC code of the item or total, e.g. 44261-6 (PHQ-9 total).")
    system: str = "http://loinc.org"
    value: int | str | list[str] = Field(description="Score, LOINC answer code, or answer codes.")
    points: int | None = Field(None, description="Points an answer code scores, where it scores.")
    interpretation: str | None = Field(None, description="Band of a total, e.g. moderate.")


class ContactPreference(StrEnum):
    phone = "phone"
    text = "text"
    email = "email"
    do_not_contact = "do-not-contact"


@register
class PatientRegistered(Event):
    """An agency registered a patient. Identifying details stay in intake's database."""

    type = "careloop.intake.patient_registered.v1"
    source = "/careloop/intake"
    summary = "Patient registered"

    preferred_language: str = Field(description="BCP-47 language tag, e.g. en, es.")
    registered_at: datetime
    contact_preference: ContactPreference | None = None
    postal_area: str | None = Field(None, description="First three characters of the postal code.")


@register
class PatientUpdated(Event):
    """A patient's details or preferences changed. Carries only the non-identifying ones."""

    type = "careloop.intake.patient_updated.v1"
    source = "/careloop/intake"
    summary = "Patient details updated"

    preferred_language: str
    contact_preference: ContactPreference
    postal_area: str | None = Field(None, description="First three characters of the postal code.")
    changed_fields: list[str] = Field(description="Names of the fields that changed, never their values.")
    updated_at: datetime


@register
class ConsentRecorded(Event):
    """The patient agreed to share their case with other agencies or program categories."""

    type = "careloop.intake.consent_recorded.v1"
    source = "/careloop/intake"
    summary = "Consent recorded"

    consent_id: uuid.UUID
    purpose: str = Field(description="What sharing is for: referral, care-coordination, ...")
    agencies: list[str] = Field(description="Agencies the case may be shared with.")
    program_categories: list[str] = Field(description="Program categories the case may be shared with.")
    period_start: datetime
    period_end: datetime | None = None
    recorded_at: datetime


@register
class ConsentRevoked(Event):
    """The patient withdrew a consent; sharing under it stops."""

    type = "careloop.intake.consent_revoked.v1"
    source = "/careloop/intake"
    summary = "Consent revoked"

    consent_id: uuid.UUID
    revoked_at: datetime


@register
class PatientAssessed(Event):
    """A screening instrument was scored into needs, a risk level and urgent flags."""

    type = "careloop.intake.patient_assessed.v1"
    source = "/careloop/intake"
    summary = "Patient assessed"

    assessment_id: uuid.UUID
    instrument: str = Field(description="Instrument id, e.g. phq-2, phq-9, ahc-hrsn.")
    rules_version: str = Field(description="Version of the scoring rules data file used.")
    total_score: int | None = None
    needs: list[Need]
    risk_level: RiskLevel
    urgent_flags: list[str] = Field(default_factory=list)
    assessed_at: datetime
    observations: list[Observation] = Field(default_factory=list)
    interpretation: str | None = Field(None, description="Band of the instrument's total score.")
    recommended_instruments: list[str] = Field(
        default_factory=list, description="Instruments the result asks for next, e.g. phq-9 after phq-2."
    )


class Goal(_Part):
    id: uuid.UUID
    need: str
    description: str = Field(description="Coded goal text from the plan library, not patient notes.")
    target: str
    due: datetime
    lifecycle_status: str = Field(
        "active", description="FHIR Goal.lifecycleStatus: proposed, accepted, active, on-hold, completed, ..."
    )
    achievement_status: str | None = Field(
        None,
        description="FHIR Goal.achievementStatus: in-progress, improving, worsening, no-change, achieved.",
    )


class Intervention(_Part):
    id: uuid.UUID
    need: str
    kind: str = Field(description="referral, education, follow-up or clinical.")
    program_category: str | None = Field(None, description="Kind of program a referral asks for.")
    needs_referral: bool
    status: str = Field(
        "not-started",
        description="FHIR CarePlan.activity status: not-started, scheduled, in-progress, on-hold, completed, "
        "cancelled, stopped.",
    )
    priority: str = Field("routine", description="FHIR request priority: routine, urgent, asap, stat.")
    language: str | None = Field(None, description="Language the intervention is delivered in (BCP-47).")
    education_materials: list[str] = Field(
        default_factory=list, description="Ids of education materials, in the patient's language."
    )
    service_code: str | None = Field(None, description="Service asked for, for clinical interventions.")


class FollowUpCadence(_Part):
    every_days: float
    priority: RiskLevel


@register
class PlanUpdated(Event):
    """A new version of the patient's care plan."""

    type = "careloop.careplan.plan_updated.v1"
    source = "/careloop/careplan"
    summary = "Care plan updated"

    plan_id: uuid.UUID
    version: int
    status: str = Field(description="FHIR CarePlan status: draft, active, on-hold, revoked, completed.")
    risk_level: RiskLevel
    goals: list[Goal]
    interventions: list[Intervention]
    follow_up: FollowUpCadence
    based_on_assessment_id: uuid.UUID | None = None
    reason: str | None = Field(
        None,
        description="Why this version: assessment, care-team-contribution, service-request, "
        "alternative-chosen, progress, status-change.",
    )
    changed_by_role: str | None = Field(
        None, description="Role of whoever made the change; system for automatic."
    )
    preferred_language: str | None = None
    contact_preference: str | None = None


@register
class PlanAlternativesProposed(Event):
    """A requested service did not meet its necessity criteria; alternatives from the library are offered."""

    type = "careloop.careplan.plan_alternatives_proposed.v1"
    source = "/careloop/careplan"
    summary = "Alternatives proposed"

    plan_id: uuid.UUID
    service_request_id: uuid.UUID
    service_code: str
    failed_criteria: list[str] = Field(description="Codes of the necessity criteria that were not met.")
    alternatives: list[str] = Field(description="Service codes proposed instead.")


@register
class EducationProvided(Event):
    """Patient education for an intervention was given."""

    type = "careloop.careplan.education_provided.v1"
    source = "/careloop/careplan"
    summary = "Education provided"

    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    materials: list[str]
    language: str
    provided_at: datetime


@register
class CareTeamChanged(Event):
    """A member joined, changed or left the care team. Members are named only in careplan's database."""

    type = "careloop.careplan.care_team_changed.v1"
    source = "/careloop/careplan"
    summary = "Care team changed"

    member_id: uuid.UUID
    change: str = Field(description="added, changed or removed.")
    relationship: str = Field(
        description="care-manager, patient, family, friend, neighbour, other-support, ..."
    )
    role: str


@register
class ReferralMade(Event):
    """A referral was made to a program for one plan intervention."""

    type = "careloop.referral.referral_made.v1"
    source = "/careloop/referral"
    summary = "Referral made"

    referral_id: uuid.UUID
    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_id: str
    receiving_agency_id: str
    status: str = Field(description="Gravity SDOH task status; requested when made.")
    response_due_at: datetime
    outcome_due_at: datetime | None = None
    replaces_referral_id: uuid.UUID | None = Field(
        None, description="The referral this one re-routes after a rejection."
    )
    service_request_id: uuid.UUID | None = None


class ReferralOutcome(_Part):
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
    summary = "Referral status changed"

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
    changed_at: datetime


@register
class NetworkGapDetected(Event):
    """No eligible program exists for a need, area and language: a provider to recruit."""

    type = "careloop.referral.network_gap_detected.v1"
    source = "/careloop/referral"
    summary = "Network gap detected"

    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_category: str | None
    postal_area: str | None
    language: str | None
    detected_at: datetime


@register
class ReferralOverdue(Event):
    """A referral was not answered, or not closed with an outcome, by its deadline."""

    type = "careloop.referral.referral_overdue.v1"
    source = "/careloop/referral"
    summary = "Referral overdue"

    referral_id: uuid.UUID
    receiving_agency_id: str
    deadline: str = Field(description="response or outcome.")
    due_at: datetime


@register
class FollowUpDue(Event):
    """A scheduled follow-up fell due. Emitted exactly once per due point."""

    type = "careloop.followup.follow_up_due.v1"
    source = "/careloop/followup"
    summary = "Follow-up due"

    follow_up_id: uuid.UUID
    reason: str = Field(description="plan-cadence or referral-check-in.")
    due_at: datetime
    priority: RiskLevel
    referral_id: uuid.UUID | None = None


class GoalProgress(_Part):
    goal_id: uuid.UUID
    progress: str = Field(description="improving, no-change, worsening or achieved.")


@register
class FollowUpScheduled(Event):
    """A follow-up was scheduled or rescheduled."""

    type = "careloop.followup.follow_up_scheduled.v1"
    source = "/careloop/followup"
    summary = "Follow-up scheduled"

    follow_up_id: uuid.UUID
    reason: str
    due_at: datetime
    priority: RiskLevel
    rescheduled: bool = False


@register
class FollowUpCompleted(Event):
    """A care manager recorded what a follow-up found. Notes stay in followup's database."""

    type = "careloop.followup.follow_up_completed.v1"
    source = "/careloop/followup"
    summary = "Follow-up completed"

    follow_up_id: uuid.UUID
    reached: bool
    attempt: int
    goal_progress: list[GoalProgress] = Field(default_factory=list)
    barriers: list[str] = Field(
        default_factory=list, description="Coded barriers, e.g. transportation, cost."
    )
    next_step: str | None = Field(
        None, description="Coded next step, e.g. continue-plan, reassess, escalate."
    )
    referral_id: uuid.UUID | None = None
    completed_at: datetime


@register
class FollowUpOverdue(Event):
    """A due follow-up was not completed within its grace period. Emitted once."""

    type = "careloop.followup.follow_up_overdue.v1"
    source = "/careloop/followup"
    summary = "Follow-up overdue"

    follow_up_id: uuid.UUID
    due_at: datetime
    overdue_since: datetime
    priority: RiskLevel


@register
class ReassessmentRequested(Event):
    """Follow-up asks intake for a reassessment: not reached after several attempts, or getting worse."""

    type = "careloop.followup.reassessment_requested.v1"
    source = "/careloop/followup"
    summary = "Reassessment requested"

    follow_up_id: uuid.UUID
    reason: str = Field(description="not-reached or worsening.")
    requested_at: datetime
