"""A follow-up's schedule decided whole: a new follow-up, a reschedule, a revision with its plan. Pure.

A care manager may move an open follow-up to another time, and a plan revision updates the patient's
one open cadence follow-up. Each change is decided here whole (the rows to store, the changes to make,
the events to announce with their ids), so a handler only reads, asks, and applies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from careloop_shared.ids import new_id
from followup.domain import announcements as announce
from followup.domain.announcements import Announcement
from followup.domain.follow_up import OPEN, PLAN_CADENCE, Actor, FollowUp, InvalidInput, NotOutstanding
from followup.domain.rules import FollowUpRules
from followup.domain.schedule import next_cadence_due


def new_follow_up(
    rules: FollowUpRules,
    now: datetime,
    *,
    patient_id: uuid.UUID,
    agency_id: str,
    reason: str,
    priority: str,
    due_at: datetime,
    plan_id: uuid.UUID | None = None,
    referral_id: uuid.UUID | None = None,
    every_days: float | None = None,
    cadence_anchor_at: datetime | None = None,
    channel: str | None = None,
    purpose: str | None = None,
) -> dict[str, Any]:
    """The row of a follow-up to schedule: first attempt, first due point, its grace period from the rules."""
    return {
        "id": new_id(),
        "patient_id": patient_id,
        "agency_id": agency_id,
        "reason": reason,
        "plan_id": plan_id,
        "referral_id": referral_id,
        "priority": priority,
        "due_at": due_at,
        "overdue_at": rules.overdue_at(due_at, priority),
        "status": "scheduled",
        "attempt": 1,
        "due_point": 1,
        "every_days": every_days,
        "cadence_anchor_at": cadence_anchor_at,
        "overdue_since": None,
        "completed_at": None,
        "reassessment": None,
        "channel": channel,
        "purpose": purpose,
        "created_at": now,
        "updated_at": now,
    }


def cadence_follow_up(
    rules: FollowUpRules,
    now: datetime,
    *,
    patient_id: uuid.UUID,
    agency_id: str,
    plan_id: uuid.UUID | None,
    priority: str,
    every_days: float,
    anchor: datetime,
    channel: str | None = None,
) -> dict[str, Any]:
    """A plan's next cadence contact, counted from its anchor: the plan's start, or the last contact."""
    return new_follow_up(
        rules,
        now,
        patient_id=patient_id,
        agency_id=agency_id,
        reason=PLAN_CADENCE,
        plan_id=plan_id,
        priority=priority,
        due_at=next_cadence_due(anchor, every_days),
        every_days=every_days,
        cadence_anchor_at=anchor,
        channel=channel,
    )


def in_body(*parts: str | int) -> list[str | int]:
    """Where in the request body a problem is."""
    return ["body", *parts]


def waiting_again(rules: FollowUpRules, moved: FollowUp) -> dict[str, Any]:
    """The changes that wait for a follow-up again at its new due point, with a fresh grace period."""
    return {
        "status": "scheduled",
        "due_at": moved.due_at,
        "due_point": moved.due_point,
        "overdue_at": rules.overdue_at(moved.due_at, moved.priority),
        "overdue_since": None,
    }


def time_problems(due_at: datetime, now: datetime, within_days: float) -> list[dict[str, Any]]:
    """What is wrong with ``due_at`` as the time a person gives a follow-up: it is to come, and within
    ``within_days``."""
    if due_at <= now:
        return [{"loc": in_body("due_at"), "msg": "must be in the future"}]
    if due_at > now + timedelta(days=within_days):
        return [{"loc": in_body("due_at"), "msg": f"must be within {within_days:g} days"}]
    return []


def check_reschedule(
    rules: FollowUpRules, follow_up: FollowUp, reason: str, due_at: datetime, now: datetime
) -> None:
    """Refuse a reschedule to an unusable time (InvalidInput) or of a closed follow-up (NotOutstanding)."""
    problems: list[dict[str, Any]] = []
    if reason not in rules.reschedule_reasons:
        problems.append({"loc": in_body("reason"), "msg": "unknown reschedule reason code"})
    problems += time_problems(due_at, now, rules.max_reschedule_days)
    if problems:
        raise InvalidInput(problems)
    if follow_up.status not in OPEN:
        raise NotOutstanding(f"follow-up is {follow_up.status}")


@dataclass(frozen=True)
class Rescheduling:
    """A care manager's move of an open follow-up to another time: a new due point."""

    reschedule_row: dict[str, Any]
    changes: dict[str, Any]
    announcement: Announcement


def reschedule(
    rules: FollowUpRules, follow_up: FollowUp, reason: str, due_at: datetime, now: datetime, *, by: Actor
) -> Rescheduling:
    check_reschedule(rules, follow_up, reason, due_at, now)
    # As the database gives it back, so the announcement reads the same whatever offset was asked in.
    moved = replace(
        follow_up, status="scheduled", due_at=due_at.astimezone(UTC), due_point=follow_up.due_point + 1
    )
    return Rescheduling(
        reschedule_row={
            "follow_up_id": follow_up.id,
            "due_point": moved.due_point,
            "reason": reason,
            "from_due_at": follow_up.due_at,
            "to_due_at": moved.due_at,
            "by_subject": by.subject,
            "by_role": by.role,
            "at": now,
        },
        changes=waiting_again(rules, moved),
        announcement=announce.scheduled(moved, rescheduled=True, by=by),
    )


def revise_cadence(follow_up: FollowUp, anchor: datetime, every_days: float) -> datetime | None:
    """The new due time of the open cadence follow-up after a plan revision, or None to leave it.

    Only a first attempt still waiting is moved, and only when the cadence changed: a revision for
    another reason must not push the next contact further out, and a retry or a follow-up already
    due keeps its time.
    """
    if follow_up.status != "scheduled" or follow_up.attempt != 1:
        return None
    if follow_up.every_days == every_days:
        return None
    due_at = next_cadence_due(anchor, every_days)
    return None if due_at == follow_up.due_at else due_at


@dataclass(frozen=True)
class CadenceRevision:
    """What a plan revision does to the patient's one open cadence follow-up."""

    changes: dict[str, Any]
    announcements: tuple[Announcement, ...]


def revise_for_plan(
    rules: FollowUpRules,
    current: FollowUp,
    *,
    plan_id: uuid.UUID,
    priority: str,
    every_days: float,
    channel: str | None = None,
) -> CadenceRevision:
    """Update the open cadence follow-up instead of piling up another; announce it when one still waiting
    moves, changes priority or is to reach the patient another way."""
    anchor = current.cadence_anchor_at or current.created_at
    assert anchor is not None  # every stored follow-up has a creation time
    changes: dict[str, Any] = {
        "plan_id": plan_id,
        "priority": priority,
        "every_days": every_days,
        "channel": channel,
    }
    moved_to = revise_cadence(current, anchor, every_days)
    revised = replace(current, plan_id=plan_id, priority=priority, every_days=every_days, channel=channel)
    if moved_to is not None:
        revised = replace(revised, due_at=moved_to, due_point=current.due_point + 1)
        changes |= {"due_at": revised.due_at, "due_point": revised.due_point}
    if moved_to is not None or current.status == "scheduled":
        changes["overdue_at"] = rules.overdue_at(revised.due_at, priority)
    changed = moved_to is not None or priority != current.priority or channel != current.channel
    if current.status == "scheduled" and changed:
        return CadenceRevision(changes, (announce.revised(revised),))
    return CadenceRevision(changes, ())
