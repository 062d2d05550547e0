"""followup's HTTP routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from careloop_shared.http import CurrentPrincipal, Runtime
from followup import store

router = APIRouter(prefix="/v1", tags=["follow-ups"])

Status = Literal["scheduled", "due", "completed", "overdue", "cancelled"]


class FollowUpOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    reason: str
    plan_id: uuid.UUID | None
    referral_id: uuid.UUID | None
    priority: str
    due_at: datetime
    status: str
    created_at: datetime
    updated_at: datetime


@router.get("/follow-ups", response_model=list[FollowUpOut])
async def list_follow_ups(
    who: CurrentPrincipal,
    rt: Runtime,
    patient_id: uuid.UUID | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[FollowUpOut]:
    rows = await store.list_follow_ups(rt.pool, who.agency_id, patient_id, status, limit, offset)
    return [FollowUpOut(**dict(r)) for r in rows]
