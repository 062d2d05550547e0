"""Composition root of the workspace: settings -> context -> sessions, clients, templates -> app.

The workspace consumes and publishes no events, so it has no ``ServiceRuntime``: it uses the kernel's
settings, logging, pool and migrations, and the kernel's access log (route templates, never URLs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import httpx
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from careloop_shared import db, metrics, tracing
from careloop_shared.admission import Admission
from careloop_shared.app import ALWAYS_ADMITTED, NO_FASTAPI_TELEMETRY, AccessLog
from careloop_shared.clock import Clock, system_clock
from careloop_shared.consumer import UNAVAILABLE_TYPES
from careloop_shared.logging import configure_logging, get_logger
from careloop_shared.settings import DEV_JWT_SECRET
from workspace import (
    access,
    activity,
    appointments,
    assessment,
    contacts,
    contributions,
    erasure,
    errors,
    fhir_record,
    finding,
    followup_actions,
    necessity,
    pages,
    patient,
    patient_details,
    plan_actions,
    plan_progress,
    programs,
    provider,
    recruitment,
    referral_actions,
    referral_measures,
    registration,
    signin,
    supervisor,
    team_actions,
    to_dos,
    web,
)
from workspace.client import ServiceError, new_http_client
from workspace.config import WorkspaceContext, WorkspaceSettings
from workspace.oidc_signin import OidcClient
from workspace.security import SecurityHeaders
from workspace.sessions import SessionBackend, Sessions
from workspace.store import SessionStore

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
STATIC = Path(__file__).parent / "static"
READY_TIMEOUT_S = 2.0


def build_app(
    settings: WorkspaceSettings | None = None,
    *,
    clock: Clock = system_clock,
    store: SessionBackend | None = None,
    services_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app; ``store`` and ``services_transport`` replace the database and the services in tests."""
    settings = settings or WorkspaceSettings()
    ctx = WorkspaceContext(settings, clock)
    sessions = Sessions(store or cast(SessionBackend, _NotStarted()), ctx)
    workspace = web.Workspace(
        ctx=ctx,
        sessions=sessions,
        http=new_http_client(settings.http_timeout_s, services_transport),
        oidc=None,
        templates=web.new_templates(ctx),
    )
    # A service's span of a call the workspace makes is a child of the workspace's request span.
    workspace.http.event_hooks["request"].append(_trace_context)
    if settings.oidc_enabled:
        workspace.oidc = OidcClient(settings, new_http_client(settings.oidc_http_timeout_s), clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = None
        if store is None:
            pool = await db.create_pool(
                settings.own_database_url(), min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
            await db.migrate(pool, db.folder_migrations("workspace", MIGRATIONS))
            sessions.store = SessionStore(pool)
        try:
            yield
        finally:
            await workspace.http.aclose()
            if workspace.oidc is not None:
                await workspace.oidc.aclose()
            if pool is not None:
                await pool.close()

    app = FastAPI(
        title="careloop workspace",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(web.check_csrf)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    app.state.workspace = workspace
    app.add_exception_handler(web.SignInRequired, errors.on_sign_in_required)
    app.add_exception_handler(web.CsrfRefused, errors.on_csrf_refused)
    app.add_exception_handler(ServiceError, errors.on_service_error)
    app.add_exception_handler(StarletteHTTPException, errors.on_http_error)
    app.add_exception_handler(RequestValidationError, errors.on_invalid_request)
    for unavailable in UNAVAILABLE_TYPES:
        app.add_exception_handler(unavailable, errors.on_unavailable)
    app.add_exception_handler(Exception, errors.on_unexpected_error)
    # A busy workspace answers the page it has no turn for at once (busy_page) instead of letting
    # each wait behind the others; inside SecurityHeaders, so that page has its headers too.
    app.add_middleware(
        Admission,
        limit=settings.http_max_active,
        wait_s=settings.http_queue_wait_s,
        exempt=ALWAYS_ADMITTED,
        service="workspace",
        refuse=errors.busy_page(workspace.templates),
    )
    app.add_middleware(SecurityHeaders, https=ctx.secure_cookies)
    app.add_middleware(AccessLog, service="workspace")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "alive"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await sessions.store.ping()
        except Exception as exc:  # whatever the reason, not ready; the log says which kind
            log.warning("database unreachable", error=type(exc).__name__)
            return JSONResponse(
                {"status": "not ready", "checks": {"database": "unreachable"}}, status_code=503
            )
        return JSONResponse({"status": "ready", "checks": {"database": "ok"}})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(registration.router)
    app.include_router(finding.router)  # /patients/find before /patients/{patient_id}
    app.include_router(patient.router)
    app.include_router(patient_details.router)
    app.include_router(erasure.router)
    app.include_router(access.router)
    app.include_router(activity.router)
    app.include_router(referral_measures.router)
    app.include_router(fhir_record.router)
    app.include_router(assessment.router)
    app.include_router(plan_actions.router)
    app.include_router(plan_progress.router)
    app.include_router(team_actions.router)
    app.include_router(contributions.router)
    app.include_router(necessity.router)
    app.include_router(referral_actions.router)
    app.include_router(followup_actions.router)
    app.include_router(contacts.router)
    app.include_router(to_dos.router)
    app.include_router(supervisor.router)
    app.include_router(recruitment.router)
    app.include_router(provider.router)
    app.include_router(appointments.router)
    app.include_router(programs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _trace_context(request: httpx.Request) -> None:
    tracing.inject(request.headers)


class _NotStarted:
    """The session table before the lifespan has opened the pool: every use says so."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the workspace's database pool is not open yet")


def run() -> None:
    settings = WorkspaceSettings()
    configure_logging(settings.service_name, settings.log_level)
    tracing.configure(settings.service_name)  # only when the OTEL_* variables ask for it
    refusal = settings.unsafe_to_serve()
    if refusal:
        raise SystemExit(refusal)
    if settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
        log.warning("using the development JWT secret; set CARELOOP_JWT_SECRET outside development")
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    run()
