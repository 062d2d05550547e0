"""followup's use cases: one function each. Time comes from the injected clock, never the wall."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.contracts import (
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    GoalProgress,
    PlanUpdated,
    ReassessmentRequested,
    ReferralMade,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import SafeMessageError
from careloop_shared.outbox import UnitOfWork
from followup import store
from followup.domain import follow_up as rules_of
from followup.domain.follow_up import FollowUp, InvalidInput, NotOutstanding, Outcome
from followup.domain.rules import FollowUpRules
from followup.domain.schedule import Clock, due_event_id, event_id, next_cadence_due
from followup.schemas import OutcomeIn, RescheduleIn

__all__ = ["FollowUpNotFound", "InvalidInput", "NotOutstanding"]

PLAN_CADENCE = "plan-cadence"
REFERRAL_CHECK_IN = "referral-check-in"
SERVICE_CHECK_IN = "referral-outcome-check-in"


class FollowUpNotFound(SafeMessageError):
    """No such follow-up in the caller's agency (another agency's follow-up looks the same)."""


def _scheduled_event(row: Any, *, rescheduled: bool) -> FollowUpScheduled:
    return FollowUpScheduled(
        patient_id=row["patient_id"],
        agency_id=row["agency_id"],
        follow_up_id=row["id"],
        reason=row["reason"],
        due_at=row["due_at"],
        priority=RiskLevel(row["priority"]),
        rescheduled=rescheduled,
    )


async def _schedule(
    uow: UnitOfWork,
    rules: FollowUpRules,
    row: dict[str, Any],
    now: datetime,
    caused_by: ReceivedEvent | None = None,
) -> bool:
    row = {**row, "id": uuid.uuid4(), "overdue_at": rules.overdue_at(row["due_at"], row["priority"])}
    if not await store.insert_follow_up(uow.conn, row, now):
        return False
    uow.emit(
        _scheduled_event(row, rescheduled=False),
        caused_by=caused_by,
        event_id=event_id("scheduled", row["id"]),
        time=now,
    )
    return True


async def when_plan_updated_schedule_follow_up(
    rules: FollowUpRules, clock: Clock, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    plan = received.event
    assert isinstance(plan, PlanUpdated)
    now, revised_at = clock(), received.envelope.time
    known = await store.get_plan(uow.conn, plan.patient_id)
    if known is not None and known["plan_id"] == plan.plan_id and known["version"] >= plan.version:
        return  # this version, or a later one, was already applied
    every_days = rules.cadence_days(plan.follow_up.every_days, plan.risk_level.value)
    priority = plan.follow_up.priority.value
    await store.save_plan(
        uow.conn,
        {
            "patient_id": plan.patient_id,
            "agency_id": plan.agency_id,
            "plan_id": plan.plan_id,
            "version": plan.version,
            "status": plan.status,
            "risk_level": plan.risk_level.value,
            "priority": priority,
            "every_days": every_days,
            "goal_ids": [g.id for g in plan.goals],
            "updated_at": revised_at,
        },
    )
    if plan.status in rules.plan_statuses_ending_follow_up:
        await store.cancel_open(uow.conn, now, patient_id=plan.patient_id, reason=PLAN_CADENCE)
        return
    current = await store.open_cadence(uow.conn, plan.patient_id)
    if current is None:
        await _schedule(
            uow,
            rules,
            {
                "patient_id": plan.patient_id,
                "agency_id": plan.agency_id,
                "reason": PLAN_CADENCE,
                "plan_id": plan.plan_id,
                "priority": priority,
                "due_at": next_cadence_due(revised_at, every_days),
                "every_days": every_days,
                "cadence_anchor_at": revised_at,
            },
            now,
            received,
        )
        return
    # A revision updates the one open cadence follow-up instead of piling up another.
    changes: dict[str, Any] = {"plan_id": plan.plan_id, "priority": priority, "every_days": every_days}
    moved_to = rules_of.revise_cadence(
        FollowUp.from_row(current), current["cadence_anchor_at"] or current["created_at"], every_days
    )
    if moved_to is not None:
        changes |= {"due_at": moved_to, "due_point": current["due_point"] + 1}
    if moved_to is not None or current["status"] == "scheduled":
        changes["overdue_at"] = rules.overdue_at(moved_to or current["due_at"], priority)
    row = await store.update_follow_up(uow.conn, current["id"], changes, now)
    if current["status"] == "scheduled" and (moved_to is not None or priority != current["priority"]):
        # The inbox applies this revision once, so a fresh event id is safe here.
        uow.emit(_scheduled_event(row, rescheduled=True), caused_by=received, time=now)


async def _priority_for(conn: asyncpg.Connection, rules: FollowUpRules, patient_id: uuid.UUID) -> str:
    plan = await store.get_plan(conn, patient_id)
    return str(plan["priority"]) if plan else rules.referral_check_in_default_priority


async def when_referral_made_schedule_check_in(
    rules: FollowUpRules, clock: Clock, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    referral = received.event
    assert isinstance(referral, ReferralMade)
    now = clock()
    if referral.replaces_referral_id is not None:
        await store.cancel_open(
            uow.conn, now, referral_id=referral.replaces_referral_id, reason=REFERRAL_CHECK_IN
        )
    await _schedule(
        uow,
        rules,
        {
            "patient_id": referral.patient_id,
            "agency_id": referral.agency_id,
            "reason": REFERRAL_CHECK_IN,
            "plan_id": referral.plan_id,
            "referral_id": referral.referral_id,
            "priority": await _priority_for(uow.conn, rules, referral.patient_id),
            "due_at": rules.referral_check_in_due(referral.response_due_at),
        },
        now,
        received,
    )


async def when_referral_status_changed(
    rules: FollowUpRules, clock: Clock, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    change = received.event
    assert isinstance(change, ReferralStatusChanged)
    now = clock()
    if change.to_status in rules.referral_statuses_ending_check_in:
        # Only a check-in still waiting is dropped; one already due stays on the care manager's list.
        await store.cancel_open(
            uow.conn, now, referral_id=change.referral_id, reason=REFERRAL_CHECK_IN, statuses=("scheduled",)
        )
    if change.to_status != "completed":
        return
    await _schedule(
        uow,
        rules,
        {
            "patient_id": change.patient_id,
            "agency_id": change.agency_id,
            "reason": SERVICE_CHECK_IN,
            "plan_id": change.plan_id,
            "referral_id": change.referral_id,
            "priority": await _priority_for(uow.conn, rules, change.patient_id),
            "due_at": rules.service_check_in_due(change.changed_at),
        },
        now,
        received,
    )


async def fire_due_follow_ups(uow: UnitOfWork, now: datetime, limit: int = 500) -> int:
    """Emit FollowUpDue once per due point: the status change and the event commit together."""
    rows = await store.claim_due(uow.conn, now, limit)
    for row in rows:
        uow.emit(
            FollowUpDue(
                patient_id=row["patient_id"],
                agency_id=row["agency_id"],
                follow_up_id=row["id"],
                reason=row["reason"],
                due_at=row["due_at"],
                priority=RiskLevel(row["priority"]),
                referral_id=row["referral_id"],
            ),
            event_id=due_event_id(row["id"], row["due_at"], row["due_point"]),
            time=now,
        )
    return len(rows)


async def fire_overdue_follow_ups(uow: UnitOfWork, now: datetime, limit: int = 500) -> int:
    """Emit FollowUpOverdue once per due point whose grace period passed without an outcome."""
    rows = await store.claim_overdue(uow.conn, now, limit)
    for row in rows:
        uow.emit(
            FollowUpOverdue(
                patient_id=row["patient_id"],
                agency_id=row["agency_id"],
                follow_up_id=row["id"],
                due_at=row["due_at"],
                overdue_since=row["overdue_since"],
                priority=RiskLevel(row["priority"]),
            ),
            event_id=event_id("overdue", row["id"], row["due_point"]),
            time=now,
        )
    return len(rows)


async def _locked(uow: UnitOfWork, agency_id: str, follow_up_id: uuid.UUID) -> asyncpg.Record:
    row = await store.get_follow_up(uow.conn, agency_id, follow_up_id, lock=True)
    if row is None:
        raise FollowUpNotFound("follow-up not found")
    return row


async def record_outcome(
    uow: UnitOfWork,
    rules: FollowUpRules,
    now: datetime,
    agency_id: str,
    recorded_by: str,
    follow_up_id: uuid.UUID,
    cmd: OutcomeIn,
) -> dict[str, Any]:
    """Record one contact attempt; complete, retry, recur and ask for a reassessment as the rules say."""
    row = await _locked(uow, agency_id, follow_up_id)
    outcome = Outcome(
        reached=cmd.reached,
        goal_progress=[(g.goal_id, g.progress) for g in cmd.goal_progress],
        barriers=cmd.barriers,
        next_step=cmd.next_step,
    )
    plan = await store.get_plan(uow.conn, row["patient_id"])
    problems = rules_of.outcome_problems(rules, outcome, frozenset(plan["goal_ids"]) if plan else None)
    if problems:
        raise InvalidInput(problems)
    follow_up = FollowUp.from_row(row)
    decision = rules_of.record_outcome(rules, follow_up, outcome, now)
    await store.insert_outcome(
        uow.conn,
        {
            "follow_up_id": follow_up.id,
            "attempt": decision.attempt,
            "reached": cmd.reached,
            "goal_progress": [g.model_dump(mode="json") for g in cmd.goal_progress],
            "barriers": list(cmd.barriers),
            "next_step": cmd.next_step,
            "note": cmd.note,  # free text about the patient: here only, never in an event or a log
            "recorded_by": recorded_by,
            "recorded_at": now,
        },
    )
    patient, agency = row["patient_id"], row["agency_id"]
    uow.emit(
        FollowUpCompleted(
            patient_id=patient,
            agency_id=agency,
            follow_up_id=follow_up.id,
            reached=cmd.reached,
            attempt=decision.attempt,
            goal_progress=[GoalProgress(goal_id=g, progress=p) for g, p in outcome.goal_progress],
            barriers=list(cmd.barriers),
            next_step=cmd.next_step,
            referral_id=row["referral_id"],
            completed_at=now,
        ),
        event_id=event_id("completed", follow_up.id, decision.attempt),
        time=now,
    )
    next_id: uuid.UUID | None = None
    if decision.retry_due_at is not None:
        updated = await store.update_follow_up(
            uow.conn,
            follow_up.id,
            {
                "status": "scheduled",
                "attempt": follow_up.attempt + 1,
                "due_at": decision.retry_due_at,
                "due_point": follow_up.due_point + 1,
                "overdue_at": rules.overdue_at(decision.retry_due_at, follow_up.priority),
                "overdue_since": None,
            },
            now,
        )
        uow.emit(
            _scheduled_event(updated, rescheduled=True),
            event_id=event_id("scheduled", follow_up.id, updated["due_point"]),
            time=now,
        )
        return {
            "follow_up": dict(updated),
            "attempt": decision.attempt,
            "reassessment": None,
            "next_follow_up_id": None,
        }

    updated = await store.update_follow_up(
        uow.conn,
        follow_up.id,
        {"status": "completed", "completed_at": now, "reassessment": decision.reassessment},
        now,
    )
    if decision.reassessment is not None:
        uow.emit(
            ReassessmentRequested(
                patient_id=patient,
                agency_id=agency,
                follow_up_id=follow_up.id,
                reason=decision.reassessment,
                requested_at=now,
            ),
            event_id=event_id("reassessment", follow_up.id),
            time=now,
        )
    plan_goes_on = plan is None or plan["status"] not in rules.plan_statuses_ending_follow_up
    if decision.next_cadence_due_at is not None and plan_goes_on:
        # Recurrence: the next contact counts from this one.
        next_id = await _schedule_next(
            uow,
            rules,
            {
                "patient_id": patient,
                "agency_id": agency,
                "reason": PLAN_CADENCE,
                "plan_id": row["plan_id"],
                "priority": follow_up.priority,
                "due_at": decision.next_cadence_due_at,
                "every_days": follow_up.every_days,
                "cadence_anchor_at": now,
            },
            now,
        )
    return {
        "follow_up": dict(updated),
        "attempt": decision.attempt,
        "reassessment": decision.reassessment,
        "next_follow_up_id": next_id,
    }


async def _schedule_next(
    uow: UnitOfWork, rules: FollowUpRules, row: dict[str, Any], now: datetime
) -> uuid.UUID | None:
    await _schedule(uow, rules, row, now)
    nxt = await store.open_cadence(uow.conn, row["patient_id"])
    return nxt["id"] if nxt else None


async def reschedule_follow_up(
    uow: UnitOfWork,
    rules: FollowUpRules,
    now: datetime,
    agency_id: str,
    by_subject: str,
    follow_up_id: uuid.UUID,
    cmd: RescheduleIn,
) -> dict[str, Any]:
    row = await _locked(uow, agency_id, follow_up_id)
    follow_up = FollowUp.from_row(row)
    rules_of.check_reschedule(rules, follow_up, cmd.reason, cmd.due_at, now)
    due_point = follow_up.due_point + 1
    await store.insert_reschedule(
        uow.conn,
        {
            "follow_up_id": follow_up.id,
            "due_point": due_point,
            "reason": cmd.reason,
            "from_due_at": follow_up.due_at,
            "to_due_at": cmd.due_at,
            "by_subject": by_subject,
            "at": now,
        },
    )
    updated = await store.update_follow_up(
        uow.conn,
        follow_up.id,
        {
            "status": "scheduled",
            "due_at": cmd.due_at,
            "due_point": due_point,
            "overdue_at": rules.overdue_at(cmd.due_at, follow_up.priority),
            "overdue_since": None,
        },
        now,
    )
    uow.emit(
        _scheduled_event(updated, rescheduled=True),
        event_id=event_id("scheduled", follow_up.id, due_point),
        time=now,
    )
    return dict(updated)
