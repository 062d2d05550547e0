"""Recording an assessment: the questionnaire is drawn from intake's own definition of the instrument
(``GET /v1/instruments/{id}?language=``: items, their words, the answers), so a new or changed instrument
needs no change here. One answer: radio buttons; several: checkboxes, with the answers that stand alone
said so. The answers go to intake (``POST /v1/patients/{id}/assessments``), keyed by item code."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from workspace.client import Problem, ServiceError, Services, readable
from workspace.forms import FormError, FormKey, new_form_key, send
from workspace.notices import patient_url
from workspace.web import CallServices, SignedInSession, redirect, render

router = APIRouter()

Instrument = Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,49}$")]
ITEM = "item-"  # a question's field: item-<LOINC code>


@router.get("/patients/{patient_id}/assessments/new")
async def new_assessment(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    instrument: Instrument | None = None,
) -> Response:
    """Which instrument (intake's list), then its questionnaire."""
    patient = await _patient(services, patient_id)
    language = (patient or {}).get("preferred_language", "en")
    context: dict[str, Any] = {"patient_id": patient_id, "name": _name(patient)}
    if instrument is None:
        instruments = await services.get("intake", "/v1/instruments", {"language": language})
        context |= {"title": "Record an assessment", "instruments": instruments}
        return render(request, "assessment_choose.html", context)
    questionnaire = await services.get("intake", f"/v1/instruments/{instrument}", {"language": language})
    return _questionnaire(request, context, questionnaire, {}, new_form_key())


@router.post("/patients/{patient_id}/assessments")
async def record_assessment(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    instrument: Annotated[str, Form(pattern=r"^[a-z0-9][a-z0-9-]{0,49}$")],
) -> Response:
    patient = await _patient(services, patient_id)
    language = (patient or {}).get("preferred_language", "en")
    questionnaire = await services.get("intake", f"/v1/instruments/{instrument}", {"language": language})
    form = await request.form()
    chosen = {
        item["code"]: [str(v) for v in form.getlist(ITEM + item["code"])] for item in questionnaire["items"]
    }
    answers, problems = answers_of(questionnaire, chosen)
    error = FormError("Some questions need an answer.", problems) if problems else None
    if error is None:
        body = {"instrument": instrument, "answers": answers}
        path = f"/v1/patients/{patient_id}/assessments"
        _, error = await send(services.post("intake", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "assessment-recorded"))
        error.problems = [_on_item(p) for p in error.problems]
    context = {"patient_id": patient_id, "name": _name(patient)}
    return _questionnaire(request, context, questionnaire, chosen, form_key, error)


def answers_of(
    questionnaire: dict[str, Any], chosen: dict[str, list[str]]
) -> tuple[dict[str, Any], list[Problem]]:
    """The answers as intake takes them (a score, an answer code, or a list of codes), and the questions
    not answered as the instrument asks. Pure."""
    answers: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in questionnaire["items"]:
        code, field = item["code"], ITEM + item["code"]
        offered = {str(o["value"]): o for o in item["options"]}
        picked = [v for v in chosen.get(code, []) if v in offered]
        if not picked:
            problems.append(
                Problem(field, "Choose at least one answer." if item["multiple"] else "Choose an answer.")
            )
            continue
        alone = [offered[v]["label"] for v in picked if v in item.get("exclusive", [])]
        if item["multiple"] and alone and len(picked) > 1:
            problems.append(Problem(field, f"“{alone[0]}” stands alone: untick it or the other answers."))
            continue
        values = [offered[v]["value"] for v in picked]
        answers[code] = values if item["multiple"] else values[0]
    return answers, problems


def _on_item(problem: Problem) -> Problem:
    """intake names an answer's problem as ``answers`` / ``<item>: <why>``: beside that question."""
    if problem.field == "answers" and ": " in problem.message:
        item, why = problem.message.split(": ", 1)
        return Problem(ITEM + item.split(".")[0], readable(why).capitalize() + ".")
    return problem


def _questionnaire(
    request: Request,
    context: dict[str, Any],
    questionnaire: dict[str, Any],
    chosen: dict[str, list[str]],
    key: str,
    error: FormError | None = None,
) -> Response:
    context = {
        **context,
        "title": questionnaire["title"],
        "questionnaire": questionnaire,
        "chosen": chosen,
        "form_key": key,
        "error": error,
    }
    return render(request, "assessment_new.html", context, status_code=error.status if error else 200)


async def _patient(services: Services, patient_id: uuid.UUID) -> dict[str, Any] | None:
    try:
        patient: dict[str, Any] = await services.get("intake", f"/v1/patients/{patient_id}")
    except ServiceError as exc:
        if exc.status in (401, 404):
            raise  # no such patient here: nothing to assess
        return None
    return patient


def _name(patient: dict[str, Any] | None) -> str | None:
    return f"{patient['given_name']} {patient['family_name']}" if patient else None
