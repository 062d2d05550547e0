"""Progress on the plan by hand: moving an intervention no referral serves along its activity status (a
safety evaluation done, an education step stopped, one closed too soon reopened) and saying where a goal
stands (on hold, completed, cancelled; its achievement), through careplan's ``POST
/v1/patients/{id}/care-plan/interventions/{id}/status`` and ``.../goals/{id}/status``. Each names the
version the person saw: a stale one is refused with 409 and the page says where the plan is now.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Services
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
from workspace.own_words import goal_words
from workspace.web import CallServices, SignedInSession, redirect, render

router = APIRouter()


@router.get("/patients/{patient_id}/interventions/{intervention_id}/status")
async def intervention_page(
    request: Request,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    return await _form(request, services, patient_id, "interventions", intervention_id, new_form_key())


@router.post("/patients/{patient_id}/interventions/{intervention_id}/status")
async def move_intervention(
    request: Request,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    expected_version: Version,
    status: Code = "",
) -> Response:
    body = {"status": status, "expected_version": expected_version}
    path = f"/v1/patients/{patient_id}/care-plan/interventions/{intervention_id}/status"
    _, error = await send(services.post("careplan", path, body, idempotency_key=form_key))
    if error is None:
        return redirect(patient_url(patient_id, "plan-progress-recorded", "plan"))
    stale_message(error, expected_version)
    entered = {"status": status}
    return await _form(
        request,
        services,
        patient_id,
        "interventions",
        intervention_id,
        form_key,
        error,
        expected_version,
        entered,
    )


@router.get("/patients/{patient_id}/goals/{goal_id}/status")
async def goal_page(
    request: Request,
    patient_id: uuid.UUID,
    goal_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    return await _form(request, services, patient_id, "goals", goal_id, new_form_key())


@router.post("/patients/{patient_id}/goals/{goal_id}/status")
async def move_goal(
    request: Request,
    patient_id: uuid.UUID,
    goal_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    expected_version: Version,
    lifecycle_status: Code = "",
    achievement_status: Code = "",
) -> Response:
    check = Checks()
    if not lifecycle_status and not achievement_status:
        check.fail("lifecycle_status", "Say where the goal stands, how it is going, or both.")
    error = check.error()
    if error is None:
        body = {
            "lifecycle_status": lifecycle_status or None,
            "achievement_status": achievement_status or None,
            "expected_version": expected_version,
        }
        path = f"/v1/patients/{patient_id}/care-plan/goals/{goal_id}/status"
        _, error = await send(services.post("careplan", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "plan-progress-recorded", "plan"))
        stale_message(error, expected_version)
    entered = {"lifecycle_status": lifecycle_status, "achievement_status": achievement_status}
    return await _form(
        request, services, patient_id, "goals", goal_id, form_key, error, expected_version, entered
    )


async def _form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    part: str,
    item_id: uuid.UUID,
    key: str,
    error: FormError | None = None,
    expected_version: int | None = None,
    entered: dict[str, str] | None = None,
) -> Response:
    """The item as the plan has it now, and the moves it may make; ``expected_version``: after a refused
    attempt, still the version the person saw."""
    plan = await current_plan(services, patient_id)
    document: dict[str, Any] = (plan or {}).get("document") or {}
    item = next((i for i in document.get(part, []) if i["id"] == str(item_id)), None)
    said = await goal_words(services, f"/v1/patients/{patient_id}", {"goals": [item]} if item else {})
    choices = form_choices()
    if part == "goals":
        current = (item or {}).get("lifecycle_status", "active")
        moves = choices.goal_transitions.get(current, [])
    else:
        current = (item or {}).get("status", "not-started")
        moves = choices.activity_transitions.get(current, [])
    context = {
        "title": "Progress on a goal" if part == "goals" else "Progress on an intervention",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "plan": plan,
        "part": part,
        "item": item,
        "own_words": said.get(str(item_id)),
        "current": current,
        "moves": moves,
        "achievements": choices.goal_achievements,
        "expected_version": expected_version or (plan or {}).get("version"),
        "entered": entered or {},
        "form_key": key,
        "error": error,
    }
    return render(request, "plan_progress.html", context, status_code=error.status if error else 200)
