"""FHIR's search by POST for every type searched by GET, answered (``SearchesByPost``) and documented in
the OpenAPI document; ``serve_fhir`` installs both, with refusals as OperationOutcomes, on an app whose
FHIR routes are declared."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from careloop_shared.doors import (
    FORM,
    REFUSED_BODY,
    SEARCH_BODY,
    SEARCH_BY_POST,
    WITH_BODY,
    api_routes,
    is_form,
    read_body,
    replay,
)
from careloop_shared.errors import Invalid, UnsupportedBody, problem
from careloop_shared.fhir import FORM_ANSWERS, INTERACTION_KEY, OperationOutcomes


def searched_by_post(routes: Sequence[Any]) -> frozenset[str]:
    """The paths searched by GET whose ``/_search`` no route takes: ``SearchesByPost`` answers those."""
    found = api_routes(routes)
    posted = {r.path for r in found if "POST" in (r.methods or ())}
    return frozenset(
        r.path
        for r in found
        if "GET" in (r.methods or ())
        and (r.openapi_extra or {}).get(INTERACTION_KEY, {}).get("code") == "search-type"
        and r.path + SEARCH_BY_POST not in posted
    )


def _search_by_post(get: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI operation of a search by POST, from the GET search it is answered as: the same
    parameters as a form's fields, the same permission and answers, and the body's own refusals."""
    fields = [p for p in get.get("parameters", []) if p.get("in") == "query"]
    form = {
        "type": "object",
        "properties": {p["name"]: {**p["schema"], **_described(p)} for p in fields},
        "required": [p["name"] for p in fields if p.get("required")],
    }
    refused = get["responses"].get("422", {}).get("content", {})
    body_answers = {
        "413": {"description": WITH_BODY[413]["description"], "content": refused},
        "415": {"description": FORM_ANSWERS[415]["description"], "content": refused},
    }
    return {
        **{k: v for k, v in get.items() if k not in ("parameters", "operationId", "description")},
        "operationId": f"{get.get('operationId', 'search')}_by_post",
        "description": "FHIR's search by POST: the GET search's parameters as a form, answered as that"
        " search is (the URL may carry some of them too).",
        "requestBody": {"content": {FORM: {"schema": form}}, "required": True},
        "responses": {**get["responses"], **body_answers},
    }


def _described(parameter: dict[str, Any]) -> dict[str, Any]:
    return {"description": parameter["description"]} if "description" in parameter else {}


def _documenting_searches_by_post(app: FastAPI) -> None:
    """``app.openapi()`` documents ``POST [type]/_search`` beside each GET search ``SearchesByPost``
    answers, so that a client (and a fuzzer) reading the document finds them."""
    made = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:  # made, the searches added: FastAPI keeps it
            return app.openapi_schema
        schema = made()
        paths = schema["paths"]
        for path in sorted(searched_by_post(app.router.routes)):
            get = paths.get(path, {}).get("get")
            if get is not None and "post" not in paths.get(path + SEARCH_BY_POST, {}):
                paths.setdefault(path + SEARCH_BY_POST, {})["post"] = _search_by_post(get)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class SearchesByPost:
    """Plain ASGI, innermost: FHIR's search by POST for every type searched by GET that has no POST
    route of its own. ``POST [type]/_search`` with a form is answered as ``GET [type]?`` with the URL's
    parameters and then the form's, so the search route checks them as it checks any (an unknown one, one
    given twice or empty: 422), under its own permission. The kernel's door has already bounded the
    body and refused NUL in it; another body is a 415, one that is not UTF-8 a 422. ``Patient/_search``
    has a route of its own: a name must never reach a URL, and this puts the form in the request's."""

    def __init__(self, app: ASGIApp, routes: Sequence[Any]) -> None:
        self.app = app
        self._routes = routes  # the app's, read at the first request (every route declared by then)
        self._searched: frozenset[str] | None = None

    def searched(self) -> frozenset[str]:
        if self._searched is None:
            self._searched = searched_by_post(self._routes)
        return self._searched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.endswith(SEARCH_BY_POST)
            or path.removesuffix(SEARCH_BY_POST) not in self.searched()
        ):
            await self.app(scope, receive, send)
            return
        refused: Exception | None = None
        body = b""
        if not is_form(dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")):
            refused = UnsupportedBody(SEARCH_BODY)
        else:
            body = await read_body(receive) or b""  # the door has bounded it
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                refused, body = Invalid([problem(["body"], "not_utf8", "the form is not UTF-8 text")]), b""
        query = b"&".join(part for part in (scope.get("query_string", b""), body) if part)
        searched = path.removesuffix(SEARCH_BY_POST)
        headers = [
            (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type", b"content-length")
        ]
        as_get = {**scope, "method": "GET", "path": searched, "raw_path": searched.encode(),
                  "query_string": query, "headers": headers}  # fmt: skip
        if refused is not None:  # raised once the caller is signed in and allowed the search
            as_get[REFUSED_BODY] = refused
        await self.app(as_get, replay(b"", receive), send)  # the search by GET reads no body


def serve_fhir(app: FastAPI) -> FastAPI:
    """The app's FHIR paths answer refusals as OperationOutcome, and every type searched by GET is
    searched by POST too (``SearchesByPost``); call once the app is built."""
    app.user_middleware.append(Middleware(SearchesByPost, routes=app.router.routes))  # innermost
    app.add_middleware(OperationOutcomes)
    _documenting_searches_by_post(app)
    return app
