"""referral's HTTP routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from careloop_shared.http import CurrentPrincipal, Runtime
from referral import store

router = APIRouter(prefix="/v1", tags=["referrals"])


class ReferralOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_id: str
    receiving_agency_id: str
    status: str
    response_due_at: datetime
    created_at: datetime


@router.get("/referrals", response_model=list[ReferralOut])
async def list_referrals(patient_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> list[ReferralOut]:
    return [ReferralOut(**dict(r)) for r in await store.referrals_of(rt.pool, who.agency_id, patient_id)]
