"""Referring by hand: for an intervention of the plan, search the directory (referral's ``GET
/v1/services``: need, program category, language, postal code) and refer the patient to the program
chosen (``POST /v1/referrals``), which replaces an open automatic referral for that intervention. And
withdrawing a referral the agency made (``POST /v1/referrals/{id}/status``, cancelled with a coded reason:
the patient declined, the need was resolved...), which the receiving agency is told of and the plan shows.

The search starts from the intervention's need and category and the patient's language and postal
code, read on the server: a postal code never travels in a URL, so searches are POST bodies.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspace.choices import form_choices
from workspace.client import Listing, ServiceError, Services, not_found
from workspace.codes import WITHDRAW_REASONS, WITHDRAWABLE
from workspace.forms import (
    Checks,
    Code,
    FormError,
    FormKey,
    Text,
    current_plan,
    new_form_key,
    none_if_blank,
    patient_name,
    send,
)
from workspace.notices import patient_url
from workspace.web import CallServices, SignedInSession, redirect, render, words, workspace_of

router = APIRouter()

CODE = r"[a-z][a-z0-9-]{0,63}"
LANGUAGE = r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*"
POSTAL_CODE = r"[A-Za-z0-9][A-Za-z0-9 \-]{1,11}"
OPEN = frozenset({"draft", "requested", "accepted", "in-progress", "on-hold"})


@router.get("/patients/{patient_id}/interventions/{intervention_id}/referral")
async def referral_page(
    request: Request,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    """The intervention, its referrals so far, and the programs a first search finds."""
    patient, intervention = await _patient_and_intervention(services, patient_id, intervention_id)
    search = _first_search(patient, intervention)
    return await _page(request, services, patient_id, intervention, patient, search, 0, new_form_key())


@router.post("/patients/{patient_id}/interventions/{intervention_id}/referral/search")
async def search_directory(
    request: Request,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    need: Code = "",
    program_category: Code = "",
    language: Code = "",
    postal_code: Code = "",
    capacity: Code = "",
    offset: Annotated[int, Form(ge=0, le=100_000)] = 0,
) -> Response:
    patient, intervention = await _patient_and_intervention(services, patient_id, intervention_id)
    search = {
        "need": need,
        "program_category": program_category,
        "language": language,
        "postal_code": postal_code.strip(),
        "capacity": capacity,
    }
    check = Checks()
    check.match("need", need, CODE, "Choose a need from the list.")
    check.match("program_category", program_category, CODE, "Choose a program category from the list.")
    check.match("language", language, LANGUAGE, "A language code, such as es.")
    check.match(
        "postal_code", search["postal_code"], POSTAL_CODE, "A postal code: 2 to 12 letters or digits."
    )
    error = check.error()
    return await _page(
        request,
        services,
        patient_id,
        intervention,
        patient,
        search,
        offset,
        form_key,
        error,
        search=error is None,
    )


@router.post("/patients/{patient_id}/interventions/{intervention_id}/referral")
async def make_referral(
    request: Request,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    service_id: Code = "",
    priority: Code = "",
    note: Text = "",
) -> Response:
    check = Checks()
    check.need("service_id", service_id, "Choose the program to refer the patient to.")
    if priority and priority not in form_choices().referral_priorities:
        check.fail("priority", "Choose a priority from the list.")
    error = check.error()
    if error is None:
        body: dict[str, Any] = {
            "patient_id": str(patient_id),
            "intervention_id": str(intervention_id),
            "service_id": service_id,
            "priority": priority or None,
            "note": none_if_blank(note),
        }
        made, error = await send(services.post("referral", "/v1/referrals", body, idempotency_key=form_key))
        if error is None:
            assert made is not None
            waits = made.get("status") == "draft"
            return redirect(
                patient_url(
                    patient_id, "referral-waits-for-consent" if waits else "referral-made", "referrals"
                )
            )
    patient, intervention = await _patient_and_intervention(services, patient_id, intervention_id)
    search = _first_search(patient, intervention)
    entered = {"service_id": service_id, "priority": priority, "note": note}
    return await _page(
        request, services, patient_id, intervention, patient, search, 0, form_key, error, entered
    )


def _first_search(patient: dict[str, Any] | None, intervention: dict[str, Any] | None) -> dict[str, str]:
    """The intervention's need and category, the patient's language and postal code."""
    return {
        "need": (intervention or {}).get("need", ""),
        "program_category": (intervention or {}).get("program_category") or "",
        "language": (patient or {}).get("preferred_language") or "",
        "postal_code": (patient or {}).get("postal_code") or "",
        "capacity": "",
    }


async def _patient_and_intervention(
    services: Services, patient_id: uuid.UUID, intervention_id: uuid.UUID
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    plan = await current_plan(services, patient_id)
    found = [
        i
        for i in (plan or {}).get("document", {}).get("interventions", [])
        if i["id"] == str(intervention_id)
    ]
    try:
        patient = await services.get("intake", f"/v1/patients/{patient_id}")
    except ServiceError as exc:
        if exc.status == 401:
            raise
        patient = None
    return patient, found[0] if found else None


async def _page(
    request: Request,
    services: Services,
    patient_id: uuid.UUID,
    intervention: dict[str, Any] | None,
    patient: dict[str, Any] | None,
    searched: dict[str, str],
    offset: int,
    key: str,
    error: FormError | None = None,
    entered: dict[str, str] | None = None,
    *,
    search: bool = True,
) -> Response:
    """``search``: look the programs up (not when the search's own fields need correcting)."""
    size = workspace_of(request).ctx.settings.page_size
    programs = Listing([], offset, size)
    referrals: list[dict[str, Any]] = []
    if intervention is not None:
        if search:
            params = {k: v or None for k, v in searched.items()}
            programs = await services.page("referral", "/v1/services", offset=offset, limit=size, **params)
        listed = await services.page("referral", "/v1/referrals", limit=50, patient_id=str(patient_id))
        referrals = [r for r in listed.items if r["intervention_id"] == intervention["id"]]
    choices = form_choices()
    context = {
        "title": "Refer by hand",
        "patient_id": patient_id,
        "name": f"{patient['given_name']} {patient['family_name']}" if patient else None,
        "intervention": intervention,
        "referrals": referrals,
        "open_referral": next((r for r in referrals if r["status"] in OPEN), None),
        "search": searched,
        "programs": programs,
        "needs": [(n, words(n)) for n in choices.needs],
        "categories": [(c, words(c)) for c in choices.program_categories],
        "languages": list(choices.languages.items()),
        "priorities": [(p, words(p)) for p in choices.referral_priorities],
        "entered": entered or {"service_id": "", "priority": "", "note": ""},
        "form_key": key,
        "error": error,
    }
    return render(request, "referral_new.html", context, status_code=error.status if error else 200)


@router.get("/patients/{patient_id}/referrals/{referral_id}/withdraw")
async def withdraw_page(
    request: Request,
    patient_id: uuid.UUID,
    referral_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
) -> Response:
    entered = {"reason": "", "note": ""}
    return await _withdraw_form(request, services, session, patient_id, referral_id, entered, new_form_key())


@router.post("/patients/{patient_id}/referrals/{referral_id}/withdraw")
async def withdraw(
    request: Request,
    patient_id: uuid.UUID,
    referral_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    form_key: FormKey,
    reason: Code = "",
    note: Text = "",
) -> Response:
    """Cancel the referral as the agency that made it; the service checks the move (a referral the
    receiving agency closed meanwhile is a 409, said on the form)."""
    await _referral_of(services, session, patient_id, referral_id)
    check = Checks()
    if reason not in WITHDRAW_REASONS:
        check.fail("reason", "Choose why the referral is withdrawn.")
    error = check.error()
    if error is None:
        body = {"status": "cancelled", "reason": reason, "note": none_if_blank(note)}
        path = f"/v1/referrals/{referral_id}/status"
        _, error = await send(services.post("referral", path, body, idempotency_key=form_key))
        if error is None:
            return redirect(patient_url(patient_id, "referral-withdrawn", "referrals"))
    entered = {"reason": reason, "note": note}
    return await _withdraw_form(request, services, session, patient_id, referral_id, entered, form_key, error)


async def _withdraw_form(
    request: Request,
    services: Services,
    session: SignedInSession,
    patient_id: uuid.UUID,
    referral_id: uuid.UUID,
    entered: dict[str, str],
    key: str,
    error: FormError | None = None,
) -> Response:
    referral = await _referral_of(services, session, patient_id, referral_id)
    context = {
        "title": "Withdraw a referral",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "referral": referral,
        "open": referral["status"] in WITHDRAWABLE,
        "reasons": list(WITHDRAW_REASONS.items()),
        "entered": entered,
        "form_key": key,
        "error": error,
    }
    return render(request, "referral_withdraw.html", context, status_code=error.status if error else 200)


async def _referral_of(
    services: Services, session: SignedInSession, patient_id: uuid.UUID, referral_id: uuid.UUID
) -> dict[str, Any]:
    """The referral, if it is this patient's and the person's agency made it: another patient's, or one
    sent to the agency (a receiving agency answers from its inbox), answers as one that does not exist."""
    assert session.person is not None
    referral: dict[str, Any] = await services.get("referral", f"/v1/referrals/{referral_id}")
    mine = referral.get("referring_agency_id") == session.person.agency_id
    if referral["patient_id"] != str(patient_id) or not mine:
        raise not_found("referral")
    return referral
