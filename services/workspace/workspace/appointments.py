"""The receiving agency keeps the referred patient's appointment with its program (referral ``POST
/v1/referrals/{id}/appointment``): it books one (or books again after a missed or cancelled one), moves it,
and says whether the patient came. A missed appointment is the referring care manager's to follow up."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workspace.codes import APPOINTMENT_OUTCOMES
from workspace.forms import Checks, Code, FormKey, send
from workspace.gates import not_available
from workspace.pages import may
from workspace.provider import INBOX, referral_page
from workspace.web import CallServices, SignedInSession, redirect, workspace_of

router = APIRouter()

BOOKED = "booked"


@router.post("/inbox/referrals/{referral_id}/appointment")
async def keep_appointment(
    request: Request,
    referral_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    idempotency_key: FormKey,
    status: Code = "",
    starts_at: Code = "",
) -> Response:
    """Book or move the appointment (a time in the workspace's zone), or say how it went."""
    assert session.person is not None
    if not may(session.person, INBOX):
        return not_available(request, "The provider inbox is")
    ctx = workspace_of(request).ctx
    check = Checks()
    body: dict[str, Any] = {"status": status}
    if status == BOOKED:
        when = check.future("starts_at", starts_at, ctx.zone, ctx.clock(), "Choose when the appointment is.")
        body["starts_at"] = when.isoformat() if when else None
    elif status not in APPOINTMENT_OUTCOMES:
        check.fail("status", "Choose what happened to the appointment.")
    error = check.error()
    if error is None:
        path = f"/v1/referrals/{referral_id}/appointment"
        call = services.post("referral", path, body, idempotency_key=idempotency_key)
        _, error = await send(call, shown=(403, 409, 422))
        if error is None:
            return redirect(f"/inbox/referrals/{referral_id}?notice=appointment-{status}")
    problems = [p.message for p in error.problems]
    failed = {"status": "appointment", "message": error.message, "problems": problems, "code": error.status}
    return await referral_page(request, services, referral_id, failed=failed)
