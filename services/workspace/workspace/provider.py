"""The provider's inbox: the referrals sent to its agency, with the minimum of each patient it may see,
and its side of the referral lifecycle: accept, reject with a coded reason, progress, complete with the
service delivered (and the enrollment), or close it as failed when the service was not provided, saying
why (domain.md 3.6: a service not obtained is a failure, not a completion).

Calls: referral ``GET /v1/referrals`` (a provider sees only those sent to its agency), ``GET
/v1/referrals/{id}``, ``POST /v1/referrals/{id}/status``; intake ``GET /v1/referred-patients/{id}`` for
the patients of open referrals only (each read is a disclosure in the patient's agency's accounting).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from workspace.client import ServiceError, Services
from workspace.codes import (
    APPOINTMENT_ANSWERED_AFTER,
    APPOINTMENT_OUTCOMES,
    APPOINTMENT_REFERRALS,
    CLOSED_REFERRAL_STATUSES,
    ENROLLMENT_STATUSES,
    FAILED_REASONS,
    HOLD_REASONS,
    OPEN_REFERRAL_STATUSES,
    PROVIDER_MOVES,
    REJECT_REASONS,
)
from workspace.forms import Code, FormKey, new_form_key
from workspace.gates import not_available
from workspace.notices import notice_text
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, redirect, render, workspace_of

router = APIRouter()

Offset = Annotated[int, Query(ge=0, le=100_000)]
INBOX = "referred-patient:read"  # a receiving agency's role: only providers have it


@router.get("/inbox")
async def inbox(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    referrals: Offset = 0,
    view: Literal["open", "closed"] = "open",
) -> Response:
    """The referrals sent to the agency that are still its to work (``view=closed``: those it is done
    with), oldest first, each with the patient when it may see them."""
    assert session.person is not None
    if not may(session.person, INBOX):
        return not_available(request, "The provider inbox is")
    size = workspace_of(request).ctx.settings.page_size
    statuses = sorted(OPEN_REFERRAL_STATUSES) if view == "open" else sorted(CLOSED_REFERRAL_STATUSES)
    listing, standing, unanswered = await asyncio.gather(
        services.page("referral", "/v1/referrals", offset=referrals, limit=size, status=statuses),
        _standing(services),
        _unanswered_appointments(services, size) if view == "open" else _nothing(),
    )
    open_ones = [r["patient_id"] for r in listing.items if r["status"] in OPEN_REFERRAL_STATUSES]
    patients = await referred_patients(services, open_ones)
    context = {
        "title": "Inbox",
        "notice": notice_text(request),
        "referrals": listing,
        "patients": patients,
        "agency": session.person.agency_id,
        "view": view,
        "standing": standing,
        "unanswered": unanswered,
    }
    return render(request, "inbox.html", context)


async def _unanswered_appointments(services: Services, size: int) -> list[dict[str, Any]]:
    """Referrals the agency completed whose booked appointment nobody has said the patient came to: done
    with, so not among the open ones, but still waiting for that answer (none shown when referral cannot
    say: the open ones are the page)."""
    listing = await services.page(
        "referral", "/v1/referrals", limit=size, status=["completed"], attendance_overdue="true"
    )
    return [r for r in listing.items if r["status"] == "completed" and r.get("attendance_overdue")]


async def _nothing() -> list[dict[str, Any]]:
    return []


async def _standing(services: Services) -> dict[str, Any] | None:
    """How the referrals sent to the agency stand (referral's summary of those received), or None when
    it cannot be read: the list is the page, the counts only its heading."""
    try:
        found: dict[str, Any] = await services.get("referral", "/v1/referrals/summary", {"side": "received"})
    except ServiceError as exc:
        if exc.status == 401:
            raise
        return None
    return found


async def referred_patients(services: Services, patient_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What the agency may see of each patient now; a patient it may not see is simply absent."""
    unique = list(dict.fromkeys(patient_ids))
    found = await asyncio.gather(*(_referred_patient(services, p) for p in unique))
    return {p: shown for p, shown in zip(unique, found, strict=True) if shown is not None}


async def _referred_patient(services: Services, patient_id: str) -> dict[str, Any] | None:
    try:
        shown: dict[str, Any] = await services.get("intake", f"/v1/referred-patients/{patient_id}")
    except ServiceError as exc:
        if exc.status in (403, 404):
            return None  # closed, not consented, or not referred here: nothing to show
        if exc.status == 401:
            raise
        return {"error": exc.message}
    return shown


@router.get("/inbox/referrals/{referral_id}")
async def referral(
    request: Request, referral_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    assert session.person is not None
    if not may(session.person, INBOX):
        return not_available(request, "The provider inbox is")
    return await referral_page(request, services, referral_id)


@router.post("/inbox/referrals/{referral_id}/status")
async def change_status(
    request: Request,
    referral_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    idempotency_key: FormKey,
    status: Code = "",
    reason: Code = "",
    enrollment_status: Code = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Move the referral as its receiving agency; the service checks the move, its reason and outcome."""
    assert session.person is not None
    if not may(session.person, INBOX):
        return not_available(request, "The provider inbox is")
    body: dict[str, Any] = {"status": status, "reason": reason or None, "note": note.strip() or None}
    if status == "completed":  # the inbox completes a referral whose service was delivered
        body["outcome"] = {"service_delivered": True, "enrollment_status": enrollment_status or None}
    path = f"/v1/referrals/{referral_id}/status"
    try:
        answer = await services.post("referral", path, body, idempotency_key=idempotency_key)
    except ServiceError as exc:
        if exc.status not in (403, 409, 422):
            raise
        entered = {
            "status": status,
            "key": idempotency_key,
            "reason": reason,
            "enrollment_status": enrollment_status,
            "note": note,
        }
        problems = {name: exc.for_field(name) for name in ("status", "reason", "outcome", "note")}
        failed = {**entered, "message": exc.message, "problems": problems, "code": exc.status}
        return await referral_page(request, services, referral_id, failed=failed)
    if status == "rejected":
        notice = "referral-rerouted" if answer.get("rerouted_to") else "referral-rejected"
        return redirect(f"/inbox?notice={notice}")
    return redirect(f"/inbox/referrals/{referral_id}?notice=referral-{status}")


async def referral_page(
    request: Request, services: Services, referral_id: uuid.UUID, *, failed: dict[str, Any] | None = None
) -> Response:
    shown = await services.get("referral", f"/v1/referrals/{referral_id}")  # 404: not sent to this agency
    patient = None
    if shown["status"] in OPEN_REFERRAL_STATUSES:
        patient = (await referred_patients(services, [shown["patient_id"]])).get(shown["patient_id"])
    moves = PROVIDER_MOVES.get(shown["status"], ())
    appointment = shown.get("appointment_status")
    context = {
        "title": "Referral",
        "notice": notice_text(request),
        "referral": shown,
        "patient": patient,
        "moves": moves,
        "keys": {move: new_form_key() for move in moves},
        "failed": failed or {},
        "reject_reasons": list(REJECT_REASONS.items()),
        "hold_reasons": list(HOLD_REASONS.items()),
        "failed_reasons": list(FAILED_REASONS.items()),
        "enrollment_statuses": list(ENROLLMENT_STATUSES.items()),
        # The appointment: kept while the agency works on the referral, one still booked answered for
        # after it completes; what may be done with it now.
        "books": shown["status"] in APPOINTMENT_REFERRALS and appointment in (None, "noshow", "cancelled"),
        "moves_booked": shown["status"] in APPOINTMENT_REFERRALS and appointment == "booked",
        "answers_booked": appointment == "booked"
        and shown["status"] in APPOINTMENT_REFERRALS | APPOINTMENT_ANSWERED_AFTER,
        "appointment_outcomes": list(APPOINTMENT_OUTCOMES.items()),
        "appointment_key": new_form_key(),
        "zone": workspace_of(request).ctx.settings.time_zone,
    }
    return render(request, "inbox_referral.html", context, status_code=failed["code"] if failed else 200)
