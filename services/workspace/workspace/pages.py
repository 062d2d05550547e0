"""My day (the patient page is ``patient.py``).

A page reads what it shows from the services as the signed-in person (``CallServices``), shows each list
a page at a time (``?<list>=<offset>``: offsets only, never anything about a patient), and shows a section
only to a role the permission matrix lets read it; a section a service refused or could not answer says
so in its place, and the rest of the page still shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from careloop_shared.permissions import load_matrix
from workspace.client import Listing, Services
from workspace.notices import notice_of
from workspace.sessions import Person
from workspace.web import CallServices, SignedInSession, redirect, render, workspace_of

router = APIRouter()

Offset = Annotated[int, Query(ge=0, le=100_000)]
_MOST_NAMED = 200  # intake's bound on the patients one request names


@router.get("/")
async def my_day(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    tasks: Offset = 0,
    queue: Offset = 0,
    caseload: Offset = 0,
) -> Response:
    """A care manager's day: open tasks (most pressing first), follow-ups due and overdue, caseload."""
    ctx = workspace_of(request).ctx
    person = session.person
    assert person is not None
    if not (may(person, "task:read") or may(person, "caseload:read")):
        # Not a caseload worker: their day starts on the page their role is for.
        if may(person, "referred-patient:read"):
            return redirect("/inbox")
        if may(person, "network-gap:read"):
            return redirect("/supervisor/network")
    size = ctx.settings.page_size

    async def section(permission: str, fetch: Callable[[], Awaitable[Listing]]) -> Listing:
        return await fetch() if may(person, permission) else Listing([], limit=size)

    my_tasks, due, later, patients = await asyncio.gather(
        section(
            "task:read",
            lambda: services.page(
                "followup", "/v1/tasks", offset=tasks, limit=size, assignee="me", status="open"
            ),
        ),
        section(
            "follow-up:read", lambda: services.page("followup", "/v1/work-queue", offset=queue, limit=size)
        ),
        section("follow-up:read", lambda: _due_later_today(services, ctx.clock(), ctx.zone, size)),
        section(
            "caseload:read", lambda: services.page("followup", "/v1/caseload", offset=caseload, limit=size)
        ),
    )
    context = {
        "title": "My day",
        "tasks": my_tasks,
        "due": due,
        "later": later,
        "caseload": patients,
        "names": await names_of(services, person, my_tasks, due, later, patients),
        "shows": {p: may(person, p) for p in ("task:read", "follow-up:read", "caseload:read")},
        "now": ctx.clock(),
        "may_register": may(person, "patient:register"),
        **notice_of(request),  # after a task was worked here
    }
    return render(request, "my_day.html", context)


def may(person: Person, permission: str) -> bool:
    """Whether the person's role may read or do this (the services check it again)."""
    return load_matrix().allows(person.role, permission)


async def names_of(services: Services, person: Person, *listings: Listing) -> dict[str, str]:
    """The names of the patients the listings name (by ``patient_id``), for a role that may read a
    patient's details: one request to intake, which records each as read. A patient erased, or one intake
    cannot show now, keeps their pseudonymous id on the page, and the page still shows."""
    ids = list(dict.fromkeys(str(item["patient_id"]) for listing in listings for item in listing.items))
    if not ids or not may(person, "patient:read"):
        return {}
    found = await services.page(
        "intake", "/v1/patients", limit=min(len(ids), _MOST_NAMED), id=ids[:_MOST_NAMED]
    )
    return {p["id"]: f"{p['given_name']} {p['family_name']}" for p in found.items}


async def _due_later_today(services: Services, now: datetime, zone: Any, size: int) -> Listing:
    """Scheduled follow-ups that fall due before midnight where the workspace is (soonest first)."""
    listing = await services.page("followup", "/v1/follow-ups", limit=size, status="scheduled")
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), zone)
    items = [f for f in listing.items if datetime.fromisoformat(f["due_at"]) < midnight]
    return Listing(items, 0, size, None, listing.error)
