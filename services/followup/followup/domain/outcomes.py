"""What one contact attempt's outcome does: complete, retry, recur, ask for a reassessment. Pure: no I/O.

An outcome on a due or overdue follow-up completes it, or, when the patient was not reached and
attempts are left, schedules the next attempt of the same follow-up. ``record_outcome`` decides it
all at once: the attempt's record, the follow-up's changes, the events, the next cadence contact.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from followup.domain import announcements as announce
from followup.domain.announcements import Announcement
from followup.domain.follow_up import (
    OUTSTANDING,
    PLAN_CADENCE,
    Actor,
    FollowUp,
    InvalidInput,
    NotOutstanding,
    Outcome,
    Plan,
)
from followup.domain.rules import FollowUpRules
from followup.domain.scheduling import cadence_follow_up, in_body, waiting_again


def outcome_problems(
    rules: FollowUpRules, outcome: Outcome, plan_goal_ids: frozenset[uuid.UUID] | None
) -> list[dict[str, Any]]:
    """Codes the rules do not know and goals the patient's plan does not have."""
    problems: list[dict[str, Any]] = []
    seen: set[uuid.UUID] = set()
    for i, (goal_id, progress) in enumerate(outcome.goal_progress):
        if progress not in rules.progress:
            problems.append({"loc": in_body("goal_progress", i, "progress"), "msg": "unknown progress code"})
        if goal_id in seen:
            problems.append({"loc": in_body("goal_progress", i, "goal_id"), "msg": "goal listed twice"})
        elif plan_goal_ids is not None and goal_id not in plan_goal_ids:
            problems.append(
                {"loc": in_body("goal_progress", i, "goal_id"), "msg": "not a goal of the patient's plan"}
            )
        seen.add(goal_id)
    for i, barrier in enumerate(outcome.barriers):
        if barrier not in rules.barriers:
            problems.append({"loc": in_body("barriers", i), "msg": "unknown barrier code"})
    if len(set(outcome.barriers)) != len(outcome.barriers):
        problems.append({"loc": in_body("barriers"), "msg": "a barrier is listed twice"})
    if outcome.next_step is not None and outcome.next_step not in rules.next_steps:
        problems.append({"loc": in_body("next_step"), "msg": "unknown next step code"})
    if not outcome.reached and outcome.goal_progress:
        problems.append({"loc": in_body("goal_progress"), "msg": "progress needs the patient to be reached"})
    return problems


def _refuse_unless_outstanding(follow_up: FollowUp) -> None:
    if follow_up.status == "scheduled":
        raise NotOutstanding("follow-up is not due yet")
    if follow_up.status not in OUTSTANDING:
        raise NotOutstanding(f"follow-up is {follow_up.status}")


@dataclass(frozen=True)
class OutcomeDecision:
    """Everything that follows from one attempt's outcome."""

    attempt: int
    outcome_row: dict[str, Any]  # the attempt's record, note included
    changes: dict[str, Any]  # to the follow-up: the next attempt, or its completion
    announcements: tuple[Announcement, ...]
    reassessment: str | None = None  # not-reached or worsening
    next_follow_up: dict[str, Any] | None = None  # the next cadence contact to schedule

    @property
    def completes(self) -> bool:
        return bool(self.changes["status"] == "completed")

    @property
    def retry_due_at(self) -> datetime | None:
        return None if self.completes else self.changes["due_at"]

    @property
    def next_cadence_due_at(self) -> datetime | None:
        return None if self.next_follow_up is None else self.next_follow_up["due_at"]


def record_outcome(
    rules: FollowUpRules,
    follow_up: FollowUp,
    outcome: Outcome,
    now: datetime,
    *,
    by: Actor,
    plan: Plan | None = None,
) -> OutcomeDecision:
    """What an attempt's outcome does: complete, retry, recur, and whether to ask for a reassessment.

    Refuses input the rules or the plan do not know (InvalidInput) before a follow-up that is not due
    or overdue (NotOutstanding).
    """
    problems = outcome_problems(rules, outcome, plan.goal_ids if plan is not None else None)
    if problems:
        raise InvalidInput(problems)
    _refuse_unless_outstanding(follow_up)
    attempt = follow_up.attempt
    record = {
        "follow_up_id": follow_up.id,
        "attempt": attempt,
        "reached": outcome.reached,
        "goal_progress": [{"goal_id": str(g), "progress": p} for g, p in outcome.goal_progress],
        "barriers": list(outcome.barriers),
        "next_step": outcome.next_step,
        "note": outcome.note,
        "recorded_by": by.subject,
        "recorded_by_role": by.role,
        "recorded_at": now,
    }
    done = announce.completed(follow_up, outcome, now, by=by)

    if not outcome.reached and attempt < rules.not_reached.max_attempts:
        retry = replace(
            follow_up,
            status="scheduled",
            attempt=attempt + 1,
            due_at=now + rules.retry_delay(follow_up.priority),
            due_point=follow_up.due_point + 1,
        )
        return OutcomeDecision(
            attempt=attempt,
            outcome_row=record,
            changes=waiting_again(rules, retry) | {"attempt": retry.attempt},
            announcements=(done, announce.scheduled(retry, rescheduled=True, by=by)),
        )

    worsening = any(p in rules.reassess_when_progress for _, p in outcome.goal_progress)
    reassessment = "worsening" if worsening else None if outcome.reached else "not-reached"
    announcements = [done]
    if reassessment is not None:
        announcements.append(announce.reassessment_requested(follow_up, reassessment, now, by=by))
    next_follow_up = None
    plan_goes_on = plan is None or not rules.ends_follow_up(plan.status)
    if follow_up.reason == PLAN_CADENCE and follow_up.every_days and plan_goes_on:
        # Recurrence: the next contact counts from this one.
        next_follow_up = cadence_follow_up(
            rules,
            now,
            patient_id=follow_up.patient_id,
            agency_id=follow_up.agency_id,
            plan_id=follow_up.plan_id,
            priority=follow_up.priority,
            every_days=follow_up.every_days,
            anchor=now,
            channel=follow_up.channel,
        )
    return OutcomeDecision(
        attempt=attempt,
        outcome_row=record,
        changes={"status": "completed", "completed_at": now, "reassessment": reassessment},
        announcements=tuple(announcements),
        reassessment=reassessment,
        next_follow_up=next_follow_up,
    )
