"""The medical-necessity wing's HTTP routes: service requests and the choice of an alternative.

A necessity decision is clinical content (the criteria the patient's plan failed, the services it
may have instead): the list of requests and a new request's decision are audited first, one entry per
request shown (``what`` "service-request"). A choice answers with a version number only.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from careloop_shared.http import Audit, Commands, CurrentPrincipal, needs, read_store
from careplan.domain.commands import ChooseAlternative, RequestService
from careplan.necessity import handlers
from careplan.schemas import ChoiceIn, ServiceRequestIn, ServiceRequestOut, VersionRef
from careplan.store import CareplanStore

router = APIRouter(prefix="/v1/patients/{patient_id}")
Store = Annotated[CareplanStore, Depends(read_store)]


def _decision(requested: handlers.ServiceRequested) -> dict[str, Any]:
    decision = requested.decision
    return {
        "service_request_id": requested.request_id,
        "service_code": decision.service_code,
        "decision": "met" if decision.met else "not-met",
        "failed_criteria": decision.failed_criteria,
        "alternatives": decision.alternatives,
        "criteria_version": decision.criteria_version,
        "plan_version": requested.plan_version,
    }


@router.post(
    "/service-requests",
    tags=["medical necessity"],
    status_code=201,
    openapi_extra=needs("service-request:request"),
)
async def request_service(
    patient_id: uuid.UUID, body: ServiceRequestIn, who: CurrentPrincipal, commands: Commands, audit: Audit
) -> Any:
    """Answers with the necessity decision: met (the service joins the plan) or not met with alternatives."""
    command = RequestService(
        who.agency_id, who.subject, who.role, patient_id, body.service_code, body.expected_version
    )
    answer = await commands.run(handlers.request_service, command, status_code=201, respond=_decision)
    decided = json.loads(bytes(answer.body)).get("service_request_id")
    await audit.read(patient_id, "service-request", entity_id=decided)
    return answer


@router.get(
    "/service-requests",
    tags=["medical necessity"],
    response_model=list[ServiceRequestOut],
    openapi_extra=needs("service-request:read"),
)
async def service_requests(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit
) -> list[ServiceRequestOut]:
    """Every request with its decision, who made it and who chose an alternative."""
    requests = [
        ServiceRequestOut(**dict(r))
        for r in await store.necessity.service_requests(who.agency_id, patient_id)
    ]
    await audit.read_many([(patient_id, r.id) for r in requests], "service-request")
    return requests


@router.post(
    "/service-requests/{request_id}/choice",
    tags=["medical necessity"],
    response_model=VersionRef,
    openapi_extra=needs("service-request:request"),
)
async def choose_alternative(
    patient_id: uuid.UUID, request_id: uuid.UUID, body: ChoiceIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = ChooseAlternative(
        who.agency_id, who.subject, who.role, patient_id, request_id, body.alternative, body.expected_version
    )
    return await commands.run(handlers.choose_alternative, command, respond=VersionRef.of)
