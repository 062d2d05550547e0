"""careplan's HTTP routes. POSTs honour Idempotency-Key; plan edits name the version they expect."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from careloop_shared.http import CurrentPrincipal, Page, Paging, Runtime
from careloop_shared.idempotency import run_idempotent
from careloop_shared.outbox import UnitOfWork
from careplan import handlers, store
from careplan.domain.necessity import UnknownService
from careplan.domain.versions import diff
from careplan.schemas import (
    CarePlanOut,
    ChoiceIn,
    ContributionIn,
    DiffOut,
    EducationIn,
    MemberIn,
    MemberOut,
    MemberPatch,
    ServiceRequestIn,
    ServiceRequestOut,
    StatusIn,
    VersionOut,
    VersionRef,
)

router = APIRouter(prefix="/v1/patients/{patient_id}")
_NOT_FOUND = "care plan not found"


def _planning(rt: Runtime) -> handlers.Planning:
    planning: handlers.Planning = rt.spec.context["planning"]
    return planning


async def _run(rt: Runtime, request: Request, who: CurrentPrincipal, body: Any, op: Any) -> Any:
    """Map refusals to HTTP answers; nothing is stored when one is raised."""
    try:
        return await run_idempotent(rt, request, who, body, op)
    except (handlers.PlanNotFound, handlers.NotFound) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except handlers.StaleVersion as exc:
        return JSONResponse(status_code=409, content={"detail": str(exc), "current_version": exc.current})
    except handlers.Refused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except UnknownService:
        return JSONResponse(
            status_code=422,
            content={
                "detail": [
                    {
                        "loc": ["body", "service_code"],
                        "type": "unknown_service",
                        "msg": "no necessity criteria for it",
                    }
                ]
            },
        )


@router.get("/care-plan", tags=["care plans"], response_model=CarePlanOut)
async def current_care_plan(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> CarePlanOut:
    row = await store.plan_version(rt.pool, who.agency_id, patient_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return CarePlanOut(patient_id=patient_id, **dict(row))


@router.get("/care-plan/versions", tags=["care plans"], response_model=Page[VersionOut])
async def care_plan_versions(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime, page: Paging) -> Any:
    rows = await store.plan_versions(rt.pool, who.agency_id, patient_id, page.fetch_limit, page.offset)
    if not rows and page.offset == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return Page.of([VersionOut(**dict(r)) for r in rows], page)


@router.get("/care-plan/versions/{version}", tags=["care plans"], response_model=CarePlanOut)
async def care_plan_version(patient_id: uuid.UUID, version: int, who: CurrentPrincipal, rt: Runtime) -> Any:
    row = await store.plan_version(rt.pool, who.agency_id, patient_id, version)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "care plan version not found")
    return CarePlanOut(patient_id=patient_id, **dict(row))


@router.get("/care-plan/diff", tags=["care plans"], response_model=DiffOut)
async def care_plan_diff(
    patient_id: uuid.UUID,
    who: CurrentPrincipal,
    rt: Runtime,
    from_: int = Query(alias="from", ge=1),
    to: int = Query(ge=1),
) -> DiffOut:
    old = await store.plan_version(rt.pool, who.agency_id, patient_id, from_)
    new = await store.plan_version(rt.pool, who.agency_id, patient_id, to)
    if old is None or new is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "care plan version not found")
    changes = diff(old["document"], new["document"])
    if old["status"] != new["status"]:
        changes.setdefault("plan", {})["status"] = {"from": old["status"], "to": new["status"]}
    return DiffOut(from_version=from_, to_version=to, changes=changes)


@router.post("/care-plan/status", tags=["care plans"], response_model=VersionRef)
async def change_status(
    patient_id: uuid.UUID, body: StatusIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        version = await handlers.change_plan_status(
            uow, who.agency_id, who.role, patient_id, body.status, body.expected_version
        )
        return 200, VersionRef(plan_version=version)

    return await _run(rt, request, who, body, op)


@router.post("/care-plan/contributions", tags=["care team"], status_code=201, response_model=VersionRef)
async def contribute(
    patient_id: uuid.UUID, body: ContributionIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        contribution = body.model_dump()
        if body.preference is not None:
            contribution["preference"] = body.preference.model_dump(exclude_none=True)
        version = await handlers.contribute(
            uow, _planning(rt), who.agency_id, who.role, patient_id, contribution
        )
        return 201, VersionRef(plan_version=version)

    return await _run(rt, request, who, body, op)


@router.get("/care-team", tags=["care team"], response_model=list[MemberOut])
async def care_team(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> list[MemberOut]:
    if await store.plan_version(rt.pool, who.agency_id, patient_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return [MemberOut(**dict(r)) for r in await store.care_team(rt.pool, who.agency_id, patient_id)]


@router.post("/care-team", tags=["care team"], status_code=201, response_model=MemberOut)
async def add_member(
    patient_id: uuid.UUID, body: MemberIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        return 201, MemberOut(**await handlers.add_member(uow, who.agency_id, patient_id, body.model_dump()))

    return await _run(rt, request, who, body, op)


@router.patch("/care-team/{member_id}", tags=["care team"], response_model=MemberOut)
async def change_member(
    patient_id: uuid.UUID,
    member_id: uuid.UUID,
    body: MemberPatch,
    who: CurrentPrincipal,
    rt: Runtime,
    request: Request,
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(k, "") is None for k in ("name", "relationship", "role")):
        return JSONResponse(
            status_code=422,
            content={
                "detail": [
                    {
                        "loc": ["body"],
                        "type": "cannot_clear",
                        "msg": "name, relationship and role cannot be cleared",
                    }
                ]
            },
        )

    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        return 200, MemberOut(
            **await handlers.change_member(uow, who.agency_id, patient_id, member_id, changes)
        )

    return await _run(rt, request, who, changes, op)


@router.delete("/care-team/{member_id}", tags=["care team"])
async def remove_member(
    patient_id: uuid.UUID, member_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        await handlers.remove_member(uow, who.agency_id, patient_id, member_id)
        return 200, {"removed": str(member_id)}

    return await _run(rt, request, who, None, op)


@router.post("/service-requests", tags=["medical necessity"], status_code=201)
async def request_service(
    patient_id: uuid.UUID, body: ServiceRequestIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    """Answers with the necessity decision: met (the service joins the plan) or not met with alternatives."""

    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        return 201, await handlers.request_service(
            uow, _planning(rt), who.agency_id, who.role, patient_id, body.service_code, body.expected_version
        )

    return await _run(rt, request, who, body, op)


@router.get("/service-requests", tags=["medical necessity"], response_model=list[ServiceRequestOut])
async def service_requests(
    patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime
) -> list[ServiceRequestOut]:
    return [
        ServiceRequestOut(**dict(r)) for r in await store.service_requests(rt.pool, who.agency_id, patient_id)
    ]


@router.post("/service-requests/{request_id}/choice", tags=["medical necessity"], response_model=VersionRef)
async def choose_alternative(
    patient_id: uuid.UUID,
    request_id: uuid.UUID,
    body: ChoiceIn,
    who: CurrentPrincipal,
    rt: Runtime,
    request: Request,
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        version = await handlers.choose_alternative(
            uow,
            _planning(rt),
            who.agency_id,
            who.role,
            patient_id,
            request_id,
            body.alternative,
            body.expected_version,
        )
        return 200, VersionRef(plan_version=version)

    return await _run(rt, request, who, body, op)


@router.post(
    "/care-plan/interventions/{intervention_id}/education",
    tags=["care plans"],
    status_code=201,
    response_model=VersionRef,
)
async def record_education(
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    body: EducationIn,
    who: CurrentPrincipal,
    rt: Runtime,
    request: Request,
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        version = await handlers.record_education(
            uow, who.agency_id, who.role, patient_id, intervention_id, body.materials
        )
        return 201, VersionRef(plan_version=version)

    return await _run(rt, request, who, body, op)
