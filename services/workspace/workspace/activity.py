"""What one person of the agency has seen: the five services' audit logs of that person as one list,
newest first (or ``?order=oldest``), for the roles that may read them (``audit:read``: supervisors).

Each service answers ``GET /v1/audit/activity?subject=`` with what that person of the caller's agency
was shown there: every read of a patient's data, every refused attempt, every search (one that found
nobody too, naming no patient). What they changed is in each patient's case record, not here. The page
asks all five at the same time and merges them as the patient's trail is merged (``access.read_logs``);
the next page carries where each log is. ``/supervisor/activity.csv`` is the whole of it as a file,
oldest first. Before a person is chosen, the page lists who the logs have seen (``/v1/audit/people``
of each service), the latest seen first. Each list may be of some days (``audit_days.Days``). The workspace
keeps nothing of it.
"""

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from workspace.access import READS, SERVICES, Offsets, Order, TooLong, asked_for, csv_download, read_logs
from workspace.audit_days import BadDays, Days
from workspace.client import Listing, ServiceError, Services
from workspace.errors import error_page, failed_call_page
from workspace.gates import not_available, supervisor_tabs
from workspace.pages import may, names_of
from workspace.supervisor import care_managers
from workspace.web import CallServices, SignedInSession, render, workspace_of

router = APIRouter()

ROUTE = "/v1/audit/activity"
PEOPLE = "/v1/audit/people"
MOST_PEOPLE = 200  # people asked of each log (a service's largest page); a log with more says so
# A token's subject, as the services' audit logs keep it: text without control characters.
PLAIN = r"^[^\x00-\x1f\x7f]*$"
PersonId = Annotated[str, Query(max_length=255, pattern=PLAIN)]
Which = Literal["all", "refused"]  # everything, or the refused attempts only
_FILE_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class At(Offsets):  # no postponed annotations in this module: FastAPI reads these fields' types as given
    """The offsets, whose activity (none yet: the page asks for a person's id), and all of it or the refused
    attempts only."""

    person: PersonId = ""
    view: Annotated[Which, Query()] = "all"


@router.get("/supervisor/activity")
async def activity(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    at: Annotated[At, Depends()],
) -> Response:
    viewer = session.person
    assert viewer is not None
    if not may(viewer, READS):
        return not_available(request, "People's activity is")
    whose, ctx = at.person.strip(), workspace_of(request).ctx
    try:
        period, problems = at.params(ctx.zone), {}
    except BadDays as bad:  # nothing is read for them: the form says what is wrong
        period, problems = {}, bad.problems
    context: dict[str, Any] = {
        "title": "What a person has seen",
        "tab": "activity",
        "tabs": supervisor_tabs(viewer),
        "person_id": whose,
        "order": at.order,
        "days": at,
        "view": at.view,
        "problems": problems,
        "entries": [],
        "failed": [],
    }
    days = at.query()

    def carried(view: str) -> dict[str, str]:  # what a link carries on: the days, and the view
        return days | ({"view": view} if view != "all" else {})

    kept = carried(at.view)
    context["view_urls"] = {v: _url(whose, at.order, {}, carried(v)) for v in get_args(Which)}
    # The care managers with a caseload, offered as the form is filled in (any id may be typed), asked
    # beside the logs.
    offered = care_managers(services) if may(viewer, "caseload:read-agency") else _nobody()
    if problems:
        return render(request, "activity.html", context | {"offered": await offered})
    if not whose:  # who has been seen in the logs (of those days), to choose from
        seen, caseloads = await asyncio.gather(people_seen(services, period | asked_for(at.view)), offered)
        urls = {p["subject"]: _url(p["subject"], "newest", {}, kept) for p in seen.people}
        context |= {"seen": seen, "most_people": MOST_PEOPLE, "person_urls": urls}
        context["offered"] = sorted(set(caseloads) | {p["subject"] for p in seen.people})
        return render(request, "activity.html", context)
    size = ctx.settings.page_size
    (pages, page), context["offered"] = await asyncio.gather(
        read_logs(services, ROUTE, at, size, subject=whose, **period, **asked_for(at.view)), offered
    )
    offsets = at.offsets()
    named = Listing([e for e in page.entries if e["patient_id"]], 0, size)
    context |= {
        "entries": page.entries,
        "names": await names_of(services, viewer, named),
        "failed": [p.error for p in pages.values() if p.error is not None],
        "order_urls": {o: _url(whose, o, {}, kept) for o in ("newest", "oldest")},
        # A log that could not be read is asked again from where it was.
        "next_url": _url(whose, at.order, offsets | page.next, kept) if page.next else None,
        "first_url": _url(whose, at.order, {}, kept) if any(offsets.values()) else None,
        "csv_url": "/supervisor/activity.csv?" + urlencode({"person": whose} | kept),
    }
    return render(request, "activity.html", context)


async def _nobody() -> list[str]:
    return []


@dataclass(frozen=True)
class Seen:
    """The agency's people the logs have entries of, the latest seen first: each with ``subject``,
    ``role`` and ``last_recorded_at`` of their latest entry in any log, and the ``services`` that have
    entries of them; the logs that could not be read; whether a log holds more people than it listed."""

    people: list[dict[str, Any]]
    failed: list[ServiceError]
    more: bool


async def people_seen(services: Services, period: dict[str, Any]) -> Seen:
    """Every service's latest ``MOST_PEOPLE`` people (of the period), asked side by side, as one list."""
    asked = (services.page(s, PEOPLE, limit=MOST_PEOPLE, **period) for s in SERVICES)
    pages = dict(zip(SERVICES, await asyncio.gather(*asked), strict=True))
    latest: dict[str, dict[str, Any]] = {}
    for service, listing in pages.items():
        for person in listing.items:
            when = datetime.fromisoformat(person["last_recorded_at"])
            kept = latest.setdefault(person["subject"], {**person, "at": when, "services": []})
            kept["services"].append(service)
            if when > kept["at"]:
                kept |= {"role": person["role"], "last_recorded_at": person["last_recorded_at"], "at": when}
    people = sorted(latest.values(), key=lambda p: (-p["at"].timestamp(), p["subject"]))
    failed = [p.error for p in pages.values() if p.error is not None]
    return Seen(people, failed, any(p.next_offset is not None for p in pages.values()))


def _url(person: str, order: Order, offsets: dict[str, int], kept: dict[str, str]) -> str:
    """The page's address: the person (if any), where each log is, the order, then the days and view."""
    query: dict[str, Any] = ({"person": person} if person else {}) | {s: n for s, n in offsets.items() if n}
    query |= {"order": order} if order != "newest" else {}
    query |= kept
    return "/supervisor/activity" + (f"?{urlencode(query)}" if query else "")


@router.get("/supervisor/activity.csv")
async def activity_csv(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    person: Annotated[str, Query(min_length=1, max_length=255, pattern=PLAIN)],
    days: Annotated[Days, Depends()],
    view: Annotated[Which, Query()] = "all",
) -> Response:
    """Everything the page lists of the person, oldest first, as one CSV file: whole or not at all."""
    viewer = session.person
    assert viewer is not None
    if not may(viewer, READS):
        return not_available(request, "People's activity is")
    whose, title = person.strip(), "The activity could not be downloaded"
    if not whose:
        return error_page(request, 422, title, "Say whose activity to download: their id.")
    name = f"activity-{_FILE_SAFE.sub('_', whose)[:80]}{'-refusals' if view == 'refused' else ''}.csv"
    try:
        asked = {"subject": whose, **days.params(workspace_of(request).ctx.zone)}
        asked |= asked_for(view)
        return await csv_download(services, ROUTE, asked, name)
    except BadDays as bad:
        return error_page(request, 422, title, " ".join(bad.problems.values()))
    except ServiceError as exc:
        if exc.status == 401:
            raise
        return failed_call_page(request, exc, title)
    except TooLong:
        message = (
            "A service holds more entries of this person than a download does; read them on the page, or"
            " download fewer days."
        )
        return error_page(request, 422, title, message)
