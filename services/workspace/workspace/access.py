"""Who has seen a patient's data: the audit logs of the five services as one list, newest first (or
``?order=oldest``), for the roles that may read them (``audit:read``: supervisors).

Each service keeps its own log (``GET /v1/audit?patient_id=``: every read of the patient's data there and
every refused attempt) and answers only for its caller's agency's patients; the page asks all five at the
same time, a page from each in that order, and shows the first entries of them all (``merged``). The next
page carries where each service's log is (``?intake=&careplan=&...``). ``?view=disclosures`` shows the
accounting of disclosures instead: what people outside the patient's agency were shown. A service that
cannot answer is named in its place and the others are still shown; one that has never heard of the
patient has nothing to show. The workspace keeps nothing of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from workspace.client import Listing, Services
from workspace.errors import error_page
from workspace.forms import patient_name
from workspace.gates import not_available
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, render, workspace_of

router = APIRouter()

READS = "audit:read"
SERVICES = ("intake", "careplan", "referral", "followup", "record")
ROUTES = {"all": "/v1/audit", "disclosures": "/v1/audit/disclosures"}
View = Literal["all", "disclosures"]
Order = Literal["newest", "oldest"]  # the latest entries first, as a log is usually read; or the first
LogOffset = Annotated[int, Query(ge=0, le=2_147_483_647)]  # as far as a service's log pages go


@dataclass
class Where:
    """How far into each service's log the page is (offsets), and which view."""

    intake: LogOffset = 0
    careplan: LogOffset = 0
    referral: LogOffset = 0
    followup: LogOffset = 0
    record: LogOffset = 0
    view: Annotated[View, Query()] = "all"
    order: Annotated[Order, Query()] = "newest"

    def offsets(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in SERVICES}


@dataclass(frozen=True)
class Merged:
    """A page of entries from every log in the order asked (each with its ``service``), and where each
    log goes on from (``next``: None when every log has been shown to its end)."""

    entries: list[dict[str, Any]]
    next: dict[str, int] | None


def merged(pages: dict[str, Listing], size: int, *, newest: bool = False) -> Merged:
    """The ``size`` oldest entries of the services' pages (``newest``: the latest). Each page holds a
    service's next ``size`` entries in that order, so the first ``size`` of them all are among them; a
    service's offset moves on by as many of its entries as were shown, and one that could not be read
    stays where it was."""
    ordered = sorted(
        ((-1 if newest else 1) * _moment(entry).timestamp(), service, i, entry)
        for service, listing in pages.items()
        for i, entry in enumerate(listing.items)
    )
    shown = ordered[:size]
    taken = Counter(service for _, service, _, _ in shown)
    more = any(
        listing.next_offset is not None or len(listing.items) > taken[service]
        for service, listing in pages.items()
    )
    next_offsets = {service: listing.offset + taken[service] for service, listing in pages.items()}
    return Merged(
        [{**entry, "service": service} for _, service, _, entry in shown], next_offsets if more else None
    )


def _moment(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["recorded_at"])


@router.get("/patients/{patient_id}/access")
async def patient_access(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    at: Annotated[Where, Depends()],
) -> Response:
    person = session.person
    assert person is not None
    if not may(person, READS):
        return not_available(request, "The patient's audit trail is")
    size = workspace_of(request).ctx.settings.page_size
    route, pid = ROUTES[at.view], str(patient_id)
    offsets = at.offsets()
    asked = (_page(services, s, route, offsets[s], size, patient_id=pid, order=at.order) for s in SERVICES)
    pages = dict(zip(SERVICES, await asyncio.gather(*asked), strict=True))
    gone = pages["intake"].error
    if gone is not None and gone.status == 404:  # not the agency's patient (or none): nothing is shown
        return error_page(request, 404, "Page not found", "There is no such patient, or not one you may see.")
    page = merged({s: p for s, p in pages.items() if p.error is None}, size, newest=at.order == "newest")
    context = {
        "title": "Who has seen this patient's data",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "view": at.view,
        "order": at.order,
        "order_urls": {o: _url(patient_id, at.view, o, {}) for o in ("newest", "oldest")},
        "view_urls": {v: _url(patient_id, v, at.order, {}) for v in ("all", "disclosures")},
        "entries": page.entries,
        "failed": [p.error for p in pages.values() if p.error is not None],
        # A log that could not be read is asked again from where it was.
        "next_url": _url(patient_id, at.view, at.order, offsets | page.next) if page.next else None,
        "first_url": _url(patient_id, at.view, at.order, {}) if any(offsets.values()) else None,
        "agency": person.agency_id,
    }
    return render(request, "patient_access.html", context)


async def _page(
    services: Services, service: str, route: str, offset: int, size: int, **params: str
) -> Listing:
    listing = await services.page(service, route, offset=offset, limit=size, **params)
    error = listing.error
    if service != "intake" and error is not None and error.status == 404:
        return Listing([], offset, size)  # a service that has never heard of the patient: nothing there
    return listing


def _url(patient_id: uuid.UUID, view: View, order: Order, offsets: dict[str, int]) -> str:
    query: dict[str, Any] = {s: n for s, n in offsets.items() if n}
    query |= ({"view": view} if view != "all" else {}) | ({"order": order} if order != "newest" else {})
    return f"/patients/{patient_id}/access" + (f"?{urlencode(query)}" if query else "")
