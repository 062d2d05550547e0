"""intake's HTTP routes. Every POST honours Idempotency-Key."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from careloop_shared.http import CurrentPrincipal, Page, Paging, Runtime, validation_errors
from careloop_shared.idempotency import run_idempotent
from careloop_shared.outbox import UnitOfWork
from intake import handlers, store
from intake.domain.scoring import InvalidAnswers, Rules
from intake.schemas import (
    AssessmentIn,
    AssessmentOut,
    ConsentIn,
    ConsentOut,
    Created,
    PatientIn,
    PatientOut,
    PatientPatch,
)

router = APIRouter(prefix="/v1")
RULES = Rules.load()

_PATIENT_NOT_FOUND = "patient not found"
_IDEMPOTENCY_DOC = {"Idempotency-Key": "a retry with the same key returns the first result"}


def _unprocessable(problems: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": validation_errors(problems)}
    )


async def _idempotent(rt: Runtime, request: Request, who: CurrentPrincipal, body: Any, op: Any) -> Any:
    """Map domain refusals to HTTP answers; nothing is stored when one is raised."""
    try:
        return await run_idempotent(rt, request, who, body, op)
    except (handlers.PatientNotFound, handlers.ConsentNotFound) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except handlers.LikelyDuplicate as exc:
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content={"detail": str(exc), "existing_id": str(exc.existing_id)},
        )
    except handlers.InvalidChange as exc:
        return _unprocessable([{"loc": ["body"], "type": "invalid_change", "msg": str(exc)}])
    except InvalidAnswers as exc:
        return _unprocessable(
            [
                {
                    "loc": ["body", "answers", p["item"]]
                    if p["item"] != "instrument"
                    else ["body", "instrument"],
                    "type": "invalid_answer",
                    "msg": p["reason"],
                }
                for p in exc.problems
            ]
        )


@router.post(
    "/patients",
    tags=["patients"],
    status_code=201,
    response_model=Created,
    responses={409: {"description": "Likely duplicate; body names existing_id"}},
)
async def register_patient(body: PatientIn, who: CurrentPrincipal, rt: Runtime, request: Request) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        return 201, Created(id=await handlers.register_patient(uow, who.agency_id, body))

    return await _idempotent(rt, request, who, body, op)


@router.get("/patients", tags=["patients"], response_model=Page[PatientOut])
async def list_patients(who: CurrentPrincipal, rt: Runtime, page: Paging) -> Page[PatientOut]:
    rows = await store.list_patients(rt.pool, who.agency_id, page.fetch_limit, page.offset)
    return Page.of([PatientOut(**dict(r)) for r in rows], page)


@router.get("/patients/{patient_id}", tags=["patients"], response_model=PatientOut)
async def get_patient(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> PatientOut:
    row = await store.get_patient(rt.pool, who.agency_id, patient_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _PATIENT_NOT_FOUND)
    return PatientOut(**dict(row))


@router.patch("/patients/{patient_id}", tags=["patients"], response_model=PatientOut)
async def update_patient(
    patient_id: uuid.UUID, body: PatientPatch, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        updated = await handlers.update_patient(uow, who.agency_id, patient_id, body)
        return 200, PatientOut(**updated)

    return await _idempotent(rt, request, who, body.model_dump(exclude_unset=True), op)


@router.post("/patients/{patient_id}/consents", tags=["consent"], status_code=201, response_model=Created)
async def record_consent(
    patient_id: uuid.UUID, body: ConsentIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        return 201, Created(id=await handlers.record_consent(uow, who.agency_id, patient_id, body))

    return await _idempotent(rt, request, who, body, op)


@router.get("/patients/{patient_id}/consents", tags=["consent"], response_model=list[ConsentOut])
async def list_consents(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> list[ConsentOut]:
    if await store.get_patient(rt.pool, who.agency_id, patient_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _PATIENT_NOT_FOUND)
    return [ConsentOut(**dict(r)) for r in await store.list_consents(rt.pool, who.agency_id, patient_id)]


@router.post(
    "/patients/{patient_id}/consents/{consent_id}/revoke", tags=["consent"], response_model=ConsentOut
)
async def revoke_consent(
    patient_id: uuid.UUID, consent_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        revoked = await handlers.revoke_consent(uow, who.agency_id, patient_id, consent_id)
        return 200, ConsentOut(**revoked)

    return await _idempotent(rt, request, who, None, op)


@router.post(
    "/patients/{patient_id}/assessments",
    tags=["assessments"],
    status_code=202,
    response_model=Created,
    responses={404: {"description": "No such patient in your agency"}},
)
async def assess_patient(
    patient_id: uuid.UUID, body: AssessmentIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        assessment_id = await handlers.assess_patient(uow, RULES, who.agency_id, patient_id, body)
        return 202, Created(id=assessment_id)

    return await _idempotent(rt, request, who, body, op)


@router.get("/patients/{patient_id}/assessments", tags=["assessments"], response_model=Page[AssessmentOut])
async def list_assessments(
    patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime, page: Paging
) -> Page[AssessmentOut]:
    if await store.get_patient(rt.pool, who.agency_id, patient_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _PATIENT_NOT_FOUND)
    rows = await store.list_assessments(rt.pool, who.agency_id, patient_id, page.fetch_limit, page.offset)
    return Page.of([AssessmentOut(**dict(r)) for r in rows], page)


@router.get("/assessments/{assessment_id}", tags=["assessments"], response_model=AssessmentOut)
async def get_assessment(assessment_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> AssessmentOut:
    row = await store.get_assessment(rt.pool, who.agency_id, assessment_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "assessment not found")
    return AssessmentOut(**dict(row))
