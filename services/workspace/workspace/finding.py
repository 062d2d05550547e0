"""Finding a patient of the agency by the whole name and birth date, as a front desk asks: intake's
``POST /v1/patients/search``, which matches them as registration matches a likely duplicate. The form posts,
so the name and birth date are never in a URL, the browser's history or an access log; the answer is a page
of its own, not a redirect carrying them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workspace.forms import Checks, FormError, Text, send
from workspace.gates import not_available
from workspace.pages import may
from workspace.registration import check_who
from workspace.web import CallServices, SignedInSession, render

router = APIRouter()

FINDS = "patient:read"  # whoever may read a patient's details may look one up


@router.get("/patients/find")
async def find_form(request: Request, session: SignedInSession) -> Response:
    assert session.person is not None
    if not may(session.person, FINDS):
        return not_available(request, "Finding patients is")
    return _page(request, session, {}, None)


@router.post("/patients/find")
async def find_patient(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    given_name: Text = "",
    family_name: Text = "",
    birth_date: Text = "",
) -> Response:
    assert session.person is not None
    if not may(session.person, FINDS):
        return not_available(request, "Finding patients is")
    entered = {"given_name": given_name, "family_name": family_name, "birth_date": birth_date}
    check = Checks()
    check_who(request, check, given_name, family_name, birth_date)
    error = check.error()
    if error is not None:
        return _page(request, session, entered, None, error)
    body = {"given_name": given_name.strip(), "family_name": family_name.strip(), "birth_date": birth_date}
    found, error = await send(services.post("intake", "/v1/patients/search", body), shown=(422,))
    return _page(request, session, entered, found["items"] if found else None, error)


def _page(
    request: Request,
    session: SignedInSession,
    entered: dict[str, str],
    found: list[dict[str, object]] | None,
    error: FormError | None = None,
) -> Response:
    assert session.person is not None
    context = {
        "title": "Find a patient",
        "active": "find",
        "entered": entered,
        "error": error,
        "found": found,
        "names": {str(p["id"]): f"{p['given_name']} {p['family_name']}" for p in found or []},
        "may_register": may(session.person, "patient:register"),
    }
    return render(request, "patient_find.html", context, status_code=error.status if error else 200)
