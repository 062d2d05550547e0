"""Changing the care plan's status (naming the version the person saw: a stale one is refused with 409,
and the page says where the plan is now) and recording education given for an intervention."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import ServiceError, Services
from workspace.forms import (
    Checks,
    Choices,
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
from workspace.web import CallServices, SignedInSession, redirect, render, words

router = APIRouter()

TEACH_BACK = {"yes": True, "no": False, "": None}


@router.get("/patients/{patient_id}/plan/status")
async def plan_status_page(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    plan = await current_plan(services, patient_id)
    return await _status_form(request, services, patient_id, plan, new_form_key())


@router.post("/patients/{patient_id}/plan/status")
async def change_plan_status(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    expected_version: Version,
    status: Code = "",
) -> Response:
    check = Checks()
    if status not in form_choices().plan_transitions:
        check.fail("plan-status-new", "Choose the status the plan should have.")
    error = check.error()
    if error is None:
        body = {"status": status, "expected_version": expected_version}
        path = f"/v1/patients/{patient_id}/care-plan/status"
        renamed = {"status": "plan-status-new"}
        _, error = await send(services.post("careplan", path, body, idempotency_key=form_key), renamed)
        if error is None:
            return redirect(patient_url(patient_id, "plan-status-changed", "plan"))
        stale_message(error, expected_version)
    plan = await current_plan(services, patient_id)
    shown = {"version": expected_version, "status": (plan or {}).get("status", "")}
    return await _status_form(request, services, patient_id, plan, form_key, error, shown)


async def _status_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    plan: dict[str, Any] | None,
    key: str,
    error: FormError | None = None,
    shown: dict[str, Any] | None = None,
) -> Response:
    """``shown``: the version the form was for (after a stale attempt, still the one the person saw)."""
    shown = shown or {"version": (plan or {}).get("version"), "status": (plan or {}).get("status", "")}
    context = {
        "title": "Change the plan's status",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "plan": plan,
        "expected_version": shown["version"],
        "moves": form_choices().plan_transitions.get(shown["status"], []),
        "form_key": key,
        "error": error,
    }
    return render(request, "plan_status.html", context, status_code=error.status if error else 200)


@router.get("/patients/{patient_id}/interventions/{intervention_id}/education")
async def education_page(
    request: Request,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    entered = {"channel": "", "teach_back": ""}
    return await _education_form(
        request, services, patient_id, intervention_id, entered, None, new_form_key()
    )


@router.post("/patients/{patient_id}/interventions/{intervention_id}/education")
async def record_education(
    request: Request,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    materials: Choices = [],  # noqa: B006 (FastAPI copies a form default)
    channel: Code = "",
    teach_back: Code = "",
) -> Response:
    entered = {"channel": channel, "teach_back": teach_back}
    check = Checks()
    if channel and channel not in form_choices().education_channels:
        check.fail("channel", "Choose how it was given from the list.")
    if teach_back not in TEACH_BACK:
        check.fail("teach_back", "Choose whether the patient explained it back.")
    error = check.error()
    if error is None:
        body = {
            "materials": materials or None,  # none ticked: the intervention's own
            "channel": channel or None,
            "teach_back_confirmed": TEACH_BACK[teach_back],
        }
        path = f"/v1/patients/{patient_id}/care-plan/interventions/{intervention_id}/education"
        _, error = await send(services.post("careplan", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "education-recorded", "education"))
    return await _education_form(
        request, services, patient_id, intervention_id, entered, materials, form_key, error
    )


async def _education_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    entered: dict[str, str],
    ticked: list[str] | None,
    key: str,
    error: FormError | None = None,
) -> Response:
    plan = await current_plan(services, patient_id)
    document = (plan or {}).get("document", {})
    found = [i for i in document.get("interventions", []) if i["id"] == str(intervention_id)]
    intervention = found[0] if found else None
    own = list((intervention or {}).get("education_materials", []))
    language = (intervention or {}).get("language") or document.get("preferred_language")
    offered = await _materials(services, (intervention or {}).get("need"), language)
    offered += [(m, m) for m in own if m not in {o for o, _ in offered}]
    context = {
        "title": "Record education given",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "intervention": intervention,
        "materials": offered,
        "ticked": own if ticked is None else ticked,
        "channels": [(c, words(c)) for c in form_choices().education_channels],
        "teach_back": [("yes", "Yes, in their own words"), ("no", "No"), ("", "Not asked")],
        "entered": entered,
        "form_key": key,
        "error": error,
    }
    return render(request, "education_new.html", context, status_code=error.status if error else 200)


async def _materials(services: Services, need: str | None, language: str | None) -> list[tuple[str, str]]:
    """The materials explaining the need, in the patient's language when written in it; any in that
    language when none explains it. (id, "title (language, version)") pairs."""
    topics: list[dict[str, Any]] = []
    for params in ({"need": need, "language": language}, {"language": language}):
        if params.get("need", "") is None:
            continue
        try:
            topics = (await services.get("careplan", "/v1/education/materials", {**params, "limit": 50}))[
                "items"
            ]
        except ServiceError as exc:
            if exc.status == 401:
                raise
            return []
        if any(t["materials"] for t in topics):
            break
    return [
        (m["material_id"], f"{m['title']} ({m['language']}, version {m['version']})")
        for topic in topics
        for m in topic["materials"]
    ]
