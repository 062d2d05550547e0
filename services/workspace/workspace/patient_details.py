"""Changing a patient's details (a new phone number, a corrected name, the channels now safe): intake's
``PATCH /v1/patients/{id}``.

The form carries the details as it showed them (``shown``), and only the fields the person changed are
sent: a colleague's change meanwhile to any other field stays. The care manager changes by reassignment,
not here.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspace.forms import (
    Checks,
    FormError,
    FormKey,
    new_form_key,
    patient_name,
    send,
)
from workspace.gates import not_available
from workspace.notices import patient_url
from workspace.pages import may
from workspace.registration import NO_CHANNEL, OPTIONAL, REQUIRED, Details, DetailsForm, detail_choices
from workspace.web import CallServices, SignedInSession, redirect, render

router = APIRouter()

CHANGES = "patient:update"
FIELDS = (*REQUIRED, *OPTIONAL)  # an optional field left empty is cleared
Shown = Annotated[str, Form(max_length=8000)]


@router.get("/patients/{patient_id}/details/edit")
async def edit_details(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    assert session.person is not None
    if not may(session.person, CHANGES):
        return not_available(request, "Changing a patient's details is")
    patient = await services.get("intake", f"/v1/patients/{patient_id}")  # 404: not this agency's
    shown = {**{f: patient.get(f) for f in FIELDS}, "safe_channels": patient.get("safe_channels")}
    entered = {f: shown[f] or "" for f in FIELDS}
    ticked = _ticked(shown["safe_channels"])
    name = f"{patient['given_name']} {patient['family_name']}"
    return _form(request, patient_id, name, entered, ticked, shown, new_form_key())


@router.post("/patients/{patient_id}/details")
async def change_details(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    details: Details,
    shown: Shown = "",
) -> Response:
    assert session.person is not None
    if not may(session.person, CHANGES):
        return not_available(request, "Changing a patient's details is")
    before = _shown_of(shown)
    check = Checks()
    if before is None:
        check.fail("", "The form was not as the workspace showed it; open it again from the patient's page.")
    details.check(request, check)
    error = check.error()
    if error is None and before is not None:
        changes = _changes(before, details)
        if not changes:
            return _back(patient_id, "details-unchanged")
        path = f"/v1/patients/{patient_id}"
        _, error = await send(services.patch("intake", path, changes, idempotency_key=form_key))
        if error is None:
            return _back(patient_id, "details-changed")
    name = await patient_name(services, patient_id)
    return _form(
        request, patient_id, name, details.entered, details.safe_channels, before or {}, form_key, error
    )


def _changes(before: dict[str, Any], details: DetailsForm) -> dict[str, Any]:
    """What the person changed of what the form showed (the safe channels in any order)."""
    values = details.values()
    channels = values.pop("safe_channels")
    changes = {f: v for f, v in values.items() if v != before.get(f)}
    if _as_set(channels) != _as_set(before.get("safe_channels")):
        changes["safe_channels"] = channels
    return changes


def _as_set(channels: list[str] | None) -> frozenset[str] | None:
    return None if channels is None else frozenset(channels)


def _ticked(channels: list[str] | None) -> list[str]:
    """The boxes that show ``channels``: none for not asked, "no channel is safe" for none."""
    if channels is None:
        return []
    return channels or [NO_CHANNEL]


def _shown_of(text: str) -> dict[str, Any] | None:
    """The details as the form showed them, or None when what came back is not that."""
    try:
        shown = json.loads(text)
    except ValueError:
        return None
    if not isinstance(shown, dict) or set(shown) != {*FIELDS, "safe_channels"}:
        return None
    if not all(v is None or isinstance(v, str) for f, v in shown.items() if f != "safe_channels"):
        return None
    channels = shown["safe_channels"]
    if channels is not None and not (
        isinstance(channels, list) and all(isinstance(c, str) for c in channels)
    ):
        return None
    return shown


def _back(patient_id: uuid.UUID, notice: str) -> Response:
    return redirect(patient_url(patient_id, notice, "details"))


def _form(
    request: Request,
    patient_id: uuid.UUID,
    name: str | None,
    entered: dict[str, str],
    ticked: list[str],
    shown: dict[str, Any],
    key: str,
    error: FormError | None = None,
) -> Response:
    context = {
        "title": "Change the patient's details",
        "patient_id": patient_id,
        "name": name,
        "entered": entered,
        "safe_channels": ticked,
        "shown": json.dumps(shown),
        "form_key": key,
        "error": error,
        **detail_choices(),
    }
    return render(request, "patient_edit.html", context, status_code=error.status if error else 200)
