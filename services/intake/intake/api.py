"""intake's HTTP routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from careloop_shared.http import CurrentPrincipal, Runtime, validation_errors
from intake import handlers, store
from intake.domain.scoring import InvalidAnswers, Rules
from intake.schemas import AssessmentIn, AssessmentOut, Created, PatientIn, PatientOut

router = APIRouter(prefix="/v1", tags=["patients"])
RULES = Rules.load()

_NOT_FOUND = "patient not found"


@router.post("/patients", status_code=status.HTTP_201_CREATED, response_model=Created)
async def register_patient(body: PatientIn, who: CurrentPrincipal, rt: Runtime) -> Created:
    async with rt.uow() as uow:
        patient_id = await handlers.register_patient(uow, who.agency_id, body)
    return Created(id=patient_id)


@router.get("/patients/{patient_id}", response_model=PatientOut)
async def get_patient(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> PatientOut:
    row = await store.get_patient(rt.pool, who.agency_id, patient_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return PatientOut(**dict(row))


@router.post(
    "/patients/{patient_id}/assessments",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Created,
    responses={404: {"description": "No such patient in your agency"}, 422: {}},
)
async def assess_patient(
    patient_id: uuid.UUID, body: AssessmentIn, who: CurrentPrincipal, rt: Runtime
) -> Created | JSONResponse:
    try:
        async with rt.uow() as uow:
            assessment_id = await handlers.assess_patient(uow, RULES, who.agency_id, patient_id, body)
    except InvalidAnswers as exc:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={
                "detail": validation_errors(
                    [
                        {"loc": ["body", "answers", p["item"]], "type": "invalid_answer", "msg": p["reason"]}
                        for p in exc.problems
                    ]
                )
            },
        )
    except handlers.PatientNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND) from None
    return Created(id=assessment_id)


@router.get("/assessments/{assessment_id}", response_model=AssessmentOut)
async def get_assessment(assessment_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> AssessmentOut:
    row = await store.get_assessment(rt.pool, who.agency_id, assessment_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "assessment not found")
    return AssessmentOut(**dict(row))
