"""Signing in and out: development sign-in as a demo person, and sign-in at an OpenID Connect provider.

Development sign-in mints the same token ``make token`` does (``issue_token`` with ``CARELOOP_JWT_SECRET``
and ``CARELOOP_JWT_ISSUER``), so the services accept it on loopback; it is offered only when the workspace
listens on loopback or ``WORKSPACE_DEV_SIGNIN=true``. Either way, a new session replaces the visitor's.
"""

from __future__ import annotations

import hmac
import re
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from careloop_shared.auth import PEOPLE_ROLES, issue_token
from careloop_shared.logging import get_logger
from workspace.demo import DEMO_PEOPLE
from workspace.oidc_signin import CALLBACK_PATH, OidcSignInFailed, provider_error
from workspace.sessions import Person, Session
from workspace.web import (
    clear_session_cookie,
    current_session,
    redirect,
    render,
    set_session_cookie,
    use_session,
    workspace_of,
)

log = get_logger(__name__)
router = APIRouter()

CurrentSession = Annotated[Session | None, Depends(current_session)]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_FORM_ID = Annotated[str, Form(max_length=128)]
_FromProvider = Annotated[str | None, Query(max_length=2048)]


@router.get("/signin")
async def sign_in_page(request: Request, session: CurrentSession) -> Response:
    if session is not None and session.person is not None:
        return redirect("/")
    return await _sign_in_page(request, session)


@router.post("/signin/development")
async def sign_in_for_development(
    request: Request, session: CurrentSession, agency: _FORM_ID, role: _FORM_ID, subject: _FORM_ID
) -> Response:
    workspace = workspace_of(request)
    settings = workspace.ctx.settings
    if not settings.dev_signin_allowed:
        return await _sign_in_page(
            request, session, error="Development sign-in is not enabled here.", status=404
        )
    problems = {
        "agency": None if _ID.match(agency) else "An agency id: letters, digits, dots and dashes.",
        "role": None if role in PEOPLE_ROLES else f"One of {', '.join(sorted(PEOPLE_ROLES))}.",
        "subject": None if _ID.match(subject) else "A person id: letters, digits, dots and dashes.",
    }
    if any(problems.values()):
        entered = {"agency": agency, "role": role, "subject": subject}  # ids, never patient data
        return await _sign_in_page(request, session, problems=problems, entered=entered, status=422)
    now = workspace.ctx.clock()
    token = issue_token(
        settings.jwt_secret.get_secret_value(),
        agency=agency,
        role=role,
        subject=subject,
        issuer=settings.jwt_issuer,
        ttl_s=settings.session_ttl_s,
    )
    cookie, _ = await workspace.sessions.sign_in(
        session,
        Person(subject, agency, role),
        access_token=token,
        token_expires_at=now + timedelta(seconds=settings.session_ttl_s),
        via="development",
    )
    log.info("signed in", via="development", role=role, agency_id=agency)
    response = redirect("/")
    set_session_cookie(response, workspace.ctx, cookie)
    return response


@router.get("/signin/oidc")
async def sign_in_at_provider(request: Request, session: CurrentSession) -> Response:
    """Off to the provider, with this browser's state, nonce and PKCE challenge."""
    workspace = workspace_of(request)
    if workspace.oidc is None:
        return await _sign_in_page(request, session, error="No identity provider is configured.", status=404)
    cookie = None
    if session is None:
        cookie, session = await workspace.sessions.start()
    login = await workspace.sessions.begin_login(session)
    response: Response
    try:
        response = redirect(await workspace.oidc.authorization_url(login))
    except OidcSignInFailed as exc:
        response = await _sign_in_page(request, session, error=str(exc), status=502)
    if cookie is not None:
        set_session_cookie(response, workspace.ctx, cookie)
    return response


@router.get(CALLBACK_PATH)
async def provider_callback(
    request: Request,
    session: CurrentSession,
    code: _FromProvider = None,
    state: _FromProvider = None,
    error: _FromProvider = None,
) -> Response:
    workspace = workspace_of(request)
    if workspace.oidc is None:
        return await _sign_in_page(request, session, error="No identity provider is configured.", status=404)
    login = await workspace.sessions.take_login(session) if session is not None else None
    if error is not None:
        reason = provider_error(error)
        return await _sign_in_page(
            request, session, error=f"The identity provider did not sign you in ({reason})."
        )
    if login is None or state is None or not code or not _same(state, login.state):
        # Expired, completed already, started in another browser, or not started by us at all.
        message = "This sign-in was not started here or has expired; sign in again."
        return await _sign_in_page(request, session, error=message, status=400)
    try:
        signed_in = await workspace.oidc.complete(login, code)
    except OidcSignInFailed as exc:
        log.warning("sign-in at the identity provider failed", reason=str(exc))
        return await _sign_in_page(request, session, error=str(exc), status=400)
    cookie, _ = await workspace.sessions.sign_in(
        session,
        signed_in.person,
        access_token=signed_in.access_token,
        token_expires_at=signed_in.expires_at,
        via="oidc",
    )
    log.info("signed in", via="oidc", role=signed_in.person.role, agency_id=signed_in.person.agency_id)
    response = redirect("/")
    set_session_cookie(response, workspace.ctx, cookie)
    return response


@router.post("/signout")
async def sign_out(request: Request, session: CurrentSession) -> Response:
    workspace = workspace_of(request)
    if session is not None:
        await workspace.sessions.end(session)
    response = redirect("/signin?notice=signed-out")
    clear_session_cookie(response, workspace.ctx)
    return response


async def _sign_in_page(
    request: Request,
    session: Session | None,
    *,
    error: str | None = None,
    problems: dict[str, str | None] | None = None,
    entered: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The sign-in page; a visitor without a session gets one, for its forms' CSRF token."""
    workspace = workspace_of(request)
    cookie = None
    if session is None:
        cookie, session = await workspace.sessions.start()
        use_session(request, session)
    settings = workspace.ctx.settings
    context = {
        "title": "Sign in",
        "error": error,
        "problems": problems or {},
        "entered": entered or {"role": "care-manager"},
        "dev_signin": settings.dev_signin_allowed,
        "oidc": workspace.oidc is not None,
        "demo_people": DEMO_PEOPLE,
    }
    response = render(request, "signin.html", context, status_code=status)
    if cookie is not None:
        set_session_cookie(response, workspace.ctx, cookie)
    return response


def _same(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())
