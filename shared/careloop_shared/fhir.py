"""FHIR R4 at a service's door: what every service's ``/fhir/R4/`` routes share.

A service declares its FHIR routes on ``fhir_router()`` (answers are ``application/fhir+json``; the
router already serves ``GET /fhir/R4/metadata``, a ``CapabilityStatement`` built from the routes that
name their interaction with ``interaction(...)``), then ``document_answers(router)`` before the app
is built, and ``serve_fhir(app)`` after: every refusal the kernel answers on a FHIR path (401, 403,
404, 409, 413, 415, 422, 429, 503, 500) becomes an ``OperationOutcome`` with the same status and
headers, documented as such. Search results are a ``Bundle`` of type ``searchset`` (``searchset``);
references name ``<Type>/<id>`` (``reference``). A search by patient declares ``BY_PATIENT``,
takes ``patient`` and ``subject`` as ``PatientQuery`` (the id, or ``Patient/<id>``) and reads the one
given with ``searched_patient``; ``Paging`` is a search's page. Resources are plain dicts built by the
services' own pure mappers; the tests validate them with ``fhir.resources``.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careloop_shared.doors import (
    SEARCH_BODY,
    declare_answers,
    is_form,
)
from careloop_shared.errors import Invalid, UnsupportedBody, problem
from careloop_shared.http import MAX_INT, needs

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"
PREFIX = "/fhir/R4"
INTERACTION_KEY = "x-fhir-interaction"
CAPABILITIES_PERMISSION = "capabilities:read"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
SDOH_CATEGORY = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


# -- building blocks ---------------------------------------------------------------------------------


def reference(resource_type: str, resource_id: Any) -> dict[str, Any]:
    """A literal reference to a resource the same server serves: ``{"reference": "Patient/<id>"}``."""
    return {"reference": f"{resource_type}/{resource_id}"}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def concept(*codings: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    return {**({"coding": list(codings)} if codings else {}), **({"text": text} if text else {})}


def instant(value: datetime) -> str:
    """A FHIR dateTime/instant: always with its time zone (UTC when the value has none)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def as_fhir(answer: Response, **headers: str) -> Response:
    """A command's JSON answer (``Commands.run``, replays included) as ``application/fhir+json``."""
    kept = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-type", "content-length")}
    return Response(answer.body, answer.status_code, {**kept, **headers}, media_type=FHIR_JSON)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def searchset(
    request: Request,
    resources: Sequence[dict[str, Any]],
    *,
    next_offset: int | None = None,
    total: int | None = None,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The resources that match a search, as a ``Bundle`` of type ``searchset``; ``next_offset`` (a
    further page) becomes the ``next`` link, the same query with ``_offset`` moved on; ``total``, the
    number of matches in all pages, when it is known (else left out, as FHIR allows). ``links``, when
    given, are the links instead (a search by POST: ``links_as_get``)."""
    base = base_url(request)
    if links is None:
        links = [{"relation": "self", "url": str(request.url)}]
        if next_offset is not None:
            links.append(
                {"relation": "next", "url": str(request.url.include_query_params(_offset=next_offset))}
            )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if total is not None:
        bundle["total"] = total
    bundle["entry"] = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    return bundle


def links_as_get(
    request: Request, resource_type: str, query: dict[str, str], page: SearchPage, next_offset: int | None
) -> list[dict[str, str]]:
    """A search by POST's links: the same search by GET (``query`` and the page), for parameters that may
    be in a URL. A search by a name must not: its links are the ``_search`` URL alone."""
    url = f"{base_url(request)}/{resource_type}"

    def at(offset: int) -> str:
        return f"{url}?{urlencode({**query, '_count': page.count, '_offset': offset})}"

    links = [{"relation": "self", "url": at(page.offset)}]
    return links + ([{"relation": "next", "url": at(next_offset)}] if next_offset is not None else [])


class SearchPage(BaseModel):
    """FHIR paging: ``_count`` results a page, from ``_offset``."""

    model_config = ConfigDict(populate_by_name=True)
    count: int = Field(50, ge=1, le=200, alias="_count")
    offset: int = Field(0, ge=0, le=MAX_INT, alias="_offset")

    @property
    def fetch_limit(self) -> int:
        return self.count + 1

    def next_offset(self, fetched: int) -> int | None:
        return self.offset + self.count if fetched > self.count else None

    def total(self, fetched: int) -> int | None:
        """All matches, when this page (of ``fetched`` rows, one resource each) is the last."""
        return self.offset + fetched if fetched <= self.count else None


def searchset_page(
    request: Request, page: SearchPage, fetched: int, found: Sequence[dict[str, Any]]
) -> FhirResponse:
    """A page of a search whose rows make one resource each: ``fetched`` rows were read with
    ``page.fetch_limit``, ``found`` is what the page's rows show; a next link when there were more, the
    total on the last page."""
    bundle = searchset(request, found, next_offset=page.next_offset(fetched), total=page.total(fetched))
    return FhirResponse(bundle)


# -- searching by patient -------------------------------------------------------------------------------

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
PATIENT_PATTERN = rf"^(Patient/)?{UUID_PATTERN}$"  # a patient in a search: its id, or ``Patient/<id>``
BY_PATIENT = {"patient": "reference", "subject": "reference"}  # what a search by patient declares
Paging = Annotated[SearchPage, Query()]
PatientQuery = Annotated[
    str | None, Query(pattern=PATIENT_PATTERN, max_length=44, description="Patient/<id>, or the id alone")
]


async def search_form(request: Request) -> None:
    """A search by POST (``[type]/_search``) takes its parameters as a form: another body is a 415. A
    parameter given more than once, or given empty, is a 422: each is taken once (the form's last would
    win unseen), and FastAPI reads an empty field as one left out (``family=`` would search for
    everyone). The route declares the form's fields with ``Annotated[<model>, Form()]`` and depends on
    this."""
    if not is_form(request.headers.get("content-type", "")):
        raise UnsupportedBody(SEARCH_BODY)
    items = (await request.form()).multi_items()
    counts = Counter(name for name, _ in items)
    problems = [
        problem(["body", n], "repeated", "given more than once; it takes one value")
        for n in sorted(counts)
        if counts[n] > 1
    ]
    empty = sorted({name for name, value in items if value == ""} - {n for n in counts if counts[n] > 1})
    problems += [
        problem(["body", n], "empty", "given without a value; leave it out or give one") for n in empty
    ]
    if problems:
        raise Invalid(problems)


FORM_ANSWERS: dict[int | str, dict[str, Any]] = {
    415: {"description": "The body is not a form (application/x-www-form-urlencoded)."}
}


def patient_of(search: str) -> uuid.UUID:
    """The patient a ``PatientQuery`` names (``Patient/<id>`` or the id alone)."""
    return uuid.UUID(search.removeprefix("Patient/"))


def searched_patient(patient: str | None, subject: str | None = None) -> uuid.UUID:
    """The one patient a search names, by ``patient`` or ``subject`` (422 for neither or both)."""
    given = [p for p in (patient, subject) if p is not None]
    if len(given) != 1:
        raise Invalid.at(
            ["query", "patient"], "missing", "search by one patient: patient=<id> or subject=<id>"
        )
    return patient_of(given[0])


# -- documentation models: what the OpenAPI document says a FHIR answer looks like --------------------


class ResourceDoc(BaseModel):
    """A FHIR R4 resource (JSON): every element as the FHIR specification defines it."""

    model_config = ConfigDict(extra="allow")
    resourceType: str
    id: str | None = None


class BundleDoc(ResourceDoc):
    """A ``Bundle`` of type ``searchset``: ``entry[].resource`` are the matches; ``link`` next pages."""

    resourceType: Literal["Bundle"]  # type: ignore[assignment]
    type: Literal["searchset"]
    total: int | None = None
    entry: list[dict[str, Any]]


class IssueDoc(BaseModel):
    severity: Literal["fatal", "error", "warning", "information"]
    code: str = Field(description="FHIR issue type: login, forbidden, not-found, invalid, throttled, ...")
    diagnostics: str | None = Field(None, description="What was refused and why; never a value sent.")
    details: dict[str, Any] | None = None


class OperationOutcomeDoc(BaseModel):
    """A refusal, as FHIR says it: one issue per problem, with where and why in ``diagnostics``."""

    resourceType: Literal["OperationOutcome"]
    issue: list[IssueDoc]


class CapabilityStatementDoc(ResourceDoc):
    resourceType: Literal["CapabilityStatement"]  # type: ignore[assignment]


# -- refusals as OperationOutcome ------------------------------------------------------------------

ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               409: "conflict", 413: "too-long", 415: "not-supported", 422: "invalid", 429: "throttled",
               503: "transient"}  # fmt: skip


def operation_outcome(status: int, body: Any) -> dict[str, Any]:
    """The kernel's refusal body (``{"detail": ...}``, a list of input problems, or extra fields that
    help recover) as an OperationOutcome; nothing is added that the refusal did not say."""
    code = ISSUE_CODES.get(status, "exception" if status >= 500 else "processing")
    detail = body.get("detail") if isinstance(body, dict) else None
    extra = {k: v for k, v in body.items() if k != "detail"} if isinstance(body, dict) else {}
    issues: list[dict[str, Any]] = []
    if isinstance(detail, list):
        for p in detail:
            where = ".".join(str(part) for part in p.get("loc", ())) if isinstance(p, dict) else ""
            msg = p.get("msg") if isinstance(p, dict) else str(p)
            issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": f"{where}: {msg}"}
            if isinstance(p, dict) and p.get("type"):
                issue["details"] = {"text": str(p["type"])}
            issues.append(issue)
    else:
        issue = {"severity": "error", "code": code, "diagnostics": str(detail or f"HTTP {status}")}
        if extra:
            issue["details"] = {"text": "; ".join(f"{k}: {v}" for k, v in sorted(extra.items()))}
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues or [{"severity": "error", "code": code}]}


class OperationOutcomes:
    """Plain ASGI, outermost: on a FHIR path, a JSON refusal (from a route, the permission check or a
    door) is answered as an ``OperationOutcome``, same status and headers, ``application/fhir+json``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def translate(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] >= 400 and content_type.startswith(b"application/json"):
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await _send_outcome(send, start, b"".join(chunks))
                return
            await send(message)

        await self.app(scope, receive, translate)


async def _send_outcome(send: Send, start: Message, body: bytes) -> None:
    try:
        decoded = json.loads(body) if body else {}
    except ValueError:
        decoded = {}
    payload = json.dumps(operation_outcome(start["status"], decoded)).encode()
    kept = [
        (k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type", b"content-length")
    ]
    headers = [*kept, (b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def document_answers(router: APIRouter) -> APIRouter:
    """The kernel's answers (``doors.declare_answers``) on each FHIR route, documented as the
    OperationOutcome they become. Call before the router is given to ``create_app``."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            declare_answers(route)
            for code, answer in list(route.responses.items()):
                if int(code) >= 400:  # a copy: the kernel's answers are shared by every route
                    route.responses[code] = {**answer, "model": OperationOutcomeDoc}
    return router


# -- the CapabilityStatement -----------------------------------------------------------------------


def interaction(resource_type: str, code: str, **search: str) -> dict[str, Any]:
    """A FHIR route's ``openapi_extra`` part: which interaction (``read``, ``search-type``,
    ``create``) on which type, and the search parameters it takes with their FHIR types."""
    return {INTERACTION_KEY: {"type": resource_type, "code": code, "search": search}}


def documented(declared: dict[str, Any], docs: dict[str, str]) -> dict[str, Any]:
    """An ``interaction(...)`` saying how this server reads some of its parameters (``docs``: a
    parameter's documentation), where that differs from FHIR's default."""
    return {INTERACTION_KEY: {**declared[INTERACTION_KEY], "documented": docs}}


def capability_statement(
    routes: Iterable[Any], *, software: str, version: str, date: datetime
) -> dict[str, Any]:
    """What a server does, from the routes that declare an interaction: a resource per type with its
    interactions and search parameters, in the order the routes were declared."""
    types: dict[str, dict[str, Any]] = {}
    for route in routes:
        declared = (getattr(route, "openapi_extra", None) or {}).get(INTERACTION_KEY)
        if not declared:
            continue
        resource = types.setdefault(declared["type"], {"type": declared["type"], "interaction": []})
        if {"code": declared["code"]} not in resource["interaction"]:  # a search by GET and by POST: one
            resource["interaction"].append({"code": declared["code"]})
        params = resource.setdefault("searchParam", []) if declared["search"] else []
        known = {p["name"] for p in params}
        documented = declared.get("documented", {})
        params += [
            {"name": n, "type": t, **({"documentation": documented[n]} if n in documented else {})}
            for n, t in declared["search"].items()
            if n not in known
        ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(date),
        "kind": "instance",
        "software": {"name": software, "version": version},
        "implementation": {"description": f"{software}: the FHIR R4 view of what it owns"},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": "A bearer JWT naming the caller's agency and role."},
                "resource": list(types.values()),
            }
        ],
    }


def fhir_router(software: str) -> APIRouter:
    """A router for ``/fhir/R4`` answering ``application/fhir+json``, with ``GET /metadata``: the
    CapabilityStatement of the interactions declared on this router's routes."""
    router = APIRouter(prefix=PREFIX, default_response_class=FhirResponse, tags=["fhir"])
    built = datetime.now(UTC)

    @router.get(
        "/metadata",
        response_model=CapabilityStatementDoc,
        openapi_extra=needs(CAPABILITIES_PERMISSION),
        summary="The CapabilityStatement: which resources and searches this service serves",
    )
    async def metadata(request: Request) -> FhirResponse:
        version = str(getattr(request.app, "version", ""))
        return FhirResponse(
            capability_statement(router.routes, software=software, version=version, date=built)
        )

    return router
