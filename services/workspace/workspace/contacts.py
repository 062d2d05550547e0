"""Arranging a contact with the patient for a time agreed with them (followup ``POST /v1/follow-ups``:
when, how, what for), changing how or what for (``POST /v1/follow-ups/{id}/arrangement``), and calling one
off (``POST /v1/follow-ups/{id}/cancel``, for a coded reason).

The ways offered are the plan's channel and in person (every channel before there is a plan): for a
patient at risk at home the plan's channel is the one they marked safe. followup checks it again.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Services
from workspace.errors import error_page
from workspace.followup_actions import OPEN, patients_follow_up
from workspace.forms import (
    Checks,
    Code,
    FormError,
    FormKey,
    action_key,
    current_plan,
    new_form_key,
    patient_name,
    send,
)
from workspace.gates import not_available
from workspace.notices import patient_url
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, redirect, render, words, workspace_of

router = APIRouter()

ARRANGES = "follow-up:arrange"
ARRANGED_CONTACT = "arranged-contact"


@router.get("/patients/{patient_id}/follow-ups/new")
async def contact_page(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    assert session.person is not None
    if not may(session.person, ARRANGES):
        return not_available(request, "Arranging a contact is")
    entered = {"due_at": "", "channel": "", "purpose": ""}
    return await _contact_form(request, services, patient_id, entered, new_form_key())


@router.post("/patients/{patient_id}/follow-ups")
async def arrange_contact(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    due_at: Code = "",
    channel: Code = "",
    purpose: Code = "",
) -> Response:
    assert session.person is not None
    if not may(session.person, ARRANGES):
        return not_available(request, "Arranging a contact is")
    ctx = workspace_of(request).ctx
    entered = {"due_at": due_at, "channel": channel, "purpose": purpose}
    check = Checks()
    when = check.future("due_at", due_at, ctx.zone, ctx.clock(), "Choose when you agreed to be in touch.")
    _check_way(check, channel, purpose)
    error = check.error()
    if error is None and when is not None:
        body = {
            "patient_id": str(patient_id),
            "due_at": when.isoformat(),
            "channel": channel,
            "purpose": purpose,
        }
        call = services.post("followup", "/v1/follow-ups", body, idempotency_key=form_key)
        _, error = await send(call, shown=(404, 410, 422))
        if error is None:
            return redirect(patient_url(patient_id, "contact-arranged", "follow-ups"))
    return await _contact_form(request, services, patient_id, entered, form_key, error)


def _check_way(check: Checks, channel: str, purpose: str) -> None:
    offered = form_choices().arranged_contact
    if channel not in offered.channels:
        check.fail("channel", "Choose how you will be in touch.")
    if purpose not in offered.purposes:
        check.fail("purpose", "Choose what the contact is for.")


async def _ways(services: Services, patient_id: uuid.UUID) -> dict[str, Any]:
    """The patient, and the ways and purposes a contact with them may have: the plan's way, or in person."""
    plan = await current_plan(services, patient_id)
    plan_channel = ((plan or {}).get("document", {}).get("follow_up") or {}).get("channel")
    offered = form_choices().arranged_contact
    return {
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "plan_channel": plan_channel,
        "channels": [(c, words(c)) for c in offered.channels_for(plan_channel)],
        "purposes": [(p, words(p)) for p in offered.purposes],
    }


async def _contact_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    entered: dict[str, str],
    key: str,
    error: FormError | None = None,
) -> Response:
    context = {
        "title": "Arrange a contact",
        **await _ways(services, patient_id),
        "zone": workspace_of(request).ctx.settings.time_zone,
        "entered": entered,
        "form_key": key,
        "error": error,
    }
    return render(request, "contact_new.html", context, status_code=error.status if error else 200)


@router.get("/patients/{patient_id}/follow-ups/{follow_up_id}/arrangement")
async def arrangement_page(
    request: Request,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    assert session.person is not None
    if not may(session.person, ARRANGES):
        return not_available(request, "Changing a contact is")
    follow_up = await patients_follow_up(services, patient_id, follow_up_id)
    entered = {"channel": follow_up.get("channel") or "", "purpose": follow_up.get("purpose") or ""}
    return await _arrangement_form(request, services, patient_id, follow_up, entered, new_form_key())


@router.post("/patients/{patient_id}/follow-ups/{follow_up_id}/arrangement")
async def change_arrangement(
    request: Request,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    channel: Code = "",
    purpose: Code = "",
) -> Response:
    """Reach the patient another way, or for another purpose, at the same time; back to its follow-ups."""
    assert session.person is not None
    if not may(session.person, ARRANGES):
        return not_available(request, "Changing a contact is")
    follow_up = await patients_follow_up(services, patient_id, follow_up_id)  # another patient's: not found
    entered = {"channel": channel, "purpose": purpose}
    check = Checks()
    _check_way(check, channel, purpose)
    error = check.error()
    if error is None:
        path = f"/v1/follow-ups/{follow_up_id}/arrangement"
        call = services.post("followup", path, entered, idempotency_key=form_key)
        _, error = await send(call, shown=(409, 422))
        if error is None:
            return redirect(patient_url(patient_id, "contact-changed", "follow-ups"))
    return await _arrangement_form(request, services, patient_id, follow_up, entered, form_key, error)


async def _arrangement_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    follow_up: dict[str, object],
    entered: dict[str, str],
    key: str,
    error: FormError | None = None,
) -> Response:
    context = {
        "title": "Change a contact",
        **await _ways(services, patient_id),
        "follow_up": follow_up,
        "open": follow_up.get("reason") == ARRANGED_CONTACT and follow_up.get("status") in OPEN,
        "entered": entered,
        "form_key": key,
        "error": error,
    }
    return render(request, "contact_change.html", context, status_code=error.status if error else 200)


@router.post("/patients/{patient_id}/follow-ups/{follow_up_id}/cancel")
async def call_off(
    request: Request,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    reason: Code = "",
) -> Response:
    """Call off an arranged contact from the patient page; back to its follow-ups."""
    assert session.person is not None
    if not may(session.person, ARRANGES):
        return not_available(request, "Calling off a contact is")
    if reason not in form_choices().arranged_contact.cancel_reasons:
        return error_page(request, 422, "That could not be done", "Choose why the contact is called off.")
    await patients_follow_up(services, patient_id, follow_up_id)  # another patient's: not found here
    # One person calling off one contact happens once, however often the button is pressed.
    key = action_key("call-off", str(follow_up_id), reason, session.person.subject)
    path = f"/v1/follow-ups/{follow_up_id}/cancel"
    _, error = await send(services.post("followup", path, {"reason": reason}, idempotency_key=key))
    if error is not None:
        return error_page(request, error.status, "That could not be done", error.message)
    return redirect(patient_url(patient_id, "contact-called-off", "follow-ups"))
