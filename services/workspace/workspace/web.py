"""What every page depends on: the workspace's parts, the session, CSRF, rendering, cookies, error pages.

A page route takes ``SignedInSession`` (without one, the browser is sent to sign-in) and ``CallServices``
(the services, called as the signed-in person), and answers ``render(request, "page.html", {...})``.
Every POST is checked for the session's CSRF token before its route runs (``check_csrf``, on the whole
app). What a failure answers is in ``errors.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined

from careloop_shared.auth import PEOPLE_ROLES
from careloop_shared.logging import get_logger
from careloop_shared.permissions import load_matrix
from workspace.client import Services
from workspace.config import WorkspaceContext
from workspace.notices import notice_text
from workspace.oidc_signin import OidcClient
from workspace.sessions import Session, Sessions

log = get_logger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION = "workspace_session"  # request.state: the session, once looked up


@dataclass
class Workspace:
    """The workspace's parts, built once by ``main.build_app`` and held in ``app.state``."""

    ctx: WorkspaceContext
    sessions: Sessions
    http: httpx.AsyncClient  # calls to the services
    oidc: OidcClient | None
    templates: Jinja2Templates


class SignInRequired(Exception):
    """No live session with a person: the page redirects to sign-in."""


class CsrfRefused(Exception):
    """A form without this session's CSRF token."""


def workspace_of(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


async def current_session(request: Request) -> Session | None:
    """The request's live session, looked up once per request."""
    if not hasattr(request.state, _SESSION):
        workspace = workspace_of(request)
        cookie = request.cookies.get(workspace.ctx.session_cookie)
        setattr(request.state, _SESSION, await workspace.sessions.load(cookie))
    session: Session | None = getattr(request.state, _SESSION)
    return session


def use_session(request: Request, session: Session) -> None:
    """The session this request's page is rendered for (one just started, say)."""
    setattr(request.state, _SESSION, session)


async def signed_in_session(request: Request) -> Session:
    session = await current_session(request)
    if session is None or session.person is None or session.access_token is None:
        raise SignInRequired()
    if session.person.role not in PEOPLE_ROLES:  # a service's token is no one's to browse with
        raise SignInRequired()
    return session


SignedInSession = Annotated[Session, Depends(signed_in_session)]


async def call_services(request: Request, session: SignedInSession) -> Services:
    workspace = workspace_of(request)
    assert session.access_token is not None
    return Services(workspace.http, workspace.ctx.settings.service_urls(), session.access_token)


CallServices = Annotated[Services, Depends(call_services)]


async def check_csrf(request: Request) -> None:
    """Every form that changes something carries the session's token (a hidden ``csrf_token`` field)."""
    if request.method in SAFE_METHODS:
        return
    session = await current_session(request)
    form = await request.form()
    presented = form.get(CSRF_FIELD)
    if session is None or not session.csrf_matches(presented if isinstance(presented, str) else None):
        raise CsrfRefused()


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A page: the template with the signed-in person, the CSRF token for its forms, and any notice."""
    session: Session | None = getattr(request.state, _SESSION, None)
    notice = notice_text(request)
    base = {
        "person": session.person if session else None,
        "csrf_token": session.csrf_token if session else None,
        "notice": notice,
        "error": None,
        "active": None,
    }
    response: HTMLResponse = workspace_of(request).templates.TemplateResponse(
        request, template, {**base, **(context or {})}, status_code=status_code
    )
    return response


def set_session_cookie(response: Response, ctx: WorkspaceContext, value: str) -> None:
    # No Max-Age: the cookie goes with the browser; the session's end is kept on the server.
    response.set_cookie(
        ctx.session_cookie, value, path="/", secure=ctx.secure_cookies, httponly=True, samesite="lax"
    )


def clear_session_cookie(response: Response, ctx: WorkspaceContext) -> None:
    response.delete_cookie(
        ctx.session_cookie, path="/", secure=ctx.secure_cookies, httponly=True, samesite="lax"
    )


def redirect(url: str) -> RedirectResponse:
    """After a form, or to another page: 303 so the browser follows with a GET."""
    return RedirectResponse(url, status_code=303)


def new_templates(ctx: WorkspaceContext) -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES)
    env = templates.env
    env.autoescape = True
    env.undefined = StrictUndefined  # a misspelt name fails the page's test instead of showing nothing
    env.trim_blocks, env.lstrip_blocks = True, True
    env.filters["when"] = lambda value: when(value, ctx)
    env.filters["past"] = lambda value: is_past(value, ctx)
    env.filters["short_id"] = short_id
    env.filters["words"] = words
    env.filters["interval"] = interval
    env.globals["page_url"] = page_url
    env.globals["csrf_field"] = CSRF_FIELD
    env.globals["roles"] = sorted(PEOPLE_ROLES)
    env.globals["may"] = lambda person, permission: (
        person is not None and load_matrix().allows(person.role, permission)
    )
    return templates


def when(value: Any, ctx: WorkspaceContext) -> str:
    """A time as people read it, in the workspace's time zone: ``Tue 14 Jul 09:30``."""
    moment = _datetime(value)
    if moment is None:
        return "—"
    try:
        local = moment.astimezone(ctx.zone)
    except (OverflowError, ValueError):  # at the very ends of the calendar: no local time to name
        local = moment
    return local.strftime("%a %d %b %H:%M")


def is_past(value: Any, ctx: WorkspaceContext) -> bool:
    moment = _datetime(value)
    return moment is not None and moment < ctx.clock()


def _datetime(value: Any) -> datetime | None:
    """A time a service sent; one without an offset is UTC's (a service reads PostgreSQL's -infinity
    and infinity back that way, as the first and the last instant Python can name)."""
    moment = value if isinstance(value, datetime) else None
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def words(code: Any) -> str:
    """A code as words: ``safety-check`` -> ``Safety check``."""
    text = str(code).replace("-", " ").replace("_", " ")
    return text[:1].upper() + text[1:]


def page_url(request: Request, param: str, offset: int) -> str:
    """This page with one list moved to ``offset`` (the other lists stay where they are)."""
    params = {k: v for k, v in request.query_params.items() if k != "notice"}
    params[param] = str(offset)
    return f"{request.url.path}?{urlencode(params)}"


_UNITS = (("day", 1.0), ("hour", 1 / 24), ("minute", 1 / 1440), ("second", 1 / 86400))


def interval(days: Any) -> str:
    """A cadence in days as a person says it: ``14`` -> ``14 days``, ``0.25`` -> ``6 hours`` (a rules file
    may set one shorter than a day, as the tests' do)."""
    amount = float(days)
    unit, size = next(((u, s) for u, s in _UNITS if amount >= s), _UNITS[-1])
    shown = f"{round(amount / size, 1):g}"
    return f"{shown} {unit}{'' if shown == '1' else 's'}"


def short_id(value: Any) -> str:
    """The first block of a pseudonymous id: enough to tell patients apart on one page."""
    return str(value).split("-")[0]
