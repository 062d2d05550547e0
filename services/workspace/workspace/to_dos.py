"""Adding a to-do about the patient for oneself or for the patient's care manager (followup ``POST
/v1/tasks``: what for, how pressing, due when, for whom): it joins the task list, on My day and the patient's
open tasks, and is done or cancelled like any task. Purposes and priorities are followup's task rules'
(``to_do``); followup checks them again, and refuses one for a care manager the patient does not have.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Services
from workspace.forms import Checks, Code, FormError, FormKey, new_form_key, patient_name, send
from workspace.gates import not_available
from workspace.notices import patient_url
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, redirect, render, words, workspace_of

router = APIRouter()

WORKS_TASKS = "task:change"
FOR_WHOM = {"me": "Me", "care-manager": "Their care manager"}
_END_OF_DAY = time(17)  # a to-do due on a day is due by the end of its working day, in the workspace's zone


@router.get("/patients/{patient_id}/tasks/new")
async def to_do_page(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    assert session.person is not None
    if not may(session.person, WORKS_TASKS):
        return not_available(request, "Adding a to-do is")
    entered = {"purpose": "", "priority": "routine", "due_on": "", "for_whom": "me"}
    return await _to_do_form(request, services, patient_id, entered, new_form_key())


@router.post("/patients/{patient_id}/tasks")
async def add_to_do(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    purpose: Code = "",
    priority: Code = "",
    due_on: Code = "",
    for_whom: Code = "me",
) -> Response:
    assert session.person is not None
    if not may(session.person, WORKS_TASKS):
        return not_available(request, "Adding a to-do is")
    ctx = workspace_of(request).ctx
    offered = form_choices().to_do
    entered = {"purpose": purpose, "priority": priority, "due_on": due_on, "for_whom": for_whom}
    check = Checks()
    if purpose not in offered.purposes:
        check.fail("purpose", "Choose what the to-do is for.")
    if priority not in offered.priorities:
        check.fail("priority", "Choose how pressing it is.")
    if for_whom not in FOR_WHOM:
        check.fail("for_whom", "Choose whom it is for.")
    day = None
    if check.need("due_on", due_on, "Choose the day it is due."):
        day = check.day("due_on", due_on, "Enter a date, such as 2027-03-01.")
    today = ctx.today()
    if day is not None and not today <= day <= today + timedelta(days=offered.furthest_days):
        check.fail("due_on", f"Choose a day from today to {offered.furthest_days:g} days ahead.")
    error = check.error()
    if error is None and day is not None:
        due_at = max(datetime.combine(day, _END_OF_DAY, ctx.zone), ctx.clock() + timedelta(hours=1))
        body = {
            "patient_id": str(patient_id),
            "purpose": purpose,
            "priority": priority,
            "due_at": due_at.isoformat(),
            "for_care_manager": for_whom == "care-manager",
        }
        call = services.post("followup", "/v1/tasks", body, idempotency_key=form_key)
        _, error = await send(call, renamed={"due_at": "due_on"}, shown=(404, 409, 410, 422))
        if error is None:
            added = "to-do-added-for-care-manager" if body["for_care_manager"] else "to-do-added"
            return redirect(patient_url(patient_id, added, "tasks"))
    return await _to_do_form(request, services, patient_id, entered, form_key, error)


async def _to_do_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    entered: dict[str, str],
    key: str,
    error: FormError | None = None,
) -> Response:
    offered = form_choices().to_do
    context = {
        "title": "Add a to-do",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "purposes": [(p, words(p)) for p in offered.purposes],
        "priorities": [(p, words(p)) for p in offered.priorities],
        "for_whom": list(FOR_WHOM.items()),
        "zone": workspace_of(request).ctx.settings.time_zone,
        "entered": entered,
        "form_key": key,
        "error": error,
    }
    return render(request, "to_do_new.html", context, status_code=error.status if error else 200)
