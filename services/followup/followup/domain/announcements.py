"""What followup announces about a follow-up, and under which id. Pure: no I/O.

An announcement with an id is the same event however often it is decided (a retried request, a
second replica, a redelivery): the outbox keeps one. Free text about the patient is never in one.
A change a person made names them (``by``); what careloop does on its own names nobody.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careloop_shared.contracts import (
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    GoalProgress,
    ReassessmentRequested,
    RiskLevel,
)
from careloop_shared.events import Event
from followup.domain.follow_up import Actor, FollowUp, Outcome
from followup.domain.schedule import due_event_id, event_id


@dataclass(frozen=True)
class Announcement:
    event: Event
    event_id: uuid.UUID | None  # None: a fresh one


def _about(follow_up: FollowUp) -> dict[str, Any]:
    return {
        "patient_id": follow_up.patient_id,
        "agency_id": follow_up.agency_id,
        "follow_up_id": follow_up.id,
    }


def _actor(by: Actor | None) -> dict[str, str | None]:
    return {"actor_id": by.subject if by else None, "actor_role": by.role if by else None}


def _scheduled(follow_up: FollowUp, *, rescheduled: bool, by: Actor | None = None) -> FollowUpScheduled:
    return FollowUpScheduled(
        **_about(follow_up),
        reason=follow_up.reason,
        due_at=follow_up.due_at,
        priority=RiskLevel(follow_up.priority),
        rescheduled=rescheduled,
        channel=follow_up.channel,
        purpose=follow_up.purpose,
        **_actor(by),
    )


def scheduled(follow_up: FollowUp, *, rescheduled: bool = False, by: Actor | None = None) -> Announcement:
    """Once per due point: when first scheduled, and for each retry or reschedule."""
    return Announcement(
        _scheduled(follow_up, rescheduled=rescheduled, by=by),
        event_id("scheduled", follow_up.id, follow_up.due_point),
    )


def revised(follow_up: FollowUp, *, by: Actor | None = None) -> Announcement:
    """A plan revision moved a waiting follow-up or changed its priority, or a person changed how or what
    for an arranged contact is (``by``). The inbox applies each revision once, and a revision keeps the
    due point, so the id is a fresh one."""
    return Announcement(_scheduled(follow_up, rescheduled=True, by=by), None)


def due(follow_up: FollowUp, *, assignee_id: str | None = None) -> Announcement:
    """Once per due point, for the patient's care manager (``assignee_id``) when followup knows them."""
    return Announcement(
        FollowUpDue(
            **_about(follow_up),
            reason=follow_up.reason,
            due_at=follow_up.due_at,
            priority=RiskLevel(follow_up.priority),
            referral_id=follow_up.referral_id,
            channel=follow_up.channel,
            assignee_id=assignee_id,
        ),
        due_event_id(follow_up.id, follow_up.due_at, follow_up.due_point),
    )


def overdue(follow_up: FollowUp) -> Announcement:
    """Once per due point whose grace period passed without an outcome."""
    assert follow_up.overdue_since is not None
    return Announcement(
        FollowUpOverdue(
            **_about(follow_up),
            due_at=follow_up.due_at,
            overdue_since=follow_up.overdue_since,
            priority=RiskLevel(follow_up.priority),
        ),
        event_id("overdue", follow_up.id, follow_up.due_point),
    )


def completed(follow_up: FollowUp, outcome: Outcome, at: datetime, *, by: Actor) -> Announcement:
    """One attempt's coded outcome; the note stays in followup's database."""
    return Announcement(
        FollowUpCompleted(
            **_about(follow_up),
            reached=outcome.reached,
            attempt=follow_up.attempt,
            goal_progress=[GoalProgress(goal_id=g, progress=p) for g, p in outcome.goal_progress],
            barriers=list(outcome.barriers),
            next_step=outcome.next_step,
            referral_id=follow_up.referral_id,
            completed_at=at,
            **_actor(by),
        ),
        event_id("completed", follow_up.id, follow_up.attempt),
    )


def cancelled(follow_up: FollowUp, reason: str, at: datetime, *, by: Actor) -> Announcement:
    """Once: a follow-up called off stays so."""
    return Announcement(
        FollowUpCancelled(**_about(follow_up), reason=reason, cancelled_at=at, **_actor(by)),
        event_id("cancelled", follow_up.id),
    )


def reassessment_requested(follow_up: FollowUp, reason: str, at: datetime, *, by: Actor) -> Announcement:
    """At most once per follow-up, asked for by the outcome ``by`` recorded."""
    return Announcement(
        ReassessmentRequested(
            **_about(follow_up),
            reason=reason,
            requested_at=at,
            **_actor(by),
        ),
        event_id("reassessment", follow_up.id),
    )
