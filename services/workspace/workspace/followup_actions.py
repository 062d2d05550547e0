"""Recording a follow-up's outcome (followup ``POST /v1/follow-ups/{id}/outcome``: reached or not,
progress on the plan's goals, barriers, the next step, a note), moving a follow-up to another time
(``.../reschedule``), and working a task (``POST /v1/tasks/{id}/status``) from My day or the patient page."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Services, not_found
from workspace.errors import error_page
from workspace.forms import (
    Checks,
    Choices,
    Code,
    FormError,
    FormKey,
    Text,
    action_key,
    current_plan,
    new_form_key,
    none_if_blank,
    patient_name,
    send,
)
from workspace.notices import patient_url
from workspace.web import CallServices, SignedInSession, redirect, render, words, workspace_of

router = APIRouter()

PROGRESS = "progress-"  # a goal's field: progress-<goal id>
OUTSTANDING = ("due", "overdue")
OPEN = ("scheduled", "due", "overdue")  # may still be moved
TASK_MOVES = {"in-progress": "task-started", "done": "task-done", "cancelled": "task-cancelled"}


@router.get("/patients/{patient_id}/follow-ups/{follow_up_id}/outcome")
async def outcome_page(
    request: Request,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    entered = {"reached": "", "next_step": "", "note": ""}
    return await _outcome_form(request, services, patient_id, follow_up_id, entered, {}, [], new_form_key())


@router.post("/patients/{patient_id}/follow-ups/{follow_up_id}/outcome")
async def record_outcome(
    request: Request,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    reached: Code = "",
    barriers: Choices = [],  # noqa: B006 (FastAPI copies a form default)
    next_step: Code = "",
    note: Text = "",
) -> Response:
    form = await request.form()
    progress = {
        str(name)[len(PROGRESS) :]: str(value)
        for name, value in form.multi_items()
        if str(name).startswith(PROGRESS) and value
    }
    entered = {"reached": reached, "next_step": next_step, "note": note}
    choices = form_choices()
    check = Checks()
    if reached not in ("yes", "no"):
        check.fail("reached", "Say whether you reached the patient.")
    for goal_id, said in progress.items():
        if said not in choices.goal_progress:
            check.fail(PROGRESS + goal_id, "Choose the progress from the list.")
    if any(b not in choices.barriers for b in barriers):
        check.fail("barriers", "Tick barriers from the list.")
    if next_step and next_step not in choices.next_steps:
        check.fail("next_step", "Choose the next step from the list.")
    error = check.error()
    if error is None:
        body = {
            "reached": reached == "yes",
            "goal_progress": [{"goal_id": g, "progress": p} for g, p in progress.items()],
            "barriers": barriers,
            "next_step": next_step or None,
            "note": none_if_blank(note),
        }
        path = f"/v1/follow-ups/{follow_up_id}/outcome"
        _, error = await send(services.post("followup", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "outcome-recorded", "follow-ups"))
    return await _outcome_form(
        request, services, patient_id, follow_up_id, entered, progress, barriers, form_key, error
    )


async def _outcome_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    entered: dict[str, str],
    progress: dict[str, str],
    barriers: list[str],
    key: str,
    error: FormError | None = None,
) -> Response:
    follow_up = await patients_follow_up(services, patient_id, follow_up_id)
    plan = await current_plan(services, patient_id)
    choices = form_choices()
    context = {
        "title": "Record a follow-up's outcome",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "follow_up": follow_up,
        "outstanding": follow_up["status"] in OUTSTANDING,
        "goals": (plan or {}).get("document", {}).get("goals", []),
        "progress_options": [(p, words(p)) for p in choices.goal_progress],
        "barrier_options": [(b, words(b)) for b in choices.barriers],
        "next_steps": [(s, words(s)) for s in choices.next_steps],
        "entered": entered,
        "progress": progress,
        "barriers": barriers,
        "form_key": key,
        "error": error,
    }
    return render(request, "follow_up_outcome.html", context, status_code=error.status if error else 200)


@router.get("/patients/{patient_id}/follow-ups/{follow_up_id}/reschedule")
async def reschedule_page(
    request: Request,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    entered = {"due_at": "", "reason": ""}
    return await _reschedule_form(request, services, patient_id, follow_up_id, entered, new_form_key())


@router.post("/patients/{patient_id}/follow-ups/{follow_up_id}/reschedule")
async def reschedule(
    request: Request,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    due_at: Code = "",
    reason: Code = "",
) -> Response:
    ctx = workspace_of(request).ctx
    entered = {"due_at": due_at, "reason": reason}
    check = Checks()
    when = check.future("due_at", due_at, ctx.zone, ctx.clock(), "Choose when the follow-up should fall due.")
    if reason not in form_choices().reschedule_reasons:
        check.fail("reason", "Choose why it moves.")
    error = check.error()
    if error is None and when is not None:
        body = {"reason": reason, "due_at": when.isoformat()}
        path = f"/v1/follow-ups/{follow_up_id}/reschedule"
        _, error = await send(services.post("followup", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "follow-up-rescheduled", "follow-ups"))
    return await _reschedule_form(request, services, patient_id, follow_up_id, entered, form_key, error)


async def _reschedule_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    follow_up_id: uuid.UUID,
    entered: dict[str, str],
    key: str,
    error: FormError | None = None,
) -> Response:
    follow_up = await patients_follow_up(services, patient_id, follow_up_id)
    context = {
        "title": "Reschedule a follow-up",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "follow_up": follow_up,
        "open": follow_up["status"] in OPEN,
        "zone": workspace_of(request).ctx.settings.time_zone,
        "reasons": [(r, words(r)) for r in form_choices().reschedule_reasons],
        "entered": entered,
        "form_key": key,
        "error": error,
    }
    return render(request, "follow_up_reschedule.html", context, status_code=error.status if error else 200)


async def patients_follow_up(
    services: Services, patient_id: uuid.UUID, follow_up_id: uuid.UUID
) -> dict[str, Any]:
    """The follow-up, if it is this patient's (another patient's answers as one that does not exist)."""
    follow_up: dict[str, Any] = await services.get("followup", f"/v1/follow-ups/{follow_up_id}")
    if follow_up["patient_id"] != str(patient_id):
        raise not_found("followup")
    return follow_up


@router.post("/tasks/{task_id}/status")
async def work_task(
    request: Request,
    task_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    status: Code = "",
    reason: Code = "",
    patient_id: Annotated[uuid.UUID | None, Form()] = None,
) -> Response:
    """Start, finish or cancel a task; back to the page it was worked from."""
    assert session.person is not None
    if status not in TASK_MOVES or (reason and reason not in form_choices().task_close_reasons):
        return error_page(request, 422, "That could not be done", "Choose what to do with the task, and why.")
    # One move of one task by one person happens once, however often the button is pressed.
    key = action_key("task", str(task_id), status, reason, session.person.subject)
    body = {"status": status, "reason": reason or None}
    await services.post("followup", f"/v1/tasks/{task_id}/status", body, idempotency_key=key)
    if patient_id is not None:
        return redirect(patient_url(patient_id, TASK_MOVES[status], "tasks"))
    return redirect(f"/?notice={TASK_MOVES[status]}")
