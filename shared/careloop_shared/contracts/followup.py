"""Events followup publishes: follow-ups scheduled, due, completed, overdue, cancelled, reassessment."""

from __future__ import annotations

import uuid

from pydantic import Field

from careloop_shared.contracts.common import ActorId, ActorRole, EventTime, Part, RiskLevel
from careloop_shared.events import Event, register


@register
class FollowUpDue(Event):
    """A scheduled follow-up fell due. Emitted exactly once per due point."""

    type = "careloop.followup.follow_up_due.v1"
    source = "/careloop/followup"

    follow_up_id: uuid.UUID
    reason: str = Field(description="plan-cadence or referral-check-in.")
    due_at: EventTime
    priority: RiskLevel
    referral_id: uuid.UUID | None = None
    channel: str | None = Field(None, description="How to reach the patient, from the plan.")
    assignee_id: str | None = Field(None, description="The patient's care manager, when followup knows them.")


class GoalProgress(Part):
    goal_id: uuid.UUID
    progress: str = Field(description="improving, no-change, worsening or achieved.")


@register
class FollowUpScheduled(Event):
    """A follow-up was scheduled or rescheduled; the actor is whoever moved it or recorded the outcome."""

    type = "careloop.followup.follow_up_scheduled.v1"
    source = "/careloop/followup"

    follow_up_id: uuid.UUID
    reason: str = Field(
        description="plan-cadence, referral-check-in, referral-outcome-check-in, or arranged-contact (a"
        " contact a care manager agreed with the patient)."
    )
    due_at: EventTime
    priority: RiskLevel
    rescheduled: bool = Field(
        False,
        description="True when it announces a follow-up scheduled before again: moved to another time,"
        " revised with the plan, or an arranged contact's channel or purpose changed (due_at the same).",
    )
    channel: str | None = Field(
        None,
        description="How to reach the patient: the plan's channel, or the one an arranged contact names.",
    )
    actor_id: ActorId = None
    actor_role: ActorRole = None
    purpose: str | None = Field(
        None, description="What an arranged contact is for, a code: check-in, plan-review, ... (rules data)."
    )


@register
class FollowUpCompleted(Event):
    """A care manager recorded what a follow-up found. Notes stay in followup's database."""

    type = "careloop.followup.follow_up_completed.v1"
    source = "/careloop/followup"

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
    completed_at: EventTime
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class FollowUpOverdue(Event):
    """A due follow-up was not completed within its grace period. Emitted once."""

    type = "careloop.followup.follow_up_overdue.v1"
    source = "/careloop/followup"

    follow_up_id: uuid.UUID
    due_at: EventTime
    overdue_since: EventTime
    priority: RiskLevel


@register
class FollowUpCancelled(Event):
    """A care manager called off a contact arranged with the patient, for a coded reason."""

    type = "careloop.followup.follow_up_cancelled.v1"
    source = "/careloop/followup"

    follow_up_id: uuid.UUID
    reason: str = Field(description="Coded: patient-request, no-longer-needed, ... (rules data).")
    cancelled_at: EventTime
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class ReassessmentRequested(Event):
    """Follow-up asks intake for a reassessment: not reached after several attempts, or getting worse."""

    type = "careloop.followup.reassessment_requested.v1"
    source = "/careloop/followup"

    follow_up_id: uuid.UUID
    reason: str = Field(description="not-reached or worsening.")
    requested_at: EventTime
    actor_id: ActorId = None
    actor_role: ActorRole = None


class TaskCause(Part):
    """What made a task: the event, and the thing it is about."""

    event_id: uuid.UUID
    event_type: str
    referral_id: uuid.UUID | None = None
    follow_up_id: uuid.UUID | None = None
    assessment_id: uuid.UUID | None = None
    intervention_id: uuid.UUID | None = Field(None, description="The plan intervention it is about.")
    instrument: str | None = Field(None, description="The instrument to give, for a do-instrument task.")


@register
class TaskOpened(Event):
    """A unit of work for a person (or a role) about a patient, made from the event that called for it."""

    type = "careloop.followup.task_opened.v1"
    source = "/careloop/followup"

    task_id: uuid.UUID
    kind: str = Field(
        description="safety-check, follow-up, chase-referral, re-refer, reassess, ... (rules data)."
    )
    priority: str = Field(
        description="stat, urgent, high, routine: the list is ordered by it, then by due time."
    )
    due_at: EventTime
    assignee_id: str | None = Field(None, description="The staff member it is for; null when for a role.")
    assignee_role: str | None = Field(None, description="The role it is for when not a person, e.g. admin.")
    cause: TaskCause = Field(
        description="The event that called for it; for a to-do a person added, this TaskOpened itself."
    )
    purpose: str | None = Field(
        None,
        description="A to-do's coded purpose (call-patient, paperwork, ...: rules data); null otherwise.",
    )
    actor_id: ActorId = None  # who added a to-do (it may be for another); null for a task an event opened
    actor_role: ActorRole = None


@register
class TaskStatusChanged(Event):
    """A task moved: in progress, done, cancelled, or closed because its cause was resolved."""

    type = "careloop.followup.task_status_changed.v1"
    source = "/careloop/followup"

    task_id: uuid.UUID
    from_status: str
    to_status: str = Field(description="open, in-progress, done or cancelled.")
    reason: str | None = Field(None, description="Coded: resolved (its cause was), or the closer's reason.")
    changed_at: EventTime
    actor_id: ActorId = None
    actor_role: ActorRole = None


@register
class TaskEscalated(Event):
    """A task was not done in time and went to a supervisor."""

    type = "careloop.followup.task_escalated.v1"
    source = "/careloop/followup"

    task_id: uuid.UUID
    kind: str
    to_role: str = Field(description="Who it went to: supervisor.")
    due_at: EventTime
    escalated_at: EventTime
