"""followup's use cases: one function each, ``(context, unit of work, message)``.

Scheduling follows the events followup consumes; the periodic step turns follow-ups due and overdue;
care managers record outcomes and reschedule. Each asks the domain for a decision and applies it, and
hands what it announced to the task list in the same unit of work (``track_own``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from careloop_shared.contracts import PatientErased, PlanUpdated, ReferralMade, ReferralStatusChanged
from careloop_shared.errors import NotFound
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import get_logger
from careloop_shared.patient_keys import Erased
from followup.config import FollowupContext
from followup.domain import announcements as announce
from followup.domain import arranged
from followup.domain.commands import RecordOutcome, RescheduleFollowUp
from followup.domain.erasure import ErasedPatient, refuse_note_if_erased
from followup.domain.follow_up import (
    PLAN_CADENCE,
    REFERRAL_CHECK_IN,
    SERVICE_CHECK_IN,
    Actor,
    FollowUp,
    Plan,
)
from followup.domain.outcomes import record_outcome as decide_outcome
from followup.domain.scheduling import cadence_follow_up, new_follow_up, reschedule, revise_for_plan
from followup.notes import seal_note
from followup.store import Uow
from followup.tasks.handlers import (
    announce_all,
    close_tasks_of_cancelled_follow_ups,
    track_own,
    when_event_track_tasks,
)

log = get_logger(__name__)


class FollowUpNotFound(NotFound):
    """No such follow-up in the caller's agency (another agency's follow-up looks the same)."""

    def __init__(self) -> None:
        super().__init__("follow-up not found")


async def _schedule(
    uow: Uow,
    row: dict[str, Any],
    now: datetime,
    caused_by: ReceivedEvent | None = None,
    by: Actor | None = None,
) -> bool:
    """Insert a new follow-up and announce it (``by`` the person whose command scheduled it, if one
    did); nothing when an equivalent one exists already."""
    if not await uow.store.insert_follow_up(row):
        return False
    announce_all(uow, [announce.scheduled(FollowUp.from_row(row), by=by)], now, caused_by)
    return True


async def _schedule_check_in(
    ctx: FollowupContext, uow: Uow, received: ReceivedEvent, reason: str, due_at: datetime, now: datetime
) -> None:
    """A check-in on a referral, at the priority of the patient's plan when followup knows it."""
    referral = received.event
    assert isinstance(referral, ReferralMade | ReferralStatusChanged)
    plan = await uow.store.get_plan(referral.patient_id)
    check_in = new_follow_up(
        ctx.rules,
        now,
        patient_id=referral.patient_id,
        agency_id=referral.agency_id,
        reason=reason,
        plan_id=referral.plan_id,
        referral_id=referral.referral_id,
        priority=str(plan["priority"]) if plan else ctx.rules.referral_check_in.default_priority,
        due_at=due_at,
        channel=plan["channel"] if plan else None,
    )
    await _schedule(uow, check_in, now, received)


async def when_plan_updated_schedule_follow_up(
    ctx: FollowupContext, uow: Uow, received: ReceivedEvent
) -> None:
    """Keep one open cadence follow-up per patient in step with the plan's cadence and priority."""
    plan = received.event
    assert isinstance(plan, PlanUpdated)
    rules, now, revised_at = ctx.rules, ctx.clock(), received.envelope.time
    every_days = rules.cadence_days(plan.follow_up.every_days, plan.risk_level.value)
    priority, channel = plan.follow_up.priority.value, plan.follow_up.channel
    saved = await uow.store.save_plan(
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
            "open_needs": sorted({g.need for g in plan.goals if g.lifecycle_status != "completed"}),
            "channel": channel,
            "updated_at": revised_at,
        }
    )
    if not saved:
        return  # this version, or a later one, was already applied
    await when_event_track_tasks(ctx, uow, received)
    if rules.ends_follow_up(plan.status):
        cancelled = await uow.store.cancel_open(now, patient_id=plan.patient_id, reason=PLAN_CADENCE)
        await close_tasks_of_cancelled_follow_ups(ctx, uow, cancelled, received)
        return
    open_now = await uow.store.open_follow_ups(plan.patient_id)
    current = next((f for f in open_now if f["reason"] == PLAN_CADENCE), None)
    if current is None:
        first = cadence_follow_up(
            rules,
            now,
            patient_id=plan.patient_id,
            agency_id=plan.agency_id,
            plan_id=plan.plan_id,
            priority=priority,
            every_days=every_days,
            anchor=revised_at,
            channel=channel,
        )
        await _schedule(uow, first, now, received)
    else:
        revision = revise_for_plan(
            rules,
            FollowUp.from_row(current),
            plan_id=plan.plan_id,
            priority=priority,
            every_days=every_days,
            channel=channel,
        )
        await uow.store.update_follow_up(current["id"], revision.changes, now)
        announce_all(uow, revision.announcements, now, received)
    # Check-ins reach the patient the same way (the cadence follow-up was given the channel above); an
    # update only when one of them is to change, which a patient's first plan seldom finds.
    # An arranged contact keeps its own channel while the plan still allows it.
    if stale := [
        f["id"]
        for f in open_now
        if f is not current
        and arranged.channel_after_plan(rules, f["reason"], f["channel"], channel) != f["channel"]
    ]:
        await uow.store.set_channel(stale, channel, now)


async def when_referral_made_schedule_check_in(
    ctx: FollowupContext, uow: Uow, received: ReceivedEvent
) -> None:
    """A check-in after the referral's response deadline; a re-routed referral's check-in is dropped."""
    referral = received.event
    assert isinstance(referral, ReferralMade)
    now = ctx.clock()
    await when_event_track_tasks(ctx, uow, received)
    if referral.replaces_referral_id is not None:
        cancelled = await uow.store.cancel_open(
            now, referral_id=referral.replaces_referral_id, reason=REFERRAL_CHECK_IN
        )
        await close_tasks_of_cancelled_follow_ups(ctx, uow, cancelled, received)
    due_at = ctx.rules.referral_check_in_due(referral.response_due_at)
    await _schedule_check_in(ctx, uow, received, REFERRAL_CHECK_IN, due_at, now)


async def when_referral_status_changed(ctx: FollowupContext, uow: Uow, received: ReceivedEvent) -> None:
    """An answered referral needs no check-in; a completed one gets a check-in on the service."""
    change = received.event
    assert isinstance(change, ReferralStatusChanged)
    now = ctx.clock()
    await when_event_track_tasks(ctx, uow, received)
    if change.to_status in ctx.rules.referral_statuses_ending_check_in:
        # Only a check-in still waiting is dropped; one already due stays on the care manager's list.
        await uow.store.cancel_open(
            now, referral_id=change.referral_id, reason=REFERRAL_CHECK_IN, statuses=("scheduled",)
        )
    if change.to_status != "completed":
        return
    due_at = ctx.rules.service_check_in_due(change.changed_at)
    await _schedule_check_in(ctx, uow, received, SERVICE_CHECK_IN, due_at, now)


async def when_patient_erased_blank_notes(ctx: FollowupContext, uow: Uow, received: ReceivedEvent) -> None:
    """intake erased the patient: their outcomes' notes are blanked (sealed ones too, though their key
    is gone), their key is no longer held, and no new note is kept. Codes, ids and times stay: the
    pseudonymous case goes on."""
    erased = received.event
    assert isinstance(erased, PatientErased)
    blanked = await uow.store.erase_patient(erased.patient_id, erased.agency_id, erased.erased_at)
    ctx.keys.forget(erased.patient_id)
    if blanked:
        log.info("an erased patient's notes were blanked", notes=blanked)


async def fire_due_and_overdue_follow_ups(ctx: FollowupContext, uow: Uow) -> bool:
    """Periodic: FollowUpDue once per due point, for the patient's care manager, with its task;
    FollowUpOverdue once when its grace period passed, escalating the task.

    Each claim, its events and its tasks commit together, and replicas skip the rows another one is
    claiming. True when a full batch was claimed, so more may be waiting.
    """
    now = ctx.clock()
    due = await uow.store.claim_due(now, ctx.batch_size)
    overdue = await uow.store.claim_overdue(now, ctx.batch_size)
    managers = await uow.store.caseload.care_managers(list({r["patient_id"] for r in due}))
    announced = announce_all(
        uow, [announce.due(FollowUp.from_row(r), assignee_id=managers.get(r["patient_id"])) for r in due], now
    )
    await track_own(ctx, uow, announced, due_base={r["id"]: r["overdue_at"] for r in due})
    await track_own(
        ctx, uow, announce_all(uow, [announce.overdue(FollowUp.from_row(r)) for r in overdue], now)
    )
    if due or overdue:
        log.info("follow-ups fell due", due=len(due), overdue=len(overdue))
    return len(due) >= ctx.batch_size or len(overdue) >= ctx.batch_size


async def locked_follow_up(uow: Uow, agency_id: str, follow_up_id: uuid.UUID) -> Any:
    row = await uow.store.get_follow_up(agency_id, follow_up_id, lock=True)
    if row is None:
        raise FollowUpNotFound()
    return row


async def record_outcome(
    ctx: FollowupContext, uow: Uow, cmd: RecordOutcome, sealed_note: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Record one contact attempt; complete, retry, recur and ask for a reassessment as the rules say.

    The note is kept sealed only: ``sealed_note`` when the caller sealed it before the unit of work
    (``notes.seal_note_ahead``), else it is sealed here."""
    row = await locked_follow_up(uow, cmd.agency_id, cmd.follow_up_id)
    refuse_note_if_erased(cmd.note, await uow.store.erased_at(row["patient_id"]))
    if cmd.note is not None and sealed_note is None:
        try:
            sealed_note = await seal_note(ctx.keys, row, cmd.note)
        except Erased:
            raise ErasedPatient() from None  # intake erased them; followup has not heard yet
    plan = await uow.store.get_plan(row["patient_id"])
    now = ctx.clock()
    decision = decide_outcome(
        ctx.rules,
        FollowUp.from_row(row),
        cmd.outcome,
        now,
        by=cmd.actor,
        plan=Plan.from_row(plan) if plan is not None else None,
    )
    await uow.store.insert_outcome({**decision.outcome_row, "note": None, "note_sealed": sealed_note})
    updated = await uow.store.update_follow_up(row["id"], decision.changes, now)
    await track_own(ctx, uow, announce_all(uow, decision.announcements, now), by=cmd.actor)
    next_id = None
    if decision.next_follow_up is not None:
        if await _schedule(uow, decision.next_follow_up, now, by=cmd.actor):
            next_id = decision.next_follow_up["id"]
        elif (open_one := await uow.store.open_cadence(row["patient_id"])) is not None:
            next_id = open_one["id"]
    return {
        "follow_up": dict(updated),
        "attempt": decision.attempt,
        "reassessment": decision.reassessment,
        "next_follow_up_id": next_id,
    }


async def reschedule_follow_up(ctx: FollowupContext, uow: Uow, cmd: RescheduleFollowUp) -> dict[str, Any]:
    """Move an open follow-up to another time: a new due point, so it falls due again once."""
    row = await locked_follow_up(uow, cmd.agency_id, cmd.follow_up_id)
    now = ctx.clock()
    moved = reschedule(ctx.rules, FollowUp.from_row(row), cmd.reason, cmd.due_at, now, by=cmd.actor)
    await uow.store.insert_reschedule(moved.reschedule_row)
    updated = await uow.store.update_follow_up(row["id"], moved.changes, now)
    await track_own(ctx, uow, announce_all(uow, [moved.announcement], now), by=cmd.actor)
    return dict(updated)
