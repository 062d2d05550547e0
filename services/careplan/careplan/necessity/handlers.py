"""The medical-necessity wing's use cases: a requested service is checked against its criteria and
joins the plan, or alternatives are proposed and the care team chooses one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from careloop_shared.contracts import PlanAlternativesProposed
from careloop_shared.errors import Conflict, NotFound
from careloop_shared.ids import new_id
from careplan.config import CareplanContext
from careplan.domain.commands import ChooseAlternative, RequestService
from careplan.domain.necessity import Decision, decide
from careplan.domain.plan import PlanState
from careplan.plans.revision import Change, plan_to_change, revise
from careplan.store import Uow


class ServiceRequestNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("service request not found")


class NoOpenAlternatives(Conflict):
    """The request met its criteria, or an alternative was chosen already."""

    def __init__(self) -> None:
        super().__init__("this request has no open alternatives")


class NotAnAlternative(Conflict):
    def __init__(self) -> None:
        super().__init__("not one of the alternatives proposed for this request")


@dataclass(frozen=True)
class ServiceRequested:
    """What became of a service request, and the plan's version after."""

    request_id: uuid.UUID
    decision: Decision
    plan_version: int


async def request_service(ctx: CareplanContext, uow: Uow, cmd: RequestService) -> ServiceRequested:
    """Check a requested service against its necessity criteria; add it, or propose alternatives."""
    plan = await plan_to_change(uow, cmd.agency_id, cmd.patient_id, cmd.expected_version)
    decision = decide(ctx.criteria, cmd.service_code, plan.drafted)
    request_id, at = new_id(), ctx.clock()
    await uow.store.necessity.insert_service_request(
        {
            "id": request_id,
            "patient_id": cmd.patient_id,
            "agency_id": cmd.agency_id,
            "plan_id": plan.plan_id,
            "service_code": cmd.service_code,
            "met": decision.met,
            "failed_criteria": decision.failed_criteria,
            "alternatives": decision.alternatives,
            "criteria_version": decision.criteria_version,
            "requested_by": cmd.by_role,
            "requested_by_subject": cmd.by,
            "created_at": at,
        }
    )
    if decision.met:
        version = await _add_service(ctx, uow, plan, cmd.service_code, Change.by(cmd, "service-request", at))
        return ServiceRequested(request_id, decision, version)
    uow.emit(
        PlanAlternativesProposed(
            patient_id=cmd.patient_id,
            agency_id=cmd.agency_id,
            plan_id=plan.plan_id,
            service_request_id=request_id,
            service_code=cmd.service_code,
            failed_criteria=decision.failed_criteria,
            alternatives=decision.alternatives,
            actor_id=cmd.by,
            actor_role=cmd.by_role,
        )
    )
    return ServiceRequested(request_id, decision, plan.version)


async def choose_alternative(ctx: CareplanContext, uow: Uow, cmd: ChooseAlternative) -> int:
    """The care team takes one of the alternatives proposed; it joins the plan."""
    plan = await plan_to_change(uow, cmd.agency_id, cmd.patient_id, cmd.expected_version)
    request = await uow.store.necessity.get_service_request(
        cmd.agency_id, cmd.patient_id, cmd.request_id, lock=True
    )
    if request is None:
        raise ServiceRequestNotFound()
    if request["met"] or request["chosen_alternative"] is not None:
        raise NoOpenAlternatives()
    if cmd.alternative not in request["alternatives"]:
        raise NotAnAlternative()
    at = ctx.clock()
    await uow.store.necessity.choose_alternative(cmd.request_id, cmd.alternative, at, cmd.by, cmd.by_role)
    return await _add_service(ctx, uow, plan, cmd.alternative, Change.by(cmd, "alternative-chosen", at))


async def _add_service(
    ctx: CareplanContext, uow: Uow, plan: PlanState, service_code: str, change: Change
) -> int:
    plan.services = list(dict.fromkeys([*plan.services, service_code]))
    return await revise(ctx, uow, plan, change)
