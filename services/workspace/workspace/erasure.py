"""Erasing a patient's identifying details (a supervisor, with a reason): intake's
``POST /v1/patients/{id}/erasure``. Their data key is destroyed, so nothing can undo it; the form says what
goes and what stays, and asks for the reason and a confirmation before anything is sent."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspace.forms import Checks, FormError, FormKey, new_form_key, patient_name, send
from workspace.gates import not_available
from workspace.notices import patient_url
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, redirect, render

router = APIRouter()

ERASES = "patient:erase"
CONFIRMED = "erase"  # the confirmation box's value
Reason = Annotated[str, Form(max_length=4000)]  # intake keeps 3 to 500 characters


@router.get("/patients/{patient_id}/erasure/new")
async def erasure_form(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    assert session.person is not None
    if not may(session.person, ERASES):
        return not_available(request, "Erasing a patient's details is")
    return await _form(request, services, patient_id, "", new_form_key())


@router.post("/patients/{patient_id}/erasure")
async def erase_patient(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    reason: Reason = "",
    confirm: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    assert session.person is not None
    if not may(session.person, ERASES):
        return not_available(request, "Erasing a patient's details is")
    check = Checks()
    if check.need("reason", reason.strip(), "Say why the details are erased (kept in intake only)."):
        if not 3 <= len(reason.strip()) <= 500:
            check.fail("reason", "The reason is 3 to 500 characters.")
    if confirm != CONFIRMED:
        check.fail("confirm", "Tick the box to confirm: an erasure cannot be undone.")
    error = check.error()
    if error is None:
        path = f"/v1/patients/{patient_id}/erasure"
        body = {"reason": reason.strip()}
        _, error = await send(services.post("intake", path, body, idempotency_key=form_key), shown=(410, 422))
        if error is None or error.status == 410:  # erased now, or before: the page says so either way
            return redirect(patient_url(patient_id, "patient-erased"))
    return await _form(request, services, patient_id, reason, form_key, error)


async def _form(
    request: Request,
    services: CallServices,
    patient_id: uuid.UUID,
    reason: str,
    key: str,
    error: FormError | None = None,
) -> Response:
    context = {
        "title": "Erase the patient's identifying details",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "reason": reason,
        "form_key": key,
        "error": error,
    }
    return render(request, "erasure_new.html", context, status_code=error.status if error else 200)
