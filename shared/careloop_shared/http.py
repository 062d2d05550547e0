"""The HTTP side every service shares: app factory, health, dependencies, commands, PHI-safe errors.

A route builds a domain command from the request and hands it to ``Commands.run`` with the handler
that carries it out; a refusal the handler raises (``careloop_shared.errors``) is answered here, once.
Reads use the service's store over the pool (``read_store``) and its context (``service_context``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from faststream.specification import AsyncAPI, get_asyncapi_html
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careloop_shared.auth import BearerCredentials, Principal, authenticate
from careloop_shared.errors import Refusal
from careloop_shared.idempotency import run_idempotent
from careloop_shared.logging import configure_logging, get_logger
from careloop_shared.outbox import UnitOfWork
from careloop_shared.permissions import PermissionMatrix, authorize, load_matrix
from careloop_shared.runtime import ServiceRuntime
from careloop_shared.settings import DEV_JWT_SECRET

log = get_logger(__name__)


def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    settings = get_runtime(request).settings
    return authenticate(credentials, settings.jwt_secret.get_secret_value(), settings.jwt_issuer)


def service_context(request: Request) -> Any:
    """The service's context; a service names its type: ``Annotated[Ctx, Depends(service_context)]``."""
    return get_runtime(request).context


def read_store(request: Request) -> Any:
    """The service's store over the pool, for reads: ``Annotated[Store, Depends(read_store)]``."""
    return get_runtime(request).reader()


PERMISSION_KEY = "x-careloop-permission"


def needs(permission: str) -> dict[str, Any]:
    """The permission a route needs, as its ``openapi_extra``: ``@router.get(..., openapi_extra=needs(
    "patient:read"))``. It is checked before anything else runs, and shown in the OpenAPI document."""
    return {PERMISSION_KEY: permission}


def permission_of(route: Any) -> str | None:
    extra = getattr(route, "openapi_extra", None) or {}
    permission: str | None = extra.get(PERMISSION_KEY)
    return permission


def _check_permissions(router: APIRouter, matrix: PermissionMatrix) -> None:
    """Every route names a permission the matrix knows; a route without one would refuse everybody."""
    known = set(matrix.permissions())
    for route in router.routes:
        if isinstance(route, APIRoute) and permission_of(route) not in known:
            methods = ",".join(sorted(route.methods or ()))
            raise ValueError(f"route {methods} {route.path} needs a known permission (http.needs)")


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

CommandHandler = Callable[[Any, UnitOfWork[Any], Any], Awaitable[Any]]


@dataclass(frozen=True)
class Reply:
    """An answer whose status depends on what the handler did (e.g. 201 created, 200 updated)."""

    body: Any
    status_code: int


class CommandRunner:
    """Carries out one command for an HTTP request: in one unit of work, once per Idempotency-Key."""

    def __init__(self, runtime: ServiceRuntime, request: Request, principal: Principal) -> None:
        self._runtime = runtime
        self._request = request
        self._principal = principal

    async def run(
        self,
        handler: CommandHandler,
        command: Any,
        *,
        status_code: int = 200,
        respond: Callable[[Any], Any] | None = None,
    ) -> JSONResponse:
        """``handler(context, uow, command)``; ``respond`` shapes its result into the response body
        (or a ``Reply``). A refusal raised by the handler rolls everything back."""
        context = self._runtime.context

        async def operation(uow: UnitOfWork[Any]) -> tuple[int, Any]:
            result = await handler(context, uow, command)
            answer = respond(result) if respond is not None else result
            if isinstance(answer, Reply):
                return answer.status_code, answer.body
            return status_code, answer

        return await run_idempotent(self._runtime, self._request, self._principal, command, operation)


def command_runner(request: Request, who: CurrentPrincipal) -> CommandRunner:
    return CommandRunner(get_runtime(request), request, who)


Commands = Annotated[CommandRunner, Depends(command_runner)]

T = TypeVar("T")


class PageParams(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)

    @property
    def fetch_limit(self) -> int:
        """Rows to ask the store for: one more than a page tells whether another page follows."""
        return self.limit + 1


Paging = Annotated[PageParams, Query()]


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_offset`` is null on the last page."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, fetched: list[T], params: PageParams) -> Page[T]:
        """``fetched`` holds up to ``params.fetch_limit`` items."""
        more = len(fetched) > params.limit
        return cls(
            items=fetched[: params.limit],
            limit=params.limit,
            offset=params.offset,
            next_offset=params.offset + params.limit if more else None,
        )


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Where and why the input is wrong, never the input itself (it may be patient data)."""
    return [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in errors]


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": validation_errors(exc.errors())},
    )


async def _on_refusal(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return JSONResponse(status_code=exc.status_code, content=jsonable_encoder(exc.body()))


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    log.error("unhandled error", request_id=request_id, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error", "request_id": request_id})


class AccessLog:
    """One log line per request, naming the route template (never the ids in the URL).

    Plain ASGI: Starlette's BaseHTTPMiddleware costs a task and a stream per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            log.info(
                "http request",
                method=scope["method"],
                route=getattr(route, "path", "<unmatched>"),
                status=status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
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

    async def authorized(request: Request, who: CurrentPrincipal) -> None:
        authorize(matrix, who.role, permission_of(request.scope.get("route")))

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
    )
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Refusal, _on_refusal)
    app.add_exception_handler(Exception, _on_unexpected_error)

    app.add_middleware(AccessLog)

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

    for router in routers:
        _check_permissions(router, matrix)
        app.include_router(router, dependencies=[Depends(authorized)])
    return app


def serve(app: FastAPI) -> None:
    """Run one service process: JSON logs, no uvicorn access log (ours names routes, not URLs)."""
    runtime: ServiceRuntime = app.state.runtime
    settings = runtime.settings
    configure_logging(settings.service_name, settings.log_level)
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
    )
