"""followup's use cases."""

from __future__ import annotations

from datetime import datetime

from careloop_shared.contracts import FollowUpDue, PlanUpdated, ReferralMade, RiskLevel
from careloop_shared.events import ReceivedEvent
from careloop_shared.outbox import UnitOfWork
from followup import store
from followup.domain.schedule import due_event_id, next_cadence_due


async def when_plan_updated_schedule_follow_up(uow: UnitOfWork, received: ReceivedEvent) -> None:
    plan = received.event
    assert isinstance(plan, PlanUpdated)
    at = received.envelope.time
    await store.schedule_plan_cadence(
        uow.conn,
        patient_id=plan.patient_id,
        agency_id=plan.agency_id,
        plan_id=plan.plan_id,
        priority=plan.follow_up.priority.value,
        due_at=next_cadence_due(at, plan.follow_up.every_days),
        at=at,
    )


async def when_referral_made_schedule_check_in(uow: UnitOfWork, received: ReceivedEvent) -> None:
    referral = received.event
    assert isinstance(referral, ReferralMade)
    await store.schedule_referral_check_in(
        uow.conn,
        patient_id=referral.patient_id,
        agency_id=referral.agency_id,
        referral_id=referral.referral_id,
        priority=RiskLevel.moderate.value,
        due_at=referral.response_due_at,
        at=received.envelope.time,
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
            event_id=due_event_id(row["id"], row["due_at"]),
            time=now,
        )
    return len(rows)
