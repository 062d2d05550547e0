"""Reassigning a patient's care manager (``patient:assign``, a supervisor's)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from careloop_shared.http import Audit, Commands, CurrentPrincipal, needs
from intake.care_manager import handlers
from intake.domain.commands import ReassignCareManager
from intake.schemas import AssignmentOut, ReassignmentIn

router = APIRouter(prefix="/v1", tags=["patients"])


@router.post(
    "/patients/{patient_id}/care-manager",
    response_model=AssignmentOut,
    responses={404: {"description": "No such patient in your agency"}},
    openapi_extra=needs("patient:assign"),
)
async def reassign_care_manager(
    patient_id: uuid.UUID, body: ReassignmentIn, who: CurrentPrincipal, commands: Commands, audit: Audit
) -> Any:
    """Make another care manager responsible; naming the one already responsible changes nothing."""
    command = ReassignCareManager(
        who.agency_id, patient_id, body.care_manager_id, by=who.subject, by_role=who.role, reason=body.reason
    )
    answer = await commands.run(handlers.reassign_care_manager, command, respond=lambda a: AssignmentOut(**a))
    await audit.read(patient_id, "patient")  # the answer names who is and was responsible for them
    return answer
