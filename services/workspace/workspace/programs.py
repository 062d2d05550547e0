"""Your programs: the directory's programs whose referrals the person's agency answers, and whether each
takes referrals now (referral ``GET /v1/services?receiving_agency_id=``, ``POST
/v1/services/{id}/capacity``). Matching sends a referral to a program taking referrals before one with a
waitlist, and a care manager's search for "only programs taking referrals now" leaves the others out, so
the receiving agency keeps it true here rather than rejecting referrals for no capacity.

For roles with ``directory:change`` (a provider; an administrator sees its own agency's programs here too).
Addresses carry offsets only: a program's id travels in the form's body.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from workspace.client import ServiceError, Services
from workspace.codes import CAPACITY_STATUSES
from workspace.forms import FormKey, new_form_key
from workspace.gates import not_available
from workspace.notices import notice_text
from workspace.pages import may
from workspace.sessions import Person
from workspace.web import CallServices, SignedInSession, redirect, render, workspace_of

router = APIRouter()

CHANGE = "directory:change"
Offset = Annotated[int, Query(ge=0, le=100_000)]
ProgramId = Annotated[str, Form(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")]  # a directory id, as referral takes it


@router.get("/programs")
async def programs(
    request: Request, session: SignedInSession, services: CallServices, programs: Offset = 0
) -> Response:
    assert session.person is not None
    if not may(session.person, CHANGE):
        return not_available(request, "Your programs are")
    return await _page(request, session.person, services, programs)


@router.post("/programs/capacity")
async def change_capacity(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    idempotency_key: FormKey,
    service_id: ProgramId,
    status: Annotated[str, Form(max_length=64)] = "",
    notes: Annotated[str, Form(max_length=2000)] = "",
    programs: Annotated[int, Form(ge=0, le=100_000)] = 0,
) -> Response:
    """Say whether the program takes referrals now; the service checks it is the agency's."""
    person = session.person
    assert person is not None
    if not may(person, CHANGE):
        return not_available(request, "Your programs are")
    failed: dict[str, Any] = {"id": service_id, "key": idempotency_key, "status": status, "notes": notes}
    if status not in CAPACITY_STATUSES:
        problems = {"status": ["Choose whether it takes referrals now."], "notes": []}
        failed |= {"message": None, "problems": problems, "code": 422}
        return await _page(request, person, services, programs, failed=failed)
    body = {"status": status, "notes": notes.strip() or None}
    path = f"/v1/services/{service_id}/capacity"
    try:
        await services.post("referral", path, body, idempotency_key=idempotency_key)
    except ServiceError as exc:
        if exc.status not in (403, 404, 422):
            raise
        problems = {name: exc.for_field(name) for name in ("status", "notes")}
        failed |= {"message": exc.message, "problems": problems, "code": exc.status}
        return await _page(request, person, services, programs, failed=failed)
    return redirect(f"/programs?notice=capacity-changed&programs={programs}")


async def _page(
    request: Request,
    person: Person,
    services: Services,
    offset: int,
    *,
    failed: dict[str, Any] | None = None,
) -> Response:
    size = workspace_of(request).ctx.settings.page_size
    listing = await services.page(
        "referral", "/v1/services", offset=offset, limit=size, receiving_agency_id=person.agency_id
    )
    failed = failed or {}
    elsewhere = failed and failed["id"] not in {p["id"] for p in listing.items}
    context = {
        "title": "Your programs",
        "error": f"Program {failed['id']}: {failed.get('message')}" if elsewhere else None,
        "notice": notice_text(request),
        "programs": listing,
        "offset": offset,
        "keys": {p["id"]: new_form_key() for p in listing.items},
        "statuses": list(CAPACITY_STATUSES.items()),
        "status_words": CAPACITY_STATUSES,
        "failed": failed,
        "agency": person.agency_id,
    }
    return render(request, "programs.html", context, status_code=failed["code"] if failed else 200)
