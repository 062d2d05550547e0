"""Network gaps and the recruitment pipeline: where the network lacks a program, the providers being
recruited to fill it, adding one, and moving one along (activation puts it in the directory and refers
the patients waiting on a gap it can serve).

Calls: referral ``GET /v1/network-gaps``, ``GET|POST /v1/prospects``, ``GET /v1/prospects/{id}``,
``POST /v1/prospects/{id}/status``. A prospect's id is a directory id (not a patient's), but addresses
name pseudonymous ids only: the pipeline's forms carry the prospect's id in their body.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from workspace.client import Listing, ServiceError, Services
from workspace.codes import DECLINE_REASONS, PROSPECT_MOVES, PROSPECT_STATUS_WORDS
from workspace.forms import FormKey, new_form_key
from workspace.gates import may_any, not_available, supervisor_tabs
from workspace.notices import notice_text
from workspace.pages import may
from workspace.sessions import Person
from workspace.web import CallServices, SignedInSession, redirect, render, workspace_of

router = APIRouter()

Offset = Annotated[int, Query(ge=0, le=100_000)]
Text = Annotated[str, Form(max_length=4000)]
NETWORK = ("network-gap:read", "prospect:read")
_LIST_FIELDS = ("program_categories", "needs", "languages", "postal_prefixes")
_PROSPECT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,79}")  # a directory id, as referral takes it
_TEXT_FIELDS = ("id", "name", "agency_id", "description", "url", "email", "phone", "owner_id", "notes")


@router.get("/supervisor/network")
async def network(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    gaps: Offset = 0,
    prospects: Offset = 0,
) -> Response:
    """The network-gap report and the recruitment pipeline, each as the person's role may read."""
    assert session.person is not None
    if not may_any(session.person, NETWORK):
        return not_available(request, "The network pages are")
    return await _network_page(request, session.person, services, gaps, prospects)


async def _network_page(
    request: Request,
    person: Person,
    services: Services,
    gaps: int = 0,
    prospects: int = 0,
    *,
    failed: dict[str, Any] | None = None,
) -> Response:
    size = workspace_of(request).ctx.settings.page_size

    async def listing(permission: str, path: str, offset: int) -> Listing:
        if not may(person, permission):
            return Listing([], limit=size)
        return await services.page("referral", path, offset=offset, limit=size)

    gap_list, pipeline = await asyncio.gather(
        listing("network-gap:read", "/v1/network-gaps", gaps),
        listing("prospect:read", "/v1/prospects", prospects),
    )
    keys = {p["id"]: new_form_key() for p in pipeline.items}
    failed = failed or {}
    elsewhere = failed and failed["id"] not in keys  # not on this page of the pipeline: said at the top
    context = {
        "title": "Network gaps and recruitment",
        "error": f"Prospect {failed['id']}: {failed['message']}" if elsewhere else None,
        "notice": notice_text(request),
        "gaps": gap_list,
        "pipeline": pipeline,
        "keys": keys,
        "moves": {
            status: [(m, PROSPECT_STATUS_WORDS[m]) for m in ms] for status, ms in PROSPECT_MOVES.items()
        },
        "status_words": PROSPECT_STATUS_WORDS,
        "decline_reasons": list(DECLINE_REASONS.items()),
        "failed": failed,
        "shows": {p: may(person, p) for p in ("network-gap:read", "prospect:read", "prospect:change")},
        "tab": "network",
        "tabs": supervisor_tabs(person),
    }
    return render(request, "network.html", context, status_code=failed["code"] if failed else 200)


@router.get("/supervisor/prospects/new")
async def new_prospect_form(request: Request, session: SignedInSession) -> Response:
    assert session.person is not None
    if not may(session.person, "prospect:change"):
        return not_available(request, "Adding prospects is")
    return _prospect_form(request, session.person, {"key": new_form_key(), "languages": "en"})


@router.post("/supervisor/prospects/new")
async def add_prospect(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    idempotency_key: FormKey,
    id: Text = "",
    name: Text = "",
    agency_id: Text = "",
    description: Text = "",
    url: Text = "",
    email: Text = "",
    phone: Text = "",
    owner_id: Text = "",
    notes: Text = "",
    program_categories: Text = "",
    needs: Text = "",
    languages: Text = "",
    postal_prefixes: Text = "",
    interpretation_services: Annotated[bool, Form()] = False,
) -> Response:
    """Add a prospective provider to the pipeline (never over an existing prospect with the same id)."""
    person = session.person
    assert person is not None
    if not may(person, "prospect:change"):
        return not_available(request, "Adding prospects is")
    fields = dict(
        zip(_TEXT_FIELDS, (id, name, agency_id, description, url, email, phone, owner_id, notes), strict=True)
    )
    lists = dict(zip(_LIST_FIELDS, (program_categories, needs, languages, postal_prefixes), strict=True))
    entered = {"key": idempotency_key, **fields, **lists, "interpretation_services": interpretation_services}
    body: dict[str, Any] = {k: v.strip() for k, v in fields.items() if v.strip()}
    body |= {k: _split(v) for k, v in lists.items() if _split(v)}
    body["interpretation_services"] = interpretation_services
    problems: dict[str, list[str]] = {}
    if not _PROSPECT_ID.fullmatch(body.get("id", "")):
        problems["id"] = ["An id of 2 to 80 lowercase letters, digits and dashes, such as org-city-rides."]
    elif await _exists(services, body["id"]):
        problems["id"] = ["There is already a prospect with this id; choose another."]
    if not body.get("name"):
        problems["name"] = ["Give the provider's name."]
    if not body.get("program_categories"):
        problems["program_categories"] = ["Name at least one program category it would serve."]
    if problems:
        return _prospect_form(request, person, entered, problems=problems)
    try:
        await services.post("referral", "/v1/prospects", body, idempotency_key=idempotency_key)
    except ServiceError as exc:
        if exc.status not in (409, 422):
            raise
        found = {
            name: exc.for_field(name) for name in (*_TEXT_FIELDS, *_LIST_FIELDS, "interpretation_services")
        }
        return _prospect_form(request, person, entered, problems=found, error=exc.message, code=exc.status)
    return redirect("/supervisor/network?notice=prospect-added")


async def _exists(services: Services, prospect_id: str) -> bool:
    try:
        await services.get("referral", f"/v1/prospects/{prospect_id}")
    except ServiceError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _split(value: str) -> list[str]:
    """A list typed as words separated by commas (or spaces)."""
    return [part for part in re.split(r"[,\s]+", value.strip()) if part]


def _prospect_form(
    request: Request,
    person: Person,
    entered: dict[str, Any],
    *,
    problems: dict[str, list[str]] | None = None,
    error: str | None = None,
    code: int = 422,
) -> Response:
    context = {
        "title": "Add a prospective provider",
        "entered": entered,
        "problems": problems or {},
        "error": error,
        "tab": "network",
        "tabs": supervisor_tabs(person),
    }
    failed = bool(error or any((problems or {}).values()))
    return render(request, "prospect_new.html", context, status_code=code if failed else 200)


@router.post("/supervisor/prospects/status")
async def move_prospect(
    request: Request,
    session: SignedInSession,
    services: CallServices,
    idempotency_key: FormKey,
    prospect_id: Annotated[str, Form(pattern=rf"^{_PROSPECT_ID.pattern}$")],
    status: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Move a prospect along; an activation's answer (the programs it became, the patients referred
    to them) is shown at once, as the service reported it."""
    person = session.person
    assert person is not None
    if not may(person, "prospect:change"):
        return not_available(request, "Moving prospects is")
    body = {"status": status, "reason": reason or None, "note": note.strip() or None}
    if status != "declined":
        body["reason"] = None  # the reason list belongs to a decline only
    try:
        moved = await services.post(
            "referral", f"/v1/prospects/{prospect_id}/status", body, idempotency_key=idempotency_key
        )
    except ServiceError as exc:
        if exc.status not in (404, 409, 422):
            raise
        failed = {
            "id": prospect_id,
            "key": idempotency_key,
            "message": exc.message,
            "status": status,
            "reason": reason,
            "note": note,
            "problems": {name: exc.for_field(name) for name in ("status", "reason", "note")},
            "code": exc.status,
        }
        return await _network_page(request, person, services, failed=failed)
    if moved["prospect"]["status"] != "active":
        return redirect("/supervisor/network?notice=prospect-moved")
    context = {
        "title": "The prospect is active",
        "moved": moved,
        "status_words": PROSPECT_STATUS_WORDS,
        "tab": "network",
        "tabs": supervisor_tabs(person),
    }
    return render(request, "prospect_active.html", context)
