"""What the supervisor's and provider's pages share: who may open them, and their tabs.

A page for a role shows only what the permission matrix lets the person read (the services check again);
a person whose role may read none of it gets a plain "not available" page, and no service is asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from workspace.client import ServiceError
from workspace.errors import error_page
from workspace.notices import patient_url
from workspace.pages import may
from workspace.sessions import Person
from workspace.web import SignedInSession, redirect


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
    if may(person, "caseload:read-agency") and may(person, "referral:read"):
        tabs.append(("referrals", "/supervisor/referrals", "How referrals went"))
    if may(person, "audit:read"):
        tabs.append(("activity", "/supervisor/activity", "What a person has seen"))
    return tabs


async def act_on_patient(
    request: Request,
    session: SignedInSession,
    permission: str,
    what: str,
    call: Callable[[], Awaitable[Any]],
    back_to: tuple[uuid.UUID, str],
    notices: tuple[str, int, str],
) -> Response:
    """One button's action about a patient (no form to fill): refused with a page for a role without
    ``permission`` (``what`` "is" not available), else ``call``, then back to the patient's section
    (``back_to``) with ``notices``: (done, the status saying it was done before or cannot be, its notice)."""
    assert session.person is not None
    if not may(session.person, permission):
        return not_available(request, what)
    patient_id, section = back_to
    done, gone_status, gone = notices
    try:
        await call()
    except ServiceError as exc:
        if exc.status != gone_status:
            raise
        return redirect(patient_url(patient_id, gone, section))
    return redirect(patient_url(patient_id, done, section))
