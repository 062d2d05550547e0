"""Calling the other services as the signed-in person, and turning their refusals into plain words.

``Services`` carries the person's bearer token; every call has the timeouts of ``WORKSPACE_HTTP_TIMEOUT_S``.
A refusal or an outage raises ``ServiceError`` with a message fit to show on the page: the services'
answers never echo input values (a 422 names where and why), so nothing here can leak patient data into
a message, and nothing here logs a body.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from careloop_shared.errors import SafeMessageError
from careloop_shared.fhir import FHIR_JSON, PREFIX
from careloop_shared.logging import get_logger

log = get_logger(__name__)

_NAMES = {"intake": "Intake", "careplan": "Care plans", "referral": "Referrals", "followup": "Follow-up"}
_NAMES |= {"record": "The case record"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a form's input, as a service said it: which field, and why."""

    field: str
    message: str


@dataclass(eq=False)
class ServiceError(SafeMessageError):
    """A call that did not succeed; ``message`` is written for the person at the screen."""

    service: str
    status: int | None  # None: the service could not be reached or did not answer in time
    message: str
    problems: list[Problem] = field(default_factory=list)
    retry_after_s: int | None = None  # a busy service's (429, 503) Retry-After, when it gave one
    existing_id: uuid.UUID | None = None  # a 409's record already there (intake's likely duplicate)

    def __str__(self) -> str:
        return self.message

    def for_field(self, name: str) -> list[str]:
        """The messages about one form field (a template shows them beside it)."""
        return [p.message for p in self.problems if p.field == name]


@dataclass(frozen=True)
class Listing:
    """One page of a service's list (``items``/``next_offset``), or why it could not be shown."""

    items: list[dict[str, Any]]
    offset: int = 0
    limit: int = 20
    next_offset: int | None = None
    error: ServiceError | None = None

    @property
    def previous_offset(self) -> int | None:
        return None if self.offset == 0 else max(0, self.offset - self.limit)


def new_http_client(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one client the workspace calls services with (``transport``: a fake one in tests)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
        transport=transport,
    )


class Services:
    """The services, as one person: ``await services.get("followup", "/v1/caseload")``."""

    def __init__(self, http: httpx.AsyncClient, urls: Mapping[str, str], token: str) -> None:
        self._http = http
        self._urls = urls
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def get(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self._call("GET", service, path, params=_params(params))

    async def fhir(self, service: str, url: str, params: Mapping[str, Any] | None = None) -> Any:
        """A FHIR read or search at ``url``: one of the service's own ``/fhir/R4/`` addresses (a search's
        ``next`` link is one), so the person's token goes nowhere else."""
        root = self._urls[service]
        if not url.startswith(f"{root}{PREFIX}/"):
            raise ServiceError(service, None, f"{_name(service)} gave an address that is not its own.")
        # No params: the link's own query stands (httpx drops it for an empty one).
        query = None if params is None else _params(params)
        path = url.removeprefix(root)
        return await self._call("GET", service, path, params=query, headers={"Accept": FHIR_JSON})

    async def post(self, service: str, path: str, body: Any, *, idempotency_key: str | None = None) -> Any:
        """``idempotency_key``: the form's own key, so a resubmitted form stores nothing twice."""
        return await self._call("POST", service, path, json=body, headers=_keyed(idempotency_key))

    async def patch(self, service: str, path: str, body: Any, *, idempotency_key: str | None = None) -> Any:
        """Only the fields in ``body`` change; ``idempotency_key`` as for ``post``."""
        return await self._call("PATCH", service, path, json=body, headers=_keyed(idempotency_key))

    async def delete(self, service: str, path: str, *, idempotency_key: str | None = None) -> Any:
        return await self._call("DELETE", service, path, headers=_keyed(idempotency_key))

    async def page(
        self, service: str, path: str, *, offset: int = 0, limit: int = 20, **params: Any
    ) -> Listing:
        """One page of a list; a refusal or an outage becomes the listing's ``error`` (shown in its
        place on the page), except a refused sign-in, which ends the page."""
        try:
            answer = await self.get(service, path, {**params, "offset": offset, "limit": limit})
        except ServiceError as exc:
            if exc.status == 401:
                raise
            return Listing([], offset, limit, None, exc)
        return Listing(list(answer["items"]), offset, limit, answer.get("next_offset"))

    async def _call(self, method: str, service: str, path: str, **kwargs: Any) -> Any:
        url = f"{self._urls[service]}{path}"
        headers = {**self._headers, **kwargs.pop("headers", {})}
        try:
            response = await self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            log.warning("service did not answer in time", service=service, error=type(exc).__name__)
            raise ServiceError(service, None, f"{_name(service)} did not answer in time; try again.") from exc
        except httpx.HTTPError as exc:
            log.warning("service unavailable", service=service, error=type(exc).__name__)
            raise ServiceError(service, None, f"{_name(service)} is unavailable; try again shortly.") from exc
        if response.is_success:
            return response.json() if response.content else None
        raise refusal(service, response)


def refusal(service: str, response: httpx.Response) -> ServiceError:
    """What a service's refusal means to the person, from its status and (code-only) body."""
    status = response.status_code
    body = _json(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    name = _name(service)
    if status == 401:
        return ServiceError(service, status, "Your sign-in has expired or was not accepted; sign in again.")
    if status == 403:
        needed = body.get("missing_permission") if isinstance(body, dict) else None
        why = f" (it needs the permission {needed})" if isinstance(needed, str) else ""
        return ServiceError(service, status, f"Your role may not do this{why}.")
    if status == 404:
        return not_found(service)
    if status == 410:
        return ServiceError(
            service, status, "The patient's identifying details were erased; the pseudonymous case stays."
        )
    if status == 409:
        text = detail if isinstance(detail, str) else "it changed in the meantime"
        return ServiceError(
            service,
            status,
            f"Not possible now: {text}. Reload the page and try again.",
            existing_id=_uuid_or_none(body.get("existing_id") if isinstance(body, dict) else None),
        )
    if status == 422:
        problems = [_problem(p) for p in detail] if isinstance(detail, list) else []
        return ServiceError(service, status, "Some of what was entered needs correcting.", problems)
    if status == 429 or status >= 500:
        log.warning("service failed", service=service, status=status)
        return ServiceError(
            service,
            status,
            f"{name} could not answer just now ({status}); try again shortly.",
            retry_after_s=_retry_after(response) if status in (429, 503) else None,
        )
    return ServiceError(service, status, f"{name} refused the request ({status}).")


def not_found(service: str) -> ServiceError:
    """A 404 as the person is told it: what does not exist and what their agency may not see look alike
    (the services answer both so); also for a page's own finding that an id is not this patient's."""
    return ServiceError(service, 404, "Not found, or not something your agency may see.")


def _keyed(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> int | None:
    """The seconds a service asked to wait, within reason (1 to 60); None for none or an HTTP date."""
    value = response.headers.get("retry-after", "").strip()
    # ASCII digits only, and few: str.isdigit() takes "²", and int() refuses thousands of digits.
    return min(max(int(value), 1), 60) if value.isascii() and value.isdigit() and len(value) <= 9 else None


_PATTERN = re.compile(r"String should match pattern '[^']*'")


def readable(message: str) -> str:
    """A validation message in plain words (pydantic's patterns are not for people)."""
    message = message.replace("Value error, ", "")
    message = _PATTERN.sub("is not in the expected form", message)
    return message.replace("Field required", "This is needed")


def _problem(entry: Any) -> Problem:
    if not isinstance(entry, dict):
        return Problem("", "invalid input")
    loc = [str(part) for part in entry.get("loc", ()) if part not in ("body", "query", "path")]
    # The field is the first part of the location (a form's field name); the rest says where inside it.
    message = readable(str(entry.get("msg") or entry.get("type") or "invalid"))
    where = ".".join(loc[1:])
    return Problem(loc[0] if loc else "", f"{where}: {message}" if where else message)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _name(service: str) -> str:
    return _NAMES.get(service, service)


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None}
