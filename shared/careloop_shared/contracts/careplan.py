"""Events careplan publishes: care plan versions, care teams, necessity decisions, education."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from careloop_shared.contracts.common import ActorId, ActorRole, EventTime, Part, RiskLevel
from careloop_shared.events import Event, register


class Goal(Part):
    id: uuid.UUID
    need: str
    description: str = Field(description="Coded goal text from the plan library, not patient notes.")
    target: str
    due: EventTime
    lifecycle_status: str = Field(
        "active", description="FHIR Goal.lifecycleStatus: proposed, accepted, active, on-hold, completed, ..."
    )
    achievement_status: str | None = Field(
        None,
        description="FHIR Goal.achievementStatus: in-progress, improving, worsening, no-change, achieved.",
    )


class Intervention(Part):
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


# The longest cadence a plan may keep: ten years between follow-ups.
LONGEST_CADENCE_DAYS = 3650


def _a_cadence(days: float) -> float:
    if not days <= LONGEST_CADENCE_DAYS:  # NaN too
        raise PydanticCustomError("cadence_out_of_range", "should be at most 3650 days")
    return days


class FollowUpCadence(Part):
    every_days: Annotated[float, AfterValidator(_a_cadence)] = Field(
        description="Days between follow-ups, at most 3650 (ten years); 0 or less when the plan has no"
        " cadence of its own (followup then uses its default for the plan's risk)."
    )
    priority: RiskLevel
    channel: str | None = Field(
        None,
        description="How follow-ups reach the patient: phone, text, email or in-person-only (do-not-contact,"
        " or an interpersonal-safety need with no other safe channel).",
    )


@register
class PlanUpdated(Event):
    """A new version of the patient's care plan."""

    type = "careloop.careplan.plan_updated.v1"
    source = "/careloop/careplan"

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
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class PlanAlternativesProposed(Event):
    """A requested service did not meet its necessity criteria; alternatives from the library are offered."""

    type = "careloop.careplan.plan_alternatives_proposed.v1"
    source = "/careloop/careplan"

    plan_id: uuid.UUID
    service_request_id: uuid.UUID
    service_code: str
    failed_criteria: list[str] = Field(description="Codes of the necessity criteria that were not met.")
    alternatives: list[str] = Field(description="Service codes proposed instead.")
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class EducationProvided(Event):
    """Patient education for an intervention was given."""

    type = "careloop.careplan.education_provided.v1"
    source = "/careloop/careplan"

    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    materials: list[str]
    language: str
    provided_at: EventTime
    material_versions: list[str] = Field(
        default_factory=list, description="The version of each material given, in the order of materials."
    )
    channel: str | None = Field(None, description="How it was given: in-person, phone, text, email, mail.")
    teach_back_confirmed: bool | None = Field(
        None, description="Whether the patient explained it back in their own words (teach-back)."
    )
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class CareTeamChanged(Event):
    """A member joined, changed or left the care team. Members are named only in careplan's database."""

    type = "careloop.careplan.care_team_changed.v1"
    source = "/careloop/careplan"

    member_id: uuid.UUID
    change: str = Field(description="added, changed or removed.")
    relationship: str = Field(
        description="care-manager, patient, family, friend, neighbour, other-support, ..."
    )
    role: str = Field(description="The member's role in the team, e.g. primary-support.")
    actor_id: ActorId = None
    actor_role: ActorRole = None
