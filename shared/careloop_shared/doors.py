"""What every service's HTTP door checks before a route runs, and the answers it may give.

``Doors`` is plain ASGI in front of the routes. A request with a body must say it is JSON (else 415; a
FHIR search by POST, a path ending in ``/_search``, may send a form instead) and must not be larger
than the service's limit (else 413, before the rest is read). Text that PostgreSQL cannot keep (the
NUL character) is refused with a 422 that names where it was, in the path, the query or the body (a
form's by field), and never echoes the value. Everything else is the routes' schemas' business.

``declare_answers`` writes the answers the kernel gives into each route's OpenAPI entry (401, 403, 404
where the path names something, 409 where the route changes something, 413 and 415 where it takes a
body, 422, 429), so clients and fuzzers know every status they can get.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, get_args, get_origin
from urllib.parse import parse_qsl, unquote

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careloop_shared.errors import Invalid, problem
from careloop_shared.events import is_json_content_type

_NUL_ESCAPE = b"\\u0000"
FORM = "application/x-www-form-urlencoded"
SEARCH_BY_POST = "/_search"  # FHIR's search by POST: its parameters may come as a form
NUL_MSG = "text cannot contain the NUL character (U+0000)"
QUERY_HINTS = "x-careloop-not-in-query"
_JSON_BODY = "the body must be JSON, sent as Content-Type: application/json"
SEARCH_BODY = "a search by POST sends its parameters as application/x-www-form-urlencoded"
# A request scope's refusal of its body, found before the route ran and raised once the caller is known
# and allowed the route (``refused_body``): a caller without either learns no more than 401 or 403.
REFUSED_BODY = "careloop.refused_body"


class Problem(BaseModel):
    """A refusal: what was refused and why. Some answers add fields that help the caller recover
    (the existing record's id, the current version, the missing permission)."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="What was refused and why; never quotes the request's values.")


class InputProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then the field's path.")
    type: str = Field(description="What kind of problem, e.g. missing, string_too_long, unknown_entry.")
    msg: str = Field(description="Why, for a person; never quotes the value.")


class InvalidInput(BaseModel):
    """Input that breaks the schema or a rule; one entry per problem."""

    detail: list[InputProblem]


BUSY_NOTE = "Or the service is busy: nothing was done; retry after Retry-After seconds."
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
}


def _answer(description: str, model: type[BaseModel] = Problem, **extra: Any) -> dict[str, Any]:
    return {"description": description, "model": model, **extra}


ALWAYS: dict[int | str, dict[str, Any]] = {
    401: _answer("No valid bearer token: missing, expired, or not signed by a trusted issuer."),
    403: _answer("The caller's role does not grant what the route needs (named in missing_permission)."),
    422: _answer("The input breaks the schema or a rule; each problem names where and why.", InvalidInput),
    429: _answer("Too many requests from this agency or token; retry after Retry-After seconds.",
                 headers=_RETRY_AFTER),
    503: _answer("The service is busy (nothing was done), or a dependency (the database, the audit log,"
                 " intake for a patient's data key) is unavailable; retry after Retry-After seconds.",
                 headers=_RETRY_AFTER),
}  # fmt: skip
NAMED: dict[int | str, dict[str, Any]] = {
    404: _answer("Nothing of that id that the caller may see (another agency's looks the same).")
}
CHANGES: dict[int | str, dict[str, Any]] = {
    409: _answer("Not possible in the present state (a stale version, a duplicate, a closed item).")
}
WITH_BODY: dict[int | str, dict[str, Any]] = {
    413: _answer("The body is larger than the service accepts."),
    415: _answer("The body is not JSON (Content-Type: application/json)."),
}


def api_routes(routes: Iterable[Any]) -> list[APIRoute]:
    """Every ``APIRoute`` of ``routes`` (an app's), those of included routers too: FastAPI may list an
    included router as one entry holding its routes."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        for inner in ("original_router", "router"):
            if hasattr(route, inner) and hasattr(getattr(route, inner), "routes"):
                found += api_routes(getattr(route, inner).routes)
    return found


def declare_answers(route: APIRoute) -> None:
    """Adds the kernel's answers to ``route``'s documented responses, before the route is included in
    an app (FastAPI reads them then). A route's own description of one of them is kept, with its body;
    a 503 of its own is told that the service may be busy too."""
    extra: dict[int | str, dict[str, Any]] = dict(ALWAYS)
    if route.param_convertors or any(name.endswith("_id") for name in _query_names(route.dependant)):
        extra.update(NAMED)
    if (route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
        extra.update(CHANGES)
    if route.body_field is not None:
        extra.update(WITH_BODY)
    for code, answer in extra.items():
        key = code if code in route.responses else str(code)
        own = route.responses.get(key)
        if own is None:
            route.responses[code] = answer
            continue
        if code == 503 and BUSY_NOTE not in own.get("description", ""):
            # Any route may be refused as busy (careloop_shared.admission), whatever else its 503 means.
            # A copy: a route's own answers are often one dict shared by several routes.
            own = {
                **own,
                "description": f"{own.get('description', '').rstrip('.')}. {BUSY_NOTE}",
                "headers": {**_RETRY_AFTER, **own.get("headers", {})},
            }
            route.responses[key] = own
        if "model" not in own and "content" not in own:
            own["model"] = answer["model"]


_SEQUENCES = (list, tuple, set, frozenset)


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) in _SEQUENCES or any(
        get_origin(a) in _SEQUENCES for a in get_args(annotation)
    )


def _query_names(dependant: Dependant, *, lists_only: bool = False) -> Iterator[str]:
    """The query parameters an operation takes (a model of them, like paging, by its fields)."""
    for q in dependant.query_params:
        annotation = q.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, field in annotation.model_fields.items():
                if not lists_only or _is_list(field.annotation):
                    yield field.alias or name
        elif not lists_only or _is_list(annotation):
            yield q.alias
    for sub in dependant.dependencies:
        yield from _query_names(sub, lists_only=lists_only)


def elsewhere(hints: dict[str, str]) -> dict[str, Any]:
    """A route's ``openapi_extra`` part: for parameters it does not take but a caller may try, where
    they belong instead (the 422's message), e.g. a name, which is never taken in a URL."""
    return {QUERY_HINTS: hints}


def check_query(route: APIRoute, query: list[tuple[str, str]]) -> None:
    """A parameter the route does not take is a 422 (``?limit=`` where there is no paging would
    otherwise be ignored; the route may say where it belongs instead, ``elsewhere``), and so is one
    that takes one value given more than once (which would count is a guess: Starlette takes the
    last)."""
    known = route.__dict__.get("_careloop_query")
    if known is None:  # worked out once per route and kept with it
        known = route.__dict__["_careloop_query"] = (
            frozenset(_query_names(route.dependant)),
            frozenset(_query_names(route.dependant, lists_only=True)),
        )
    names, lists = known
    counts = Counter(name for name, _ in query)
    hints = (route.openapi_extra or {}).get(QUERY_HINTS, {})
    problems = [problem(["query", n], "unknown_parameter", hints.get(n, "not a parameter of this operation"))
                for n in sorted(counts) if n not in names]  # fmt: skip
    why = "given more than once; it takes one value"
    problems += [
        problem(["query", n], "repeated", why) for n in sorted(counts) if counts[n] > 1 and n in names - lists
    ]
    if problems:
        raise Invalid(problems)


def nul_locations(value: Any, loc: tuple[str | int, ...] = ("body",)) -> Iterator[list[str | int]]:
    """Where in a decoded JSON value a string (or a key) holds NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            yield list(loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield [*loc, "<key>"]
            else:
                yield from nul_locations(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from nul_locations(item, (*loc, i))


class Doors:
    """Plain ASGI: content type, body size and NUL checks before the app sees the request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problems = self._nul_in_url(scope)
        if problems:
            await reply(send, 422, {"detail": problems})
            return
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        try:
            declared = int(length) if length is not None else None
        except ValueError:
            await reply(send, 400, {"detail": "Content-Length is not a number"})
            return
        if not chunked and not declared:
            await self.app(scope, receive, send)
            return
        content_type, search = headers.get("content-type", ""), scope["path"].endswith(SEARCH_BY_POST)
        form = search and is_form(content_type)
        if not form and not is_json_content_type(content_type, suffixed=True):
            await reply(send, 415, {"detail": SEARCH_BODY if search else _JSON_BODY})
            return
        if declared is not None and declared > self.max_body_bytes:
            await reply(send, 413, self._too_large())
            return
        body = await read_body(receive, self.max_body_bytes)
        if body is None:
            await reply(send, 413, self._too_large())
            return
        if form:
            names = _form_nul_names(body)
            if names:
                where: list[list[str | int]] = [["body", n] if n else ["body"] for n in names]
                await reply(send, 422, {"detail": [problem(loc, "nul_character", NUL_MSG) for loc in where]})
                return
        elif _NUL_ESCAPE in body:
            where = _body_nul_locations(body)
            if where:
                await reply(send, 422, {"detail": [problem(loc, "nul_character", NUL_MSG) for loc in where]})
                return
        await self.app(scope, replay(body, receive), send)

    def _too_large(self) -> dict[str, Any]:
        return {
            "detail": f"the body is larger than {self.max_body_bytes} bytes",
            "limit": self.max_body_bytes,
        }

    @staticmethod
    def _nul_in_url(scope: Scope) -> list[dict[str, Any]]:
        problems = []
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if b"%00" in raw_path or b"\x00" in raw_path or "\x00" in scope["path"]:
            problems.append(problem(["path"], "nul_character", NUL_MSG))
        names = _form_nul_names(scope.get("query_string", b""))
        problems.extend(
            problem(["query", name] if name else ["query"], "nul_character", NUL_MSG) for name in names
        )
        return problems


async def refused_body(request: Request) -> None:
    """A body refused before the route ran (``fhir_searches.SearchesByPost``: a search by POST's that is
    not a form, or not UTF-8), raised by the app's ``authorized`` once the caller is signed in and
    allowed the route, so before the route runs."""
    refused = request.scope.get(REFUSED_BODY)
    if refused is not None:
        raise refused


def is_form(content_type: str) -> bool:
    """``application/x-www-form-urlencoded``, whatever its parameters."""
    return content_type.partition(";")[0].strip().lower() == FORM


def _form_nul_names(encoded: bytes) -> list[str]:
    """The fields of URL-encoded pairs (a query, a form) whose name or value holds NUL; ``[""]`` when
    one does and no name can be given; none when none does."""
    if b"%00" not in encoded and b"\x00" not in encoded:
        return []
    decoded = parse_qsl(encoded.decode("latin-1"), keep_blank_values=True)
    return sorted({unquote(k).replace("\x00", "") for k, v in decoded if "\x00" in k + v}) or [""]


def _body_nul_locations(body: bytes) -> list[list[str | int]]:
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []  # not JSON: the route's validation says so
    return list(nul_locations(decoded))


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The whole body, or None once it passes ``limit`` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """What the app reads once the body has been read: ``body``, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def reply(
    send: Send, status: int, content: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A JSON answer from plain ASGI, before any route runs."""
    await reply_body(send, status, json.dumps(content).encode(), b"application/json", headers)


async def reply_body(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A whole answer from plain ASGI: ``body`` of ``content_type``, with ``headers``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def document_codes(app: FastAPI, codes: Mapping[tuple[str, str], Iterable[str]]) -> None:
    """The codes a body field takes, from the rules the service loaded (an organisation's own files
    included), as that field's ``enum`` in the OpenAPI document: ``{("AssessmentIn", "instrument"):
    rules.instruments}``. The service still checks them; clients and fuzzers now know them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = build()
        for (model, field), values in codes.items():
            prop = doc["components"]["schemas"][model]["properties"][field]
            target = next((b for b in prop.get("anyOf", [prop]) if b.get("type") == "string"), prop)
            target["enum"] = sorted(values)
            target.pop("pattern", None)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
