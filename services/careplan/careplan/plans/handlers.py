"""The plans wing's use cases: plans revised on events, and status changes.

Every change of a plan goes through ``revision`` and makes a new version announced with PlanUpdated.
"""

from __future__ import annotations

from careloop_shared.coalesce import each_side_by_side
from careloop_shared.consumer import batch_handler, refusing
from careloop_shared.contracts import (
    FollowUpCompleted,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    ReferralStatusChanged,
)
from careloop_shared.errors import Conflict
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import get_logger
from careplan.config import CareplanContext
from careplan.domain.commands import ChangePlanStatus, MoveGoal, MoveIntervention
from careplan.domain.plan import AssessedNeed, Assessment, PlanState
from careplan.domain.versions import (
    CLOSED_PLANS,
    ClosedPlan,
    apply_goal_progress,
    apply_referral_status,
    change_status,
    move_goal,
    move_intervention,
    plan_status_after_progress,
)
from careplan.plans.revision import Change, plan_to_change, revise, save
from careplan.store import Uow

log = get_logger(__name__)


class ForeignAgencyAssessment(Conflict):
    """An assessment names an agency other than the one whose patient the plan belongs to."""

    def __init__(self) -> None:
        super().__init__("assessment from another agency than the plan's")


# ---- reactions to events ----------------------------------------------------------------------------


@batch_handler
async def when_patient_assessed_revise_plan(
    ctx: CareplanContext, uow: Uow, batch: list[ReceivedEvent]
) -> None:
    """Revise each assessed patient's plan; a batch opens and locks its plans in two statements."""
    assessed = [r.event for r in batch if isinstance(r.event, PatientAssessed)]
    assert len(assessed) == len(batch)
    # The first assessment opens a (draft) plan; later ones find it. Either way it is locked.
    await uow.store.plans.open_plans({e.patient_id: (e.agency_id, e.assessed_at) for e in assessed})
    plans = await uow.store.plans.lock_plans([e.patient_id for e in assessed])

    async def revise_one(item: tuple[ReceivedEvent, PatientAssessed]) -> None:
        received, event = item
        await _revise_for_assessment(ctx, uow, plans[event.patient_id], event, received)

    # Different patients' revisions at once, their new versions stored in one statement.
    items = list(zip(batch, assessed, strict=True))
    await each_side_by_side(uow.store.plans, items, revise_one, key=lambda item: item[1].patient_id)


async def _revise_for_assessment(
    ctx: CareplanContext, uow: Uow, plan: PlanState, assessed: PatientAssessed, received: ReceivedEvent
) -> None:
    if plan.agency_id != assessed.agency_id:
        raise refusing(received, ForeignAgencyAssessment())
    group = ctx.library.group_of(assessed.instrument)
    previous = plan.assessments.get(group)
    if previous is not None and previous.assessed_at > assessed.assessed_at:
        return  # an older result of the same kind arrived late: the newer one stands
    plan.assessments = {
        **plan.assessments,
        group: Assessment(
            instrument=assessed.instrument,
            assessment_id=assessed.assessment_id,
            needs=[AssessedNeed(code=n.code, severity=n.severity) for n in assessed.needs],
            risk_level=assessed.risk_level,
            urgent_flags=list(assessed.urgent_flags),
            assessed_at=assessed.assessed_at,
        ),
    }
    change = Change(f"assessment:{assessed.instrument}", "system", assessed.assessed_at, received)
    status = plan.status if plan.status == "on-hold" else "active"
    await revise(ctx, uow, plan, change, status=status, based_on_assessment=assessed.assessment_id)


async def when_patient_details_change_personalise_plan(
    ctx: CareplanContext, uow: Uow, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, PatientRegistered | PatientUpdated)
    at = received.envelope.time
    contact = event.contact_preference.value if event.contact_preference else None
    safe = None if event.safe_channels is None else [c.value for c in event.safe_channels]
    await uow.store.plans.upsert_patient(
        event.patient_id, event.agency_id, event.preferred_language, contact, safe, at
    )
    plan = await uow.store.plans.lock_plan(event.patient_id)
    if plan is None or plan.version == 0 or plan.status in CLOSED_PLANS:
        return
    await revise(ctx, uow, plan, Change("preferences-changed", "system", at, received))


async def when_referral_status_changes_track_intervention(
    ctx: CareplanContext, uow: Uow, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, ReferralStatusChanged)
    plan = await uow.store.plans.lock_plan(event.patient_id)
    if plan is None or plan.document is None:
        log.warning("referral status for a patient without a plan", referral_id=str(event.referral_id))
        return
    delivered = event.outcome.service_delivered if event.outcome is not None else None
    document = apply_referral_status(
        plan.document, event.intervention_id, event.to_status, event.reason, delivered=delivered
    )
    if document is not None:
        await save(uow, plan, document, plan.status, Change("progress", "system", event.changed_at, received))


async def when_follow_up_completed_record_progress(
    ctx: CareplanContext, uow: Uow, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, FollowUpCompleted)
    plan = await uow.store.plans.lock_plan(event.patient_id)
    if plan is None or plan.document is None:
        return
    document = plan.document
    for progress in event.goal_progress:
        document = apply_goal_progress(document, progress.goal_id, progress.progress) or document
    status = plan_status_after_progress(document, plan.status)
    await save(uow, plan, document, status, Change("progress", "system", event.completed_at, received))


# ---- care managers' commands ------------------------------------------------------------------------


async def change_plan_status(ctx: CareplanContext, uow: Uow, cmd: ChangePlanStatus) -> int:
    """Move the plan along its lifecycle; returns the plan's version after."""
    plan = await plan_to_change(uow, cmd.agency_id, cmd.patient_id, cmd.expected_version)
    new_status = change_status(plan.status, cmd.status)
    return await save(uow, plan, plan.drafted, new_status, Change.by(cmd, "status-change", ctx.clock()))


async def move_intervention_by_hand(ctx: CareplanContext, uow: Uow, cmd: MoveIntervention) -> int:
    """Move an intervention along its activity status; returns the plan's version after."""
    plan = await _open_plan_to_change(uow, cmd)
    document = move_intervention(plan.drafted, cmd.intervention_id, cmd.status)
    return await save(uow, plan, document, plan.status, Change.by(cmd, "progress", ctx.clock()))


async def move_goal_by_hand(ctx: CareplanContext, uow: Uow, cmd: MoveGoal) -> int:
    """Say where a goal stands; a plan whose goals are all completed is completed with them."""
    plan = await _open_plan_to_change(uow, cmd)
    document = move_goal(plan.drafted, cmd.goal_id, cmd.lifecycle_status, cmd.achievement_status)
    status = plan_status_after_progress(document, plan.status)
    return await save(uow, plan, document, status, Change.by(cmd, "progress", ctx.clock()))


async def _open_plan_to_change(uow: Uow, cmd: MoveIntervention | MoveGoal) -> PlanState:
    """The plan an item of is moved by hand, locked; ``ClosedPlan`` for a completed or revoked one."""
    plan = await plan_to_change(uow, cmd.agency_id, cmd.patient_id, cmd.expected_version)
    if plan.status in CLOSED_PLANS:
        raise ClosedPlan(plan.status)
    return plan
