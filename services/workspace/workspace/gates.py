"""What the supervisor's and provider's pages share: who may open them, and their tabs.

A page for a role shows only what the permission matrix lets the person read (the services check again);
a person whose role may read none of it gets a plain "not available" page, and no service is asked.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request
from fastapi.responses import Response

from workspace.errors import error_page
from workspace.pages import may
from workspace.sessions import Person


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
