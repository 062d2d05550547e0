"""Requesting a service for a patient: careplan checks it for medical necessity (``POST
.../service-requests``); the answer is shown with the criteria not met and the alternatives, and the
alternative the patient chooses is recorded (``POST .../service-requests/{id}/choice``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Services, not_found
from workspace.forms import (
    Checks,
    Code,
    FormError,
    FormKey,
    Version,
    current_plan,
    new_form_key,
    patient_name,
    send,
    stale_message,
)
from workspace.notices import patient_url
from workspace.web import CallServices, SignedInSession, redirect, render

router = APIRouter()


@router.get("/patients/{patient_id}/service-requests/new")
async def new_service_request(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    return await _request_form(request, services, patient_id, "", None, new_form_key())


@router.post("/patients/{patient_id}/service-requests")
async def request_service(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    expected_version: Version,
    service_code: Code = "",
) -> Response:
    check = Checks()
    if service_code not in form_choices().services:
        check.fail("service_code", "Choose the service to request.")
    error = check.error()
    if error is None:
        body = {"service_code": service_code, "expected_version": expected_version}
        path = f"/v1/patients/{patient_id}/service-requests"
        decided, error = await send(services.post("careplan", path, body, idempotency_key=form_key))
        if error is None:
            assert decided is not None
            return redirect(f"/patients/{patient_id}/service-requests/{decided['service_request_id']}")
        stale_message(error, expected_version)
    return await _request_form(request, services, patient_id, service_code, expected_version, form_key, error)


async def _request_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    chosen: str,
    expected_version: int | None,
    key: str,
    error: FormError | None = None,
) -> Response:
    plan = await current_plan(services, patient_id)
    context = {
        "title": "Request a service",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "plan": plan,
        "expected_version": expected_version or (plan or {}).get("version"),
        "services": list(form_choices().services.items()),
        "chosen": chosen,
        "form_key": key,
        "error": error,
    }
    return render(request, "service_request_new.html", context, status_code=error.status if error else 200)


@router.get("/patients/{patient_id}/service-requests/{request_id}")
async def service_request_page(
    request: Request,
    patient_id: uuid.UUID,
    request_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    """The necessity decision, and the patient's choice among the alternatives when it was not met."""
    return await _decision(request, services, patient_id, request_id, "", None, new_form_key())


@router.post("/patients/{patient_id}/service-requests/{request_id}/choice")
async def choose_alternative(
    request: Request,
    patient_id: uuid.UUID,
    request_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    expected_version: Version,
    alternative: Code = "",
) -> Response:
    check = Checks()
    check.need("alternative", alternative, "Choose the alternative the patient wants.")
    error = check.error()
    if error is None:
        body = {"alternative": alternative, "expected_version": expected_version}
        path = f"/v1/patients/{patient_id}/service-requests/{request_id}/choice"
        _, error = await send(services.post("careplan", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "alternative-chosen", "service-requests"))
        stale_message(error, expected_version)
    return await _decision(
        request, services, patient_id, request_id, alternative, expected_version, form_key, error
    )


async def _decision(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    request_id: uuid.UUID,
    chosen: str,
    expected_version: int | None,
    key: str,
    error: FormError | None = None,
) -> Response:
    requests: list[dict[str, Any]] = await services.get(
        "careplan", f"/v1/patients/{patient_id}/service-requests"
    )
    found = [r for r in requests if r["id"] == str(request_id)]
    if not found:
        raise not_found("careplan")
    plan = await current_plan(services, patient_id)
    titles = form_choices().services
    context = {
        "title": "Medical necessity",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "decision": found[0],
        "service_title": titles.get(found[0]["service_code"], found[0]["service_code"]),
        "alternatives": [(code, titles.get(code, code)) for code in found[0]["alternatives"]],
        "expected_version": expected_version or (plan or {}).get("version"),
        "chosen": chosen,
        "form_key": key,
        "error": error,
    }
    return render(request, "service_request.html", context, status_code=error.status if error else 200)
