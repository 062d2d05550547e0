"""The app around a service's routes: health, event docs, authentication, the permission matrix on every
route, refusals answered once (and audited on a patient's routes), the audit log's routes, and ``serve``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from faststream.specification import AsyncAPI, get_asyncapi_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careloop_shared import audit_api, metrics, tracing
from careloop_shared.admission import Admission
from careloop_shared.audit import AuditUnavailable
from careloop_shared.auth import BearerCredentials, Principal
from careloop_shared.consumer import UNAVAILABLE_TYPES, is_unavailable
from careloop_shared.crypto import Erased, Unreadable
from careloop_shared.db import AGENCY, NO_AGENCY, RowTypeChanged
from careloop_shared.doors import Doors, check_query, declare_answers, refused_body
from careloop_shared.errors import Refusal
from careloop_shared.http import (
    PRINCIPAL_STATE,
    Auditor,
    get_runtime,
    permission_of,
    route_name,
    sign_in,
    validation_errors,
)
from careloop_shared.logging import configure_logging, get_logger
from careloop_shared.patient_keys import KeysUnavailable
from careloop_shared.permissions import PermissionMatrix, authorize, load_matrix
from careloop_shared.ratelimit import RateLimits, TooManyRequests
from careloop_shared.runtime import ServiceRuntime
from careloop_shared.settings import DEV_JWT_SECRET

if TYPE_CHECKING:  # FastAPI before 0.145 has no fastapi.telemetry (and keeps the argument as an extra)
    from fastapi.telemetry import TelemetryConfig

log = get_logger(__name__)


def _check_permissions(router: APIRouter, matrix: PermissionMatrix) -> None:
    """Every route names a permission the matrix knows; a route without one would refuse everybody."""
    known = set(matrix.permissions())
    for route in router.routes:
        if isinstance(route, APIRoute) and permission_of(route) not in known:
            methods = ",".join(sorted(route.methods or ()))
            raise ValueError(f"route {methods} {route.path} needs a known permission (http.needs)")


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": validation_errors(exc.errors())},
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (404 no such route, 405), except its 400 for a body that is not JSON
    text (not UTF-8, say): that is input like any other, a 422 that says where. careloop's own code
    raises no 400 (a bad header is an ``Invalid`` at the header), so a 400 here is the body's."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={
                "detail": [{"loc": ["body"], "type": "json_invalid", "msg": "the body is not JSON text"}]
            },
        )
    return await http_exception_handler(request, exc)


async def _on_refusal(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    if exc.status_code in (403, 404):
        await _audit_refusal(request, exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    return JSONResponse(status_code=exc.status_code, content=jsonable_encoder(exc.body()), headers=headers)


async def _audit_refusal(request: Request, exc: Refusal) -> None:
    """A refused attempt at a patient's data (or at one record by its id) is audited too."""
    who: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    ids = {k: v for k, v in request.path_params.items() if k.endswith("_id")}
    if who is None or not ids:
        return
    patient_id = _uuid(ids.pop("patient_id", None))
    entity = next(iter(ids.values()), None)
    what = (permission_of(request.scope.get("route")) or "unknown").split(":")[0]
    detail = exc.body().get("missing_permission") or str(exc)
    entry = Auditor(get_runtime(request), request, who).entry(
        patient_id, what, entity_id=entity, outcome="denied", outcome_detail=str(detail)[:200]
    )
    try:
        await get_runtime(request).audit.record([entry])
    except AuditUnavailable:
        log.error("a refused attempt could not be audited", route=entry.route)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def _on_audit_unavailable(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": "the audit log is unavailable; try again"})


async def _on_unreadable(_: Request, exc: Exception) -> JSONResponse:
    """Sealed data whose key does not open here (a key-encryption key removed from configuration too
    soon): the service's configuration, not the request, so 503 saying so; the message names no value."""
    log.error("sealed data could not be opened", reason=str(exc))
    return JSONResponse(
        status_code=503,
        content={
            "detail": "a key needed to read this data is not configured on this service; try again later"
        },
    )


async def _on_keys_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """intake could not release a patient's data key just now: nothing was read or written; try again."""
    log.warning("a patient's data key could not be had from intake", reason=str(exc))
    return JSONResponse(
        status_code=503,
        content={"detail": "the patient's data key could not be had from intake just now; try again"},
        headers={"Retry-After": "5"},
    )


async def _on_row_type_changed(_: Request, __: Exception) -> JSONResponse:
    """A table's columns changed under a connection (a migration while this version runs): nothing was
    written, the connection has forgotten the old columns, so the same request will go through."""
    log.warning("a table's columns changed under a connection; nothing was written")
    return JSONResponse(
        status_code=503,
        content={"detail": "the service's database changed just now; nothing was saved; try again"},
        headers={"Retry-After": "1"},
    )


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database (or the broker) could not be reached, or dropped the connection, while the request
    was handled: the service's state, not the request's, so 503 and a retry, never a 500. Whether a
    write that was under way was kept cannot be known here; sent again with its Idempotency-Key, it is
    applied at most once."""
    if not is_unavailable(exc):
        return await _on_unexpected_error(request, exc)
    log.warning("a server the request needed is unavailable", error=type(exc).__name__)
    return JSONResponse(
        status_code=503,
        content={"detail": "the service's database is unavailable just now; try again"},
        headers={"Retry-After": "2"},
    )


async def _on_erased(_: Request, __: Exception) -> JSONResponse:
    """Sealed data of a patient whose data key was destroyed (erasure): gone for good, said plainly."""
    return JSONResponse(
        status_code=410, content={"detail": "this patient's sensitive data was erased and cannot be read"}
    )


# What PostgreSQL cannot store (a number beyond its column, a NUL character in text) is the request's
# fault: a clear 422. Its message may quote the value (PHI), so neither the answer nor the log holds it.
UNSTORABLE = (
    "a value in the request cannot be stored: a number out of range, or text with a character such as"
    " NUL that cannot be kept"
)


async def _on_unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, asyncpg.DataError)
    log.warning(
        "request value cannot be stored",
        route=route_name(request),
        error_type=type(exc).__name__,
        sqlstate=getattr(exc, "sqlstate", None),
    )
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [{"loc": ["request"], "type": "value_not_storable", "msg": UNSTORABLE}]},
    )


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    log.error("unhandled error", request_id=request_id, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error", "request_id": request_id})


# FastAPI's own OpenTelemetry (0.145 on; 0.165 here) is off: with a global provider installed (an operator's
# auto-instrumentation, or FASTAPI_OTEL_AUTO_CONFIGURE) it would export each request's path, with the
# patient's id, and its query values, and log exceptions, whose messages may quote a value. careloop's
# server span (AccessLog, careloop_shared.tracing) names the route template only. Off, it also costs no
# check of the providers on every request.
NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "auto_configure": False,
}

# Never held by Admission: an orchestrator must see a busy service as alive and ready.
ALWAYS_ADMITTED = ("/healthz", "/readyz", "/metrics")


class AccessLog:
    """One log line per request, its duration in ``careloop_http_request_duration_seconds`` and, when
    tracing, a server span: each naming the route template (never the ids in the URL).

    Plain ASGI: Starlette's BaseHTTPMiddleware costs a task and a stream per request.
    """

    def __init__(self, app: ASGIApp, service: str = "careloop") -> None:
        self.app = app
        self.metrics = metrics.HttpMetrics(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        # A request sees no agency's rows until its caller is known (current_principal), and leaves
        # the variable as it found it (an app called in its caller's task, as tests do).
        agency = AGENCY.set(NO_AGENCY)
        span = tracing.start_server_span(scope)
        self.metrics.in_flight.inc()

        async def send_and_note(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            with tracing.active(span):
                await self.app(scope, receive, send_and_note)
        finally:
            AGENCY.reset(agency)
            duration = time.perf_counter() - started
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", metrics.UNMATCHED_ROUTE)
            self.metrics.observe(scope["method"], route, status_code, duration)
            tracing.end_server_span(span, scope["method"], route, status_code)
            log.info(
                "http request",
                method=scope["method"],
                route=route,
                status=status_code,
                duration_ms=round(duration * 1000, 2),
            )


def create_app(
    runtime: ServiceRuntime,
    routers: Sequence[APIRouter],
    *,
    description: str,
    permissions: PermissionMatrix | None = None,
) -> FastAPI:
    """The service's app: health, event docs, refusals answered once, and every route of ``routers``
    behind authentication and the permission matrix (``permissions``, else the shipped one)."""
    matrix = permissions or load_matrix()
    limits = RateLimits(runtime.settings.rate_limit_agency, runtime.settings.rate_limit_token)

    async def authorized(request: Request, credentials: BearerCredentials) -> None:
        """Every route's first dependency: who the caller is (``sign_in``), within limits, allowed
        the route's permission; routes read the caller from the request (``CurrentPrincipal``)."""
        who = await sign_in(request, credentials)
        await limits.check(who.agency_id, request.headers.get("authorization", ""))
        route = request.scope.get("route")
        # The raw query string: ``request.url`` would build a URL from the headers for every request.
        if isinstance(route, APIRoute) and request.scope.get("query_string"):
            check_query(route, request.query_params.multi_items())
        authorize(matrix, who.role, permission_of(route))
        await refused_body(request)  # a search by POST's (fhir_searches.SearchesByPost)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=f"careloop {runtime.spec.name}",
        version="0.1.0",
        description=description,
        lifespan=lifespan,
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Refusal, _on_refusal)
    app.add_exception_handler(AuditUnavailable, _on_audit_unavailable)
    app.add_exception_handler(Unreadable, _on_unreadable)
    app.add_exception_handler(KeysUnavailable, _on_keys_unavailable)
    app.add_exception_handler(Erased, _on_erased)
    app.add_exception_handler(RowTypeChanged, _on_row_type_changed)
    app.add_exception_handler(asyncpg.DataError, _on_unstorable_value)
    for unavailable in UNAVAILABLE_TYPES:
        if unavailable not in app.exception_handlers:  # RowTypeChanged keeps its own answer
            app.add_exception_handler(unavailable, _on_unavailable)
    app.add_exception_handler(Exception, _on_unexpected_error)

    app.add_middleware(Doors, max_body_bytes=runtime.settings.http_max_body_bytes)
    app.add_middleware(
        Admission,
        limit=runtime.settings.http_max_active,
        wait_s=runtime.settings.http_queue_wait_s,
        exempt=ALWAYS_ADMITTED,
        service=runtime.spec.name,
    )
    app.add_middleware(AccessLog, service=runtime.spec.name)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """Alive, unless the event consumer is stuck with work waiting (then restart the process)."""
        if await runtime.consumer_stalled():
            return JSONResponse(status_code=503, content={"status": "consumer stalled"})
        return JSONResponse({"status": "alive"})

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ready" if ready else "not ready", "checks": checks},
        )

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics_text() -> Response:
        """Prometheus metrics of this process: no authentication, no rate limit, not in the API document."""
        await runtime.observe()
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    events_doc = AsyncAPI(
        runtime.broker,
        title=f"careloop {runtime.spec.name} events",
        version="1.0.0",
        description=f"Kafka topics {runtime.spec.name} publishes and consumes (CloudEvents, binary mode).",
    )

    @app.get("/asyncapi.json", tags=["events"], include_in_schema=False)
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(events_doc.to_specification().to_jsonable())

    @app.get("/asyncapi", tags=["events"], include_in_schema=False)
    async def asyncapi_html() -> HTMLResponse:
        return HTMLResponse(get_asyncapi_html(events_doc.to_specification(), try_it_out_path=None))

    for router in [*routers, audit_api.router]:
        _check_permissions(router, matrix)
        for route in router.routes:
            if isinstance(route, APIRoute):
                declare_answers(route)
        app.include_router(router, dependencies=[Depends(authorized)])
    return app


def serve(app: FastAPI) -> None:
    """Run one service process: JSON logs, no uvicorn access log (ours names routes, not URLs)."""
    runtime: ServiceRuntime = app.state.runtime
    settings = runtime.settings
    configure_logging(settings.service_name, settings.log_level)
    tracing.configure(settings.service_name)  # only when the OTEL_* variables ask for it
    if settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
        # Anyone can mint tokens with the development secret: it is only for a service on loopback.
        if settings.host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(
                f"refusing to listen on {settings.host} with the development JWT secret;"
                " set CARELOOP_JWT_SECRET"
            )
        log.warning("using the development JWT secret; set CARELOOP_JWT_SECRET outside development")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        limit_concurrency=settings.http_max_concurrency,
        # The C event loop and HTTP parser: fewer CPU cycles per request and per database round trip.
        loop="uvloop",
        http="httptools",
    )
