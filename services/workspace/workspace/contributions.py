"""What a care-team member contributes to the plan (careplan ``POST .../care-plan/contributions``, naming the
plan version the person saw): a note, a goal they agreed, a preference, a need they raised that no
screening found (``stated-need``: the plan library's goal and interventions for it join the plan, as for an
assessed need; the needs offered are the library's; ``need-withdrawn`` takes one raised so out again when it
is no longer theirs), or a goal the patient set in their own words (``personal-goal``: the words kept sealed
in careplan, due on a day chosen here or the library's default)."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import ServiceError, Services
from workspace.forms import (
    Checks,
    Code,
    FormError,
    FormKey,
    Text,
    current_plan,
    new_form_key,
    patient_name,
    send,
    stale_message,
)
from workspace.notices import patient_url
from workspace.own_words import goal_words
from workspace.web import CallServices, SignedInSession, redirect, render, words, workspace_of

router = APIRouter()

KINDS = {
    "note": "A note",
    "agreed-goal": "A goal they agreed",
    "preference": "A preference",
    "stated-need": "A need they raised",
    "need-withdrawn": "No longer a need for them",
    "personal-goal": "A goal in their own words",
    "goal-reworded": "Their goal in new words",
}
# The kinds about a need raised with the care team, and what to ask when the need is missing.
RAISED = {
    "stated-need": "Choose the need they raised.",
    "need-withdrawn": "Choose the need that is no longer theirs.",
}
_NOON = time(12)  # a goal due on a day is due at noon of it, in the workspace's zone


@router.get("/patients/{patient_id}/contributions/new")
async def new_contribution(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    entered = {
        k: ""
        for k in (
            "member_id",
            "kind",
            "note",
            "goal_id",
            "preferred_language",
            "contact_preference",
            "need",
            "due",
        )
    }
    return await _contribution_form(request, services, patient_id, entered, None, new_form_key())


@router.post("/patients/{patient_id}/contributions")
async def record_contribution(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    expected_version: Annotated[int, Form(ge=1, le=1_000_000)],
    member_id: Code = "",
    kind: Code = "",
    note: Text = "",
    goal_id: Code = "",
    preferred_language: Code = "",
    contact_preference: Code = "",
    need: Code = "",
    due: Code = "",
) -> Response:
    ctx = workspace_of(request).ctx
    entered = {
        "member_id": member_id,
        "kind": kind,
        "note": note,
        "goal_id": goal_id,
        "preferred_language": preferred_language,
        "contact_preference": contact_preference,
        "need": need,
        "due": due,
    }
    check = Checks()
    check.need("member_id", member_id, "Choose the care-team member it comes from.")
    if kind not in KINDS:
        check.fail("kind", "Choose what they contribute.")
    if kind == "note":
        check.need("note", note.strip(), "Write the note.")
    if kind == "goal-reworded":
        check.need("goal_id", goal_id, "Choose the goal in their own words to put anew.")
        check.need("note", note.strip(), "Write the goal as they put it now.")
    if kind == "personal-goal":
        check.need("note", note.strip(), "Write the goal as they put it.")
        if need and need not in form_choices().stated_needs:
            check.fail("need", "Choose one of the needs, or none.")
    due_on = check.day("due", due, "Enter a date, such as 2027-03-01.") if kind == "personal-goal" else None
    if due_on is not None and due_on <= ctx.today():
        check.fail("due", "Choose a day after today.")
    if kind == "agreed-goal":
        check.need("goal_id", goal_id, "Choose the goal they agreed.")
    if kind == "preference" and not (preferred_language or contact_preference):
        check.fail("preferred_language", "Choose a language or a way of contact they prefer.")
    if kind in RAISED and need not in form_choices().stated_needs:
        check.fail("need", RAISED[kind])
    error = check.error()
    if error is None:
        body: dict[str, Any] = {"member_id": member_id, "kind": kind, "expected_version": expected_version}
        if kind == "note":
            body["note"] = note.strip()
        elif kind == "agreed-goal":
            body["goal_id"] = goal_id
        elif kind == "goal-reworded":
            body |= {"goal_id": goal_id, "note": note.strip()}
        elif kind in RAISED:
            body["need"] = need
        elif kind == "personal-goal":
            body |= {"note": note.strip(), "need": need or None}
            if due_on is not None:
                body["due"] = datetime.combine(due_on, _NOON, ctx.zone).isoformat()
        else:
            preference = {"preferred_language": preferred_language, "contact_preference": contact_preference}
            body["preference"] = {k: v for k, v in preference.items() if v}
        path = f"/v1/patients/{patient_id}/care-plan/contributions"
        call = services.post("careplan", path, body, idempotency_key=form_key)
        _, error = await send(call, {"preference": "preferred_language"}, shown=(404, 409, 422))
        if error is None:
            return redirect(patient_url(patient_id, "contribution-recorded", "care-team"))
        if error.status == 404:
            error.message = "That care-team member or plan was not found; reload the patient's page."
        stale_message(error, expected_version)
    return await _contribution_form(request, services, patient_id, entered, expected_version, form_key, error)


async def _contribution_form(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    entered: dict[str, str],
    expected_version: int | None,
    key: str,
    error: FormError | None = None,
) -> Response:
    plan = await current_plan(services, patient_id)
    team: list[dict[str, Any]] = []
    if plan is not None:
        try:
            team = await services.get("careplan", f"/v1/patients/{patient_id}/care-team")
        except ServiceError as exc:
            if exc.status != 404:
                raise
    choices = form_choices()
    document = (plan or {}).get("document", {})
    own = await goal_words(services, f"/v1/patients/{patient_id}", document)
    context = {
        "title": "Record a contribution",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "plan": plan,
        "expected_version": expected_version or (plan or {}).get("version"),
        "members": [
            (m["id"], f"{m['name']} ({words(m['relationship']).lower()}, {words(m['role']).lower()})")
            for m in team
            if m.get("status") == "active"
        ],
        "kinds": list(KINDS.items()),
        "goals": [(g["id"], _goal_label(g, own)) for g in document.get("goals", [])],
        "languages": list(choices.languages.items()),
        "preferences": [(p, words(p)) for p in choices.contact_preferences],
        "needs": [(n, words(n)) for n in choices.stated_needs],
        "entered": entered,
        "form_key": key,
        "error": error,
    }
    return render(request, "contribution_new.html", context, status_code=error.status if error else 200)


def _goal_label(goal: dict[str, Any], own: dict[str, str]) -> str:
    """A goal as the form offers it: one in the patient's own words by its words, when careplan gave them."""
    said = own.get(str(goal["id"]))
    described = f"“{said}”" if said else words(goal["description"])
    return f"{described} ({words(goal['need']).lower()})"
