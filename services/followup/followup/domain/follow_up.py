"""A follow-up's life: due, outcome recorded, retried, rescheduled, completed. Pure: no I/O.

``scheduled -> due -> overdue``; an outcome on a due or overdue follow-up completes it, or, when the
patient was not reached and attempts are left, schedules the next attempt of the same follow-up.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from followup.domain.rules import FollowUpRules
from followup.domain.schedule import next_cadence_due

OUTSTANDING = frozenset({"due", "overdue"})
OPEN = frozenset({"scheduled", "due", "overdue"})


class NotOutstanding(ValueError):
    """The follow-up is in a state that does not allow the change. The message names the state only."""


class InvalidInput(ValueError):
    """Input that does not fit the rules. Each problem names where and why, never the value."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(problems)} problem(s) with the input")
        self.problems = problems


@dataclass(frozen=True)
class FollowUp:
    id: uuid.UUID
    reason: str
    status: str
    priority: str
    due_at: datetime
    attempt: int
    due_point: int
    every_days: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FollowUp:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Outcome:
    reached: bool
    goal_progress: Sequence[tuple[uuid.UUID, str]] = ()
    barriers: Sequence[str] = ()
    next_step: str | None = None


@dataclass(frozen=True)
class OutcomeDecision:
    attempt: int
    completes: bool
    reassessment: str | None = None  # not-reached or worsening
    retry_due_at: datetime | None = None
    next_cadence_due_at: datetime | None = None


def _loc(*parts: str | int) -> list[str | int]:
    return ["body", *parts]


def outcome_problems(
    rules: FollowUpRules, outcome: Outcome, plan_goal_ids: frozenset[uuid.UUID] | None
) -> list[dict[str, Any]]:
    """Codes the rules do not know and goals the patient's plan does not have."""
    problems: list[dict[str, Any]] = []
    seen: set[uuid.UUID] = set()
    for i, (goal_id, progress) in enumerate(outcome.goal_progress):
        if progress not in rules.progress:
            problems.append({"loc": _loc("goal_progress", i, "progress"), "msg": "unknown progress code"})
        if goal_id in seen:
            problems.append({"loc": _loc("goal_progress", i, "goal_id"), "msg": "goal listed twice"})
        elif plan_goal_ids is not None and goal_id not in plan_goal_ids:
            problems.append(
                {"loc": _loc("goal_progress", i, "goal_id"), "msg": "not a goal of the patient's plan"}
            )
        seen.add(goal_id)
    for i, barrier in enumerate(outcome.barriers):
        if barrier not in rules.barriers:
            problems.append({"loc": _loc("barriers", i), "msg": "unknown barrier code"})
    if len(set(outcome.barriers)) != len(outcome.barriers):
        problems.append({"loc": _loc("barriers"), "msg": "a barrier is listed twice"})
    if outcome.next_step is not None and outcome.next_step not in rules.next_steps:
        problems.append({"loc": _loc("next_step"), "msg": "unknown next step code"})
    if not outcome.reached and outcome.goal_progress:
        problems.append({"loc": _loc("goal_progress"), "msg": "progress needs the patient to be reached"})
    return problems


def _refuse_unless_outstanding(follow_up: FollowUp) -> None:
    if follow_up.status == "scheduled":
        raise NotOutstanding("follow-up is not due yet")
    if follow_up.status not in OUTSTANDING:
        raise NotOutstanding(f"follow-up is {follow_up.status}")


def record_outcome(
    rules: FollowUpRules, follow_up: FollowUp, outcome: Outcome, now: datetime
) -> OutcomeDecision:
    """What an attempt's outcome does: complete, retry, and whether to ask for a reassessment."""
    _refuse_unless_outstanding(follow_up)
    worsening = any(p in rules.reassess_when_progress for _, p in outcome.goal_progress)
    if not outcome.reached and follow_up.attempt < rules.max_attempts:
        return OutcomeDecision(
            attempt=follow_up.attempt,
            completes=False,
            retry_due_at=now + rules.retry_delay(follow_up.priority),
        )
    reassessment = "worsening" if worsening else None if outcome.reached else "not-reached"
    next_due = None
    if follow_up.reason == "plan-cadence" and follow_up.every_days:
        next_due = next_cadence_due(now, follow_up.every_days)
    return OutcomeDecision(
        attempt=follow_up.attempt,
        completes=True,
        reassessment=reassessment,
        next_cadence_due_at=next_due,
    )


def check_reschedule(
    rules: FollowUpRules, follow_up: FollowUp, reason: str, due_at: datetime, now: datetime
) -> None:
    """Refuse a reschedule of a closed follow-up (NotOutstanding) or to an unusable time (InvalidInput)."""
    problems: list[dict[str, Any]] = []
    if reason not in rules.reschedule_reasons:
        problems.append({"loc": _loc("reason"), "msg": "unknown reschedule reason code"})
    if due_at <= now:
        problems.append({"loc": _loc("due_at"), "msg": "must be in the future"})
    elif due_at > now + timedelta(days=rules.max_reschedule_days):
        problems.append({"loc": _loc("due_at"), "msg": f"must be within {rules.max_reschedule_days:g} days"})
    if problems:
        raise InvalidInput(problems)
    if follow_up.status not in OPEN:
        raise NotOutstanding(f"follow-up is {follow_up.status}")


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
