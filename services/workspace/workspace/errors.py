"""What a failure answers: always a page that says what happened, never a stack trace or a value.

A refused sign-in at a service ends the session; other refusals and outages that reach here (a section of
a page usually shows its own, in its place) become a page with the matching status.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from careloop_shared.admission import RETRY_AFTER, Refusal
from careloop_shared.consumer import is_unavailable
from careloop_shared.doors import reply_body
from careloop_shared.logging import get_logger
from workspace.client import ServiceError
from workspace.security import security_headers
from workspace.web import clear_session_cookie, current_session, redirect, render, workspace_of

log = get_logger(__name__)

UNAVAILABLE_RETRY_AFTER_S = 2  # what a 503 page asks to wait when nobody said how long


async def on_sign_in_required(request: Request, _: Exception) -> Response:
    return redirect("/signin?notice=sign-in-needed")


async def on_csrf_refused(request: Request, _: Exception) -> Response:
    message = "This form has expired or did not come from this page. Go back, reload the page and try again."
    return error_page(request, 403, "The form could not be accepted", message)


async def on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if exc.status == 401:
        # The services no longer accept the token: the session is worth nothing.
        session = await current_session(request)
        if session is not None:
            await workspace_of(request).sessions.end(session)
        response = redirect("/signin?notice=session-ended")
        clear_session_cookie(response, workspace_of(request).ctx)
        return response
    if exc.status in (403, 404, 409, 410, 422):  # 410: the patient's details were erased
        return error_page(request, exc.status, "That could not be done", exc.message)
    return failed_call_page(request, exc, "That could not be done")


def failed_call_page(request: Request, exc: ServiceError, title: str) -> HTMLResponse:
    """A service unreachable, too slow or busy (429, 503): 503 with Retry-After, since the same request
    may well succeed in a moment; any other failure of it: 502."""
    if exc.status is None or exc.status in (429, 503):
        response = error_page(request, 503, title, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after_s or UNAVAILABLE_RETRY_AFTER_S)
        return response
    return error_page(request, 502, title, exc.message)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_page(request, 404, "Page not found", "There is no such page, or not one you may see.")
    if exc.status_code == 405:
        return error_page(request, 405, "Not here", "That page cannot be used that way.")
    return error_page(request, exc.status_code, "That could not be done", "The request was not understood.")


async def on_invalid_request(request: Request, exc: Exception) -> Response:
    """A malformed address (404) or form (422): where and why, never the value (it may be patient data)."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("loc", ("",))[0] == "path" for e in errors):
        return error_page(request, 404, "Page not found", "There is no such page, or not one you may see.")
    where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())[1:]))}: {e.get('msg')}" for e in errors)
    status = 422 if any(e.get("loc", ("",))[0] == "body" for e in errors) else 400
    return error_page(request, status, "That could not be done", f"Please check: {where}.")


async def on_unavailable(request: Request, exc: Exception) -> Response:
    """The workspace's own database could not be reached, or dropped the connection: 503, try again."""
    if not is_unavailable(exc):
        return await on_unexpected_error(request, exc)
    log.warning("the workspace's database is unavailable", error=type(exc).__name__)
    message = "The workspace could not reach its database just now. Try again in a moment."
    response = error_page(request, 503, "Not available just now", message)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    return response


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    reference = str(uuid.uuid4())
    log.error("unhandled error", reference=reference, exc_info=exc)
    message = f"Something went wrong on our side. If it happens again, quote reference {reference}."
    response = error_page(request, 500, "Something went wrong", message)
    # Answered outside the middleware (by Starlette's outermost one): the headers are added here.
    response.headers.update(security_headers(https=workspace_of(request).ctx.secure_cookies))
    return response


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "message": message}, status_code=status_code)


def busy_page(templates: Jinja2Templates) -> Refusal:
    """How the workspace refuses a request it has no turn for (``Admission``): a page, not JSON. It is
    the same for everyone (no session is read for it), so it is rendered once, here."""
    page = {"title": "Busy just now", "person": None, "csrf_token": None, "notice": None, "error": None}
    body = templates.get_template("busy.html").render(page, active=None).encode()

    async def refuse(send: Send) -> None:
        await reply_body(send, 503, body, b"text/html; charset=utf-8", [RETRY_AFTER])

    return refuse
