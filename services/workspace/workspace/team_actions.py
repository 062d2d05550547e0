"""The care team: adding a member (careplan ``POST .../care-team``), changing their details and letting them
leave the team. What a member contributes to the plan is ``workspace.contributions``."""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Services, not_found
from workspace.errors import error_page
from workspace.forms import (
    Checks,
    Code,
    FormError,
    FormKey,
    Text,
    action_key,
    new_form_key,
    none_if_blank,
    patient_name,
    send,
)
from workspace.gates import act_on_patient
from workspace.notices import patient_url
from workspace.web import CallServices, SignedInSession, redirect, render, words

router = APIRouter()

MEMBER_FIELDS = ("name", "relationship", "role", "contact")


def member_form(
    name: Text = "", relationship: Code = "", role: Text = "", contact: Text = ""
) -> dict[str, str]:
    """A care-team member as a form posts them, each field as typed."""
    return {"name": name, "relationship": relationship, "role": role, "contact": contact}


Member = Annotated[dict[str, str], Depends(member_form)]

NO_PLAN = "There is no care plan yet: the care team is kept with the plan, drafted from the first assessment."


@router.post("/patients/{patient_id}/care-team/{member_id}/remove")
async def remove_member(
    request: Request,
    patient_id: uuid.UUID,
    member_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    """A member leaves the team (careplan keeps their record, inactive, and their contributions). One
    member leaves once, however often the button is pressed (one idempotency key per member)."""
    path = f"/v1/patients/{patient_id}/care-team/{member_id}"
    key = action_key("care-team-remove", str(member_id))
    return await act_on_patient(
        request,
        session,
        "care-team:change",
        "Changing the care team is",
        lambda: services.delete("careplan", path, idempotency_key=key),
        (patient_id, "care-team"),
        ("member-removed", 404, "member-not-active"),
    )


@router.get("/patients/{patient_id}/care-team/new")
async def new_member(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    entered = {"name": "", "relationship": "", "role": "", "contact": ""}
    return await _member_form(request, services, patient_id, entered, new_form_key())


@router.post("/patients/{patient_id}/care-team")
async def add_member(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    entered: Member,
) -> Response:
    error = _member_checks(entered)
    if error is None:
        body = _as_sent(entered)
        path = f"/v1/patients/{patient_id}/care-team"
        _, error = await send(
            services.post("careplan", path, body, idempotency_key=form_key), shown=(404, 409, 422)
        )
        if error is None:
            return redirect(patient_url(patient_id, "member-added", "care-team"))
        if error.status == 404:
            error.message = NO_PLAN
    return await _member_form(request, services, patient_id, entered, form_key, error)


@router.get("/patients/{patient_id}/care-team/{member_id}/edit")
async def edit_member(
    request: Request,
    patient_id: uuid.UUID,
    member_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    member = await _member(services, patient_id, member_id)
    entered = {k: member.get(k) or "" for k in MEMBER_FIELDS} | {"role": words(member["role"])}
    shown = json.dumps({k: member.get(k) for k in MEMBER_FIELDS})
    return await _member_form(
        request, services, patient_id, entered, new_form_key(), member=member, shown=shown
    )


@router.post("/patients/{patient_id}/care-team/{member_id}")
async def change_member(
    request: Request,
    patient_id: uuid.UUID,
    member_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    entered: Member,
    shown: Text = "",
) -> Response:
    """Change what the person changed of the member as the form showed them (``shown``; careplan's
    ``PATCH`` with those fields only: a colleague's change meanwhile to another field stays)."""
    member = await _member(services, patient_id, member_id)
    before = _shown_of(shown)
    if before is None:
        return error_page(request, 422, "That could not be done", "Open the member's form again and retry.")
    error = _member_checks(entered)
    if error is None:
        changes = {k: v for k, v in _as_sent(entered).items() if v != before[k]}
        if not changes:
            return redirect(patient_url(patient_id, "details-unchanged", "care-team"))
        path = f"/v1/patients/{patient_id}/care-team/{member_id}"
        sent = services.patch("careplan", path, changes, idempotency_key=form_key)
        _, error = await send(sent, shown=(404, 409, 422))
        if error is None:
            return redirect(patient_url(patient_id, "member-changed", "care-team"))
    return await _member_form(
        request, services, patient_id, entered, form_key, error, member=member, shown=shown
    )


def _as_sent(entered: dict[str, str]) -> dict[str, str | None]:
    """A member as careplan keeps them: the role as a code, no contact for a blank one."""
    return {
        "name": entered["name"].strip(),
        "relationship": entered["relationship"],
        "role": as_code(entered["role"]),
        "contact": none_if_blank(entered["contact"]),
    }


def _shown_of(text: str) -> dict[str, Any] | None:
    """The member as the form showed them, or None when what came back is not that."""
    try:
        shown = json.loads(text)
    except ValueError:
        return None
    if not isinstance(shown, dict) or set(shown) != set(MEMBER_FIELDS):
        return None
    return shown if all(v is None or isinstance(v, str) for v in shown.values()) else None


async def _member(services: Services, patient_id: uuid.UUID, member_id: uuid.UUID) -> dict[str, Any]:
    """The member on the patient's care team now (one not on it answers as one that does not exist)."""
    team = await services.get("careplan", f"/v1/patients/{patient_id}/care-team")
    found = next((m for m in team if m["id"] == str(member_id) and m.get("status") == "active"), None)
    if found is None:
        raise not_found("careplan")
    member: dict[str, Any] = found
    return member


def _member_checks(entered: dict[str, str]) -> FormError | None:
    """What is wrong with a member's name, relationship and role as typed, or None."""
    name, relationship, role = entered["name"], entered["relationship"], entered["role"]
    check = Checks()
    check.need("name", name.strip(), "Enter the member's name.")
    if relationship not in form_choices().care_team_relationships:
        check.fail("relationship", "Choose how they are related to the patient.")
    if check.need("role", role.strip(), "Enter their role in the patient's care, such as primary support."):
        check.match(
            "role",
            as_code(role),
            r"[a-z][a-z0-9-]{1,63}",
            "A role in a few plain words: letters, digits, dashes.",
        )
    return check.error()


def as_code(words_typed: str) -> str:
    """``Primary support`` -> ``primary-support``: the code careplan keeps a role as."""
    return re.sub(r"[\s_]+", "-", words_typed.strip().lower())


async def _member_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    entered: dict[str, str],
    key: str,
    error: FormError | None = None,
    *,
    member: dict[str, Any] | None = None,
    shown: str = "",
) -> Response:
    """The form to add a member, or to change ``member`` (``shown``: as the form first showed them)."""
    choices = form_choices()
    context = {
        "title": "Change a care-team member" if member else "Add a care-team member",
        "member": member,
        "shown": shown,
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "entered": entered,
        "relationships": [(r, words(r)) for r in choices.care_team_relationships],
        "roles": [words(r) for r in choices.care_team_roles],
        "form_key": key,
        "error": error,
    }
    return render(request, "care_team_new.html", context, status_code=error.status if error else 200)
