"""What a service's routes depend on: the caller, the permission a route needs, commands, pages, audit.

A route names the permission it needs (``needs``), builds a domain command from the request and hands
it to ``Commands.run`` with the handler that carries it out. Reads use the service's store over the
pool (``read_store``) and its context (``service_context``); a read that discloses a patient's data
records it first (``Audit``). The app around the routes is built in ``app.create_app``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from careloop_shared.audit import AuditEntry
from careloop_shared.auth import Principal, authenticate, bearer
from careloop_shared.body import MAX_INT
from careloop_shared.command_groups import grouped
from careloop_shared.db import AGENCY
from careloop_shared.idempotency import at_most_once, idempotency_key
from careloop_shared.logging import get_logger
from careloop_shared.outbox import UnitOfWork
from careloop_shared.runtime import ServiceRuntime

log = get_logger(__name__)


def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


PRINCIPAL_STATE = "careloop_principal"  # request.state: who the caller is, once authenticated


async def sign_in(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Who the bearer token names (401 else), kept on the request for the rest of it."""
    runtime = get_runtime(request)
    who = await authenticate(credentials, runtime.settings, runtime.verified_tokens)
    AGENCY.set(who.agency_id)  # row-level security: this request's connections see its agency's rows
    setattr(request.state, PRINCIPAL_STATE, who)
    return who


async def current_principal(request: Request) -> Principal:
    """The caller, as the app's ``authorized`` dependency signed them in before anything else of the
    route ran. Read from the request rather than solved as a dependency of its own: FastAPI works out
    each dependency it solves again on every request, cached or not (README, Performance)."""
    who: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    if who is None:  # a route outside create_app's routers: sign in here
        who = await sign_in(request, await bearer(request))
    return who


# Dependencies are coroutines: FastAPI runs a plain function in a worker thread, a hand-off per
# dependency per request that costs more than the work itself.


async def runtime_dependency(request: Request) -> ServiceRuntime:
    return get_runtime(request)


async def service_context(request: Request) -> Any:
    """The service's context; a service names its type: ``Annotated[Ctx, Depends(service_context)]``."""
    return get_runtime(request).context


async def read_store(request: Request) -> Any:
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


Runtime = Annotated[ServiceRuntime, Depends(runtime_dependency)]
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
        patient_id: uuid.UUID | None = None,
    ) -> JSONResponse:
        """``handler(context, uow, command)``; ``respond`` shapes its result into the response body
        (or a ``Reply``). A refusal raised by the handler rolls everything back. ``patient_id``: whom the
        request is about, when neither its path nor its command says (a response kept for a replay goes
        with that patient's erasure)."""
        context = self._runtime.context

        async def operation(uow: UnitOfWork[Any]) -> tuple[int, Any]:
            result = await handler(context, uow, command)
            answer = respond(result) if respond is not None else result
            if isinstance(answer, Reply):
                return answer.status_code, answer.body
            return status_code, answer

        patient = patient_id or getattr(command, "patient_id", None)
        once = at_most_once(self._request, self._principal, command, operation, patient_id=patient_id)
        groups = self._runtime.command_groups
        if groups is not None and grouped(handler):
            # Shares a transaction with the commands arriving with it (careloop_shared.command_groups):
            # one patient's one after another; one about no patient yet (a registration) after none but
            # a request with its Idempotency-Key, which then replays it.
            together = (handler, self._principal.agency_id)
            order: Any = patient
            if order is None:  # the header is read again only here, off the path of a patient's commands
                key = idempotency_key(self._request)
                order = ("idempotency-key", key) if key else object()
            return await groups.run(together, order, once)
        async with self._runtime.uow() as uow:  # a transaction of its own
            return await once(uow)


async def command_runner(request: Request) -> CommandRunner:
    return CommandRunner(get_runtime(request), request, await current_principal(request))


Commands = Annotated[CommandRunner, Depends(command_runner)]

T = TypeVar("T")


VersionNumber = Annotated[int, Field(ge=1, le=MAX_INT)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_INT)]
# A directory entry's, a material's or an instrument's id in the URL: a code, never free text.
CodePath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class PageParams(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_INT)

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


def route_name(request: Request) -> str:
    """Method and route template: names what was asked, never the ids or values in the URL."""
    return f"{request.method} {getattr(request.scope.get('route'), 'path', '<unmatched>')}"


class Auditor:
    """Records, for one request, which patient's data the route discloses (``Audit`` dependency)."""

    def __init__(self, runtime: ServiceRuntime, request: Request, principal: Principal) -> None:
        self._runtime = runtime
        self._request = request
        self._principal = principal

    def entry(
        self,
        patient_id: uuid.UUID | None,
        what: str,
        *,
        entity_id: Any = None,
        patient_agency_id: str | None = None,
        outcome: str = "allowed",
        outcome_detail: str | None = None,
    ) -> AuditEntry:
        who, client = self._principal, self._request.client
        return AuditEntry(
            subject=who.subject,
            role=who.role,
            agency_id=who.agency_id,
            network_address=client.host if client else None,
            source=self._runtime.spec.name,
            patient_id=patient_id,
            # A route answers for its caller's agency's patients unless it says otherwise.
            patient_agency_id=patient_agency_id or (who.agency_id if outcome == "allowed" else None),
            what=what,
            entity_id=None if entity_id is None else str(entity_id),
            route=route_name(self._request),
            outcome=outcome,
            outcome_detail=outcome_detail,
        )

    async def read(
        self, patient_id: uuid.UUID, what: str, *, entity_id: Any = None, patient_agency_id: str | None = None
    ) -> None:
        """Record that the answer discloses this patient's ``what``; returns once it is stored."""
        await self.read_many([(patient_id, entity_id)], what, patient_agency_id=patient_agency_id)

    async def read_many(
        self, disclosed: Sequence[tuple[uuid.UUID, Any]], what: str, *, patient_agency_id: str | None = None
    ) -> None:
        """The same for every (patient, entity) a list discloses."""
        await self._runtime.audit.record(
            [self.entry(p, what, entity_id=e, patient_agency_id=patient_agency_id) for p, e in disclosed]
        )

    async def found_nobody(self, what: str) -> None:
        """A search by a person's identifying details that found no patient: one entry naming none
        (``none found``), so that the attempt is kept as a search that finds someone is (their reads)."""
        await self._runtime.audit.record([self.entry(None, what, outcome_detail="none found")])


async def auditor(request: Request) -> Auditor:
    return Auditor(get_runtime(request), request, await current_principal(request))


Audit = Annotated[Auditor, Depends(auditor)]
