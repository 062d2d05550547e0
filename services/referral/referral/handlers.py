"""referral's use cases."""

from __future__ import annotations

import uuid
from datetime import timedelta

from careloop_shared.contracts import PlanUpdated, ReferralMade
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import get_logger
from careloop_shared.outbox import UnitOfWork
from referral import store
from referral.domain.matching import Directory, best_program

log = get_logger(__name__)


async def when_plan_updated_make_referrals(
    directory: Directory, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    plan = received.event
    assert isinstance(plan, PlanUpdated)
    made_at = received.envelope.time
    for intervention in plan.interventions:
        if not intervention.needs_referral:
            continue
        program = best_program(directory, intervention.program_category)
        if program is None:
            log.warning("no program for category", category=intervention.program_category)
            continue
        made = ReferralMade(
            patient_id=plan.patient_id,
            agency_id=plan.agency_id,
            referral_id=uuid.uuid4(),
            plan_id=plan.plan_id,
            intervention_id=intervention.id,
            need=intervention.need,
            program_id=program.id,
            receiving_agency_id=program.agency_id,
            status="requested",
            response_due_at=made_at + timedelta(days=directory.response_deadline_days),
        )
        if await store.insert_referral_once(uow.conn, made, created_at=made_at):
            uow.emit(made, caused_by=received)
