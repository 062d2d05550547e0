"""The route of a referred patient's appointment with the receiving program. The answer shows the referral
(its need among it): audited first, as any referral read."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field

from careloop_shared.body import AwareMoment, Body
from careloop_shared.http import Audit, Commands, CurrentPrincipal, needs
from referral.appointments import handlers
from referral.loop.api import audit_shown
from referral.loop.schemas import ReferralOut

router = APIRouter(prefix="/v1", tags=["referrals"])


class AppointmentIn(Body):
    status: Literal["booked", "fulfilled", "noshow", "cancelled"] = Field(
        description="booked (with starts_at: a first booking, a new one after a missed or cancelled one, or"
        " a move), fulfilled (the patient came), noshow (they did not), cancelled."
    )
    starts_at: AwareMoment | None = Field(
        None, description="When, for a booking only: within the coming year."
    )


@router.post(
    "/referrals/{referral_id}/appointment",
    response_model=ReferralOut,
    responses={
        403: {"description": "The referring agency sees the appointment; the receiving agency keeps it"},
        404: {"description": "No such referral that your agency may see"},
        409: {"description": "The referral is not worked on now, or the appointment cannot make that move"},
    },
    openapi_extra=needs("referral:change-status"),
)
async def change_appointment(
    referral_id: uuid.UUID, body: AppointmentIn, who: CurrentPrincipal, commands: Commands, audit: Audit
) -> Any:
    """Book the referred patient's appointment with the program, move it, or say how it went, as the
    receiving agency (``AppointmentStatusChanged``). A missed appointment is the patient's care manager's
    to follow up (followup opens a task)."""
    command = handlers.ChangeAppointment(
        who.agency_id, referral_id, body.status, who.subject, who.role, body.starts_at
    )
    answer = await commands.run(
        handlers.change_referral_appointment, command, respond=ReferralOut.model_validate
    )
    shown = json.loads(bytes(answer.body))
    await audit_shown(audit, [(uuid.UUID(shown["patient_id"]), referral_id, shown["referring_agency_id"])])
    return answer
