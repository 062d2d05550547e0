"""careplan's HTTP routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from careloop_shared.http import CurrentPrincipal, Runtime
from careplan import store

router = APIRouter(prefix="/v1", tags=["care plans"])


class CarePlanOut(BaseModel):
    plan_id: uuid.UUID
    patient_id: uuid.UUID
    version: int
    status: str
    updated_at: datetime
    reason: str
    document: dict[str, Any]


@router.get("/patients/{patient_id}/care-plan", response_model=CarePlanOut)
async def current_care_plan(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> CarePlanOut:
    row = await store.current_plan(rt.pool, who.agency_id, patient_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "care plan not found")
    return CarePlanOut(patient_id=patient_id, **dict(row))
