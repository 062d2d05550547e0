"""What the supervisor's and provider's pages share: who may open them, their notices, their forms' keys.

A page for a role shows only what the permission matrix lets the person read (the services check again);
a person whose role may read none of it gets a plain "not available" page, and no service is asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from fastapi import Request
from fastapi.responses import Response

from workspace.errors import error_page
from workspace.pages import may
from workspace.sessions import Person
from workspace.web import NOTICES

# What a redirect after one of these pages' forms may ask to show, by code (never a name or a value).
PAGE_NOTICES = {
    "reassigned": "The patient has a new care manager; their open tasks moved with them.",
    "prospect-added": "The prospect is in the pipeline.",
    "prospect-moved": "The prospect moved along the pipeline.",
    "referral-accepted": "You accepted the referral.",
    "referral-rejected": "You rejected the referral; the referring agency has been told.",
    "referral-rerouted": "You rejected the referral; it was sent on to the next best program.",
    "referral-in-progress": "The referral is in progress.",
    "referral-on-hold": "The referral is on hold.",
    "referral-completed": "The referral is completed with its outcome; the referring agency has been told.",
}


def notice_of(request: Request) -> str | None:
    code = request.query_params.get("notice", "")
    return PAGE_NOTICES.get(code) or NOTICES.get(code)


def may_any(person: Person, permissions: Iterable[str]) -> bool:
    return any(may(person, p) for p in permissions)


def not_available(request: Request, what: str) -> Response:
    """The page for someone whose role may not see this one: says so, shows nothing of it."""
    return error_page(request, 403, "Not available", f"{what} not available to your role.")


def supervisor_tabs(person: Person) -> list[tuple[str, str, str]]:
    """The supervisor's pages this person may open: (tab, address, label)."""
    tabs = []
    if may(person, "caseload:read-agency"):
        tabs.append(("team", "/supervisor", "Your team"))
    if may_any(person, ("network-gap:read", "prospect:read")):
        tabs.append(("network", "/supervisor/network", "Network gaps and recruitment"))
    return tabs


def form_key() -> str:
    """A form's own Idempotency-Key, made when the form is shown: a resubmission stores nothing twice."""
    return str(uuid.uuid4())
