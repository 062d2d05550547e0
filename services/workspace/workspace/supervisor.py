"""The supervisor's team page: caseloads per care manager, the tasks that need attention (escalated or
overdue), follow-ups due and overdue, and reassigning a patient to another care manager.

Calls: followup ``GET /v1/caseload/agency``, ``GET /v1/tasks?status=active`` (a supervisor sees the
agency's), ``GET /v1/work-queue``; intake ``GET /v1/patients/{id}`` and
``POST /v1/patients/{id}/care-manager``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from workspace.client import Listing, ServiceError, Services
from workspace.codes import REASSIGNMENT_REASONS
from workspace.forms import FormKey, new_form_key
from workspace.gates import may_any, not_available, supervisor_tabs
from workspace.notices import notice_text
from workspace.pages import may, names_of
from workspace.sessions import Person
from workspace.web import CallServices, SignedInSession, redirect, render, workspace_of

router = APIRouter()

Offset = Annotated[int, Query(ge=0, le=100_000)]
SUPERVISOR_PAGES = ("caseload:read-agency", "network-gap:read", "prospect:read")
# followup lists tasks by priority and due time with no overdue or escalated filter: the page reads the
# agency's active tasks this many at a time, up to this many pages, and keeps those needing attention.
SCAN_PAGE, SCAN_PAGES = 200, 5
_STAFF_LIST = 200  # care managers offered by name in the reassignment form


@router.get("/supervisor")
async def team(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    caseload: Offset = 0,
    tasks: Offset = 0,
    queue: Offset = 0,
) -> Response:
    """Caseloads per care manager, escalated and overdue tasks, follow-ups due and overdue."""
    person = session.person
    assert person is not None
    if not may_any(person, SUPERVISOR_PAGES):
        return not_available(request, "The supervisor's pages are")
    if not may(person, "caseload:read-agency"):
        return redirect("/supervisor/network")  # an admin or analyst: the network pages only
    ctx = workspace_of(request).ctx
    size = ctx.settings.page_size
    empty = Listing([], limit=size)

    async def queue_page() -> Listing:
        if not may(person, "follow-up:read"):
            return empty
        return await services.page("followup", "/v1/work-queue", offset=queue, limit=size)

    async def attention() -> tuple[Listing, bool]:
        if not may(person, "task:read"):
            return empty, False
        return await needing_attention(services, ctx.clock(), tasks, size)

    loads, (urgent, capped), due = await asyncio.gather(
        services.page("followup", "/v1/caseload/agency", offset=caseload, limit=size),
        attention(),
        queue_page(),
    )
    context = {
        "title": "Supervisor: your team",
        "notice": notice_text(request),
        "loads": loads,
        "attention": urgent,
        "capped": capped,
        "scanned": SCAN_PAGE * SCAN_PAGES,
        "due": due,
        "names": await names_of(services, person, urgent, due),
        "shows": {p: may(person, p) for p in ("task:read", "follow-up:read", "patient:assign", "audit:read")},
        "tab": "team",
        "tabs": supervisor_tabs(person),
    }
    return render(request, "supervisor.html", context)


async def needing_attention(
    services: Services, now: datetime, offset: int, size: int
) -> tuple[Listing, bool]:
    """The agency's open tasks that were escalated or are past due: escalated first, then as followup
    orders them (most pressing priority, then the earliest due). Also whether the scan stopped early."""
    found: list[dict[str, Any]] = []
    at, capped = 0, True
    for _ in range(SCAN_PAGES):
        page = await services.page("followup", "/v1/tasks", offset=at, limit=SCAN_PAGE, status="active")
        if page.error is not None:
            return Listing([], offset, size, None, page.error), False
        found += [t for t in page.items if t.get("escalated_at") or _before(t.get("due_at"), now)]
        if page.next_offset is None:
            capped = False
            break
        at = page.next_offset
    found.sort(key=lambda t: t.get("escalated_at") is None)  # stable: the service's order within each
    more = offset + size if len(found) > offset + size else None
    return Listing(found[offset : offset + size], offset, size, more), capped


def _before(value: Any, now: datetime) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value) < now
    except ValueError:
        return False


@router.get("/supervisor/patients/{patient_id}/care-manager")
async def reassignment_form(
    request: Request, patient_id: uuid.UUID, session: SignedInSession, services: CallServices
) -> Response:
    assert session.person is not None
    if not may(session.person, "patient:assign"):
        return not_available(request, "Reassigning patients is")
    return await _reassignment_page(request, session.person, services, patient_id, {"key": new_form_key()})


@router.post("/supervisor/patients/{patient_id}/care-manager")
async def reassign(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    idempotency_key: FormKey,
    care_manager_id: Annotated[str, Form(max_length=255)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Make another care manager responsible (intake moves the patient's open tasks with them)."""
    assert session.person is not None
    if not may(session.person, "patient:assign"):
        return not_available(request, "Reassigning patients is")
    entered = {"key": idempotency_key, "care_manager_id": care_manager_id.strip(), "reason": reason}
    if not entered["care_manager_id"]:
        problems = {"care_manager_id": ["Name the care manager who will be responsible (their staff id)."]}
        return await _reassignment_page(request, session.person, services, patient_id, entered, problems)
    body = {"care_manager_id": entered["care_manager_id"], "reason": reason or None}
    path = f"/v1/patients/{patient_id}/care-manager"
    try:
        await services.post("intake", path, body, idempotency_key=idempotency_key)
    except ServiceError as exc:
        if exc.status not in (409, 422):
            raise
        problems = {name: exc.for_field(name) for name in ("care_manager_id", "reason")}
        return await _reassignment_page(
            request, session.person, services, patient_id, entered, problems, exc.message, exc.status
        )
    return redirect("/supervisor?notice=reassigned")


async def care_managers(services: Services) -> list[str]:
    """The agency's care managers with a caseload, by id, as followup knows them: what a form offers."""
    staff = await services.page("followup", "/v1/caseload/agency", limit=_STAFF_LIST)
    return sorted({s["care_manager_id"] for s in staff.items if s.get("care_manager_id")})


async def _reassignment_page(
    request: Request,
    person: Person,
    services: Services,
    patient_id: uuid.UUID,
    entered: dict[str, str],
    problems: dict[str, list[str]] | None = None,
    error: str | None = None,
    code: int = 422,
) -> Response:
    patient, offered = await asyncio.gather(
        services.get("intake", f"/v1/patients/{patient_id}"),  # 404: not a patient of this agency
        care_managers(services),
    )
    context = {
        "title": "Reassign a patient",
        "patient": patient,
        "care_managers": offered,
        "reasons": list(REASSIGNMENT_REASONS.items()),
        "entered": entered,
        "problems": problems or {},
        "error": error,
        "tab": "team",
        "tabs": supervisor_tabs(person),
    }
    return render(request, "reassign.html", context, status_code=code if problems or error else 200)
