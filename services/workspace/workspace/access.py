"""Who has seen a patient's data: the audit logs of the five services as one list, newest first (or
``?order=oldest``), for the roles that may read them (``audit:read``: supervisors).

Each service keeps its own log (``GET /v1/audit?patient_id=``: every read of the patient's data there and
every refused attempt) and answers only for its caller's agency's patients; the page asks all five at the
same time, a page from each in that order, and shows the first entries of them all (``merged``). The next
page carries where each service's log is (``?intake=&careplan=&...``). ``?view=disclosures`` shows the
accounting of disclosures instead: what people outside the patient's agency were shown; ``?view=refused``
the refused attempts only. A service that
cannot answer is named in its place and the others are still shown; one that has never heard of the
patient has nothing to show. The workspace keeps nothing of it.
"""

import asyncio
import csv
import io
import uuid
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from workspace.audit_days import BadDays, Days
from workspace.client import Listing, ServiceError, Services
from workspace.errors import error_page, failed_call_page
from workspace.forms import patient_name
from workspace.gates import not_available
from workspace.pages import may
from workspace.web import CallServices, SignedInSession, render, workspace_of

router = APIRouter()

READS = "audit:read"
SERVICES = ("intake", "careplan", "referral", "followup", "record")
ROUTES = {"all": "/v1/audit", "disclosures": "/v1/audit/disclosures", "refused": "/v1/audit"}
View = Literal["all", "disclosures", "refused"]
REFUSED = {"outcome": "denied"}  # what a log is asked for the refused attempts only
FILE_NAMES = {"all": "audit", "disclosures": "disclosures", "refused": "refusals"}

Order = Literal["newest", "oldest"]  # the latest entries first, as a log is usually read; or the first
LogOffset = Annotated[int, Query(ge=0, le=2_147_483_647)]  # as far as a service's log pages go
DOWNLOAD_PAGE = 200  # entries asked of a log at a time for a download (a service's largest page)
MOST_DOWNLOADED = 20_000  # a log longer than this is read on the page: a download is whole or is not made
COLUMNS = ("recorded_at", "service", "agency", "person", "role", "outcome", "why", "data", "record", "route")


def asked_for(view: str) -> dict[str, str]:
    """What a log is asked, beside the patient or the person, for a view of it (``refused``: the refused
    attempts only)."""
    return REFUSED if view == "refused" else {}


@dataclass
class Offsets(Days):
    """How far into each service's log a page of a merged list is, and of which days."""

    intake: LogOffset = 0
    careplan: LogOffset = 0
    referral: LogOffset = 0
    followup: LogOffset = 0
    record: LogOffset = 0
    order: Annotated[Order, Query()] = "newest"

    def offsets(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in SERVICES}


@dataclass
class Where(Offsets):
    """The offsets, and which view of the patient's trail."""

    view: Annotated[View, Query()] = "all"


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
    ctx = workspace_of(request).ctx
    try:
        period, problems = at.params(ctx.zone), {}
    except BadDays as bad:  # nothing is read for them: the form says what is wrong
        period, problems = None, bad.problems
    route, size = ROUTES[at.view], ctx.settings.page_size
    asked: dict[str, Any] = {"patient_id": str(patient_id)} | asked_for(at.view)
    if period is None:  # only whether the patient is the agency's
        pages = {"intake": await services.page("intake", route, limit=1, order=at.order, **asked)}
        page = None
    else:
        pages, page = await read_logs(services, route, at, size, **asked, **period)
    gone = pages["intake"].error
    if gone is not None and gone.status == 404:  # not the agency's patient (or none): nothing is shown
        return error_page(request, 404, "Page not found", "There is no such patient, or not one you may see.")
    offsets, days = at.offsets(), at.query()

    def url(view: View, order: Order, offsets: dict[str, int]) -> str:
        return _url(patient_id, view, order, offsets, days)

    context = {
        "title": "Who has seen this patient's data",
        "patient_id": patient_id,
        "name": await patient_name(services, patient_id),
        "view": at.view,
        "order": at.order,
        "order_urls": {o: url(at.view, o, {}) for o in ("newest", "oldest")},
        "view_urls": {v: url(v, at.order, {}) for v in get_args(View)},
        "days": at,
        "problems": problems,
        "entries": page.entries if page else [],
        "failed": [p.error for p in pages.values() if p.error is not None] if page else [],
        # A log that could not be read is asked again from where it was.
        "next_url": url(at.view, at.order, offsets | page.next) if page and page.next else None,
        "first_url": url(at.view, at.order, {}) if any(offsets.values()) else None,
        "csv_url": f"/patients/{patient_id}/access.csv"
        + _query({"view": at.view} if at.view != "all" else {}, days),
        "agency": person.agency_id,
    }
    return render(request, "patient_access.html", context)


async def read_logs(
    services: Services, route: str, at: Offsets, size: int, **params: str
) -> tuple[dict[str, Listing], Merged]:
    """A page of every service's log at ``route`` from where ``at`` says, asked side by side, and the first
    ``size`` entries of them all in ``at``'s order (a log that could not be read has its error instead)."""
    offsets = at.offsets()
    asked = (_log_page(services, s, route, offsets[s], size, order=at.order, **params) for s in SERVICES)
    pages = dict(zip(SERVICES, await asyncio.gather(*asked), strict=True))
    readable = {s: p for s, p in pages.items() if p.error is None}
    return pages, merged(readable, size, newest=at.order == "newest")


async def _log_page(
    services: Services, service: str, route: str, offset: int, size: int, **params: str
) -> Listing:
    listing = await services.page(service, route, offset=offset, limit=size, **params)
    error = listing.error
    if service != "intake" and error is not None and error.status == 404:
        return Listing([], offset, size)  # a service that has never heard of the patient: nothing there
    return listing


def _url(
    patient_id: uuid.UUID, view: View, order: Order, offsets: dict[str, int], days: dict[str, str]
) -> str:
    query: dict[str, Any] = {s: n for s, n in offsets.items() if n}
    query |= ({"view": view} if view != "all" else {}) | ({"order": order} if order != "newest" else {})
    return f"/patients/{patient_id}/access" + _query(query, days)


def _query(query: dict[str, Any], days: dict[str, str]) -> str:
    """A URL's query string (empty for nothing), the days last."""
    return f"?{urlencode(query | days)}" if query or days else ""


@router.get("/patients/{patient_id}/access.csv")
async def patient_access_csv(
    request: Request,
    patient_id: uuid.UUID,
    session: SignedInSession,
    services: CallServices,
    days: Annotated[Days, Depends()],
    view: Annotated[View, Query()] = "all",
) -> Response:
    """The same entries as one CSV file, oldest first: what a patient who asks for an accounting of
    disclosures is given (``?view=disclosures``), the refused attempts (``?view=refused``), or the whole
    trail. Whole or not at all: a log that
    cannot be read, or is longer than a download holds, gives a page saying so, never part of a file."""
    person = session.person
    assert person is not None
    if not may(person, READS):
        return not_available(request, "The patient's audit trail is")
    name, title = f"patient-{patient_id}-{FILE_NAMES[view]}.csv", "The audit trail could not be downloaded"
    try:
        asked = {"patient_id": str(patient_id), **days.params(workspace_of(request).ctx.zone)}
        asked |= asked_for(view)
        return await csv_download(services, ROUTES[view], asked, name)
    except BadDays as bad:
        return error_page(request, 422, title, " ".join(bad.problems.values()))
    except ServiceError as exc:
        if exc.status == 401:
            raise
        if exc.status == 404:  # intake's: not the agency's patient (or none)
            return error_page(
                request, 404, "Page not found", "There is no such patient, or not one you may see."
            )
        return failed_call_page(request, exc, title)
    except TooLong:
        message = (
            f"A service holds more than {MOST_DOWNLOADED:,} entries of this patient; read them on the page,"
            " or download fewer days."
        )
        return error_page(request, 422, title, message)


class TooLong(Exception):
    """A service's log holds more entries than a download does (``MOST_DOWNLOADED``)."""


async def csv_download(services: Services, route: str, params: dict[str, str], name: str) -> Response:
    """Every entry of the five logs at ``route`` with ``params``, oldest first, as one CSV file ``name``:
    whole or not at all (``ServiceError`` for a log that cannot be read, ``TooLong``)."""
    logs = await asyncio.gather(*(_whole_log(services, s, route, params) for s in SERVICES))
    entries = sorted(
        ({**e, "service": s} for s, log in zip(SERVICES, logs, strict=True) for e in log),
        key=lambda e: (_moment(e), e["service"]),
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows([_cell(v) for v in _row(e)] for e in entries)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _whole_log(
    services: Services, service: str, route: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    """Every entry of one service's log, oldest first (``TooLong`` past ``MOST_DOWNLOADED``). A service
    other than intake that has never heard of the patient has none."""
    entries: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        asked = {**params, "offset": offset, "limit": DOWNLOAD_PAGE, "order": "oldest"}
        try:
            answer = await services.get(service, route, asked)
        except ServiceError as exc:
            if exc.status == 404 and service != "intake":
                return []
            raise
        entries += answer["items"]
        if len(entries) > MOST_DOWNLOADED:
            raise TooLong(service)
        offset = answer.get("next_offset")
    return entries


def _row(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["recorded_at"], e["service"], e["agency_id"], e["subject"], e["role"],
            "shown" if e["outcome"] == "allowed" else "refused", e["outcome_detail"], e["what"],
            e["entity_id"], e["route"])  # fmt: skip


def _cell(value: Any) -> str:
    """A value as a spreadsheet will show it, never run it: text that would start a formula is quoted."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
