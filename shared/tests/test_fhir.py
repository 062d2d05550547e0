"""The kernel's FHIR pieces: refusals as OperationOutcome, searchset Bundles, the CapabilityStatement
from the routes a service declares; each validated with ``fhir.resources`` (R4B, the nearest to R4)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from pydantic import BaseModel, ConfigDict

from careloop_shared import doors
from careloop_shared.errors import Refusal
from careloop_shared.fhir import (
    FHIR_JSON,
    FORM_ANSWERS,
    OperationOutcomeDoc,
    SearchPage,
    capability_statement,
    document_answers,
    documented,
    fhir_router,
    interaction,
    links_as_get,
    operation_outcome,
    search_form,
    searchset,
)
from careloop_shared.fhir_searches import serve_fhir
from careloop_shared.http import needs
from careloop_shared.testing import client_of


def test_every_kernel_refusal_is_an_operation_outcome_saying_the_same():
    refusals = {
        401: {"detail": "missing bearer token"},
        403: {"detail": "role analyst lacks permission consent:read", "missing_permission": "consent:read"},
        404: {"detail": "patient not found"},
        409: {"detail": "likely duplicate", "existing_id": "0b7e"},
        413: {"detail": "the body is larger than 262144 bytes", "limit": 262144},
        415: {"detail": "the body must be JSON"},
        422: {"detail": [{"loc": ["query", "patient"], "type": "missing", "msg": "search by one patient"}]},
        429: {"detail": "too many requests"},
        500: {"detail": "internal error", "request_id": "r-1"},
        503: {"detail": "the audit log is unavailable; try again"},
    }
    codes = {}
    for status, body in refusals.items():
        outcome = operation_outcome(status, body)
        OperationOutcome.model_validate(outcome)
        codes[status] = outcome["issue"][0]["code"]
    assert codes == {401: "login", 403: "forbidden", 404: "not-found", 409: "conflict", 413: "too-long",
                     415: "not-supported", 422: "invalid", 429: "throttled", 500: "exception",
                     503: "transient"}  # fmt: skip
    [issue] = operation_outcome(422, refusals[422])["issue"]
    assert (issue["diagnostics"], issue["details"]) == (
        "query.patient: search by one patient",
        {"text": "missing"},
    )
    [denied] = operation_outcome(403, refusals[403])["issue"]
    assert denied["details"] == {"text": "missing_permission: consent:read"}


async def _refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return JSONResponse(exc.body(), status_code=exc.status_code)


class ThingForm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient: str | None = None
    name: str | None = None


def _app() -> FastAPI:
    router = fhir_router("careloop test")

    @router.get("/Thing/{thing_id}", openapi_extra={**needs("x:read"), **interaction("Thing", "read")})
    async def thing(thing_id: str) -> JSONResponse:
        return JSONResponse({"detail": "thing not found"}, status_code=404, headers={"X-Kept": "yes"})

    @router.get(
        "/Thing",
        openapi_extra={**needs("x:read"), **interaction("Thing", "search-type", patient="reference")},
    )
    async def things(request: Request) -> JSONResponse:
        return JSONResponse(searchset(request, [{"resourceType": "Patient", "id": "p1"}], next_offset=1))

    @router.post(
        "/Thing/_search",
        openapi_extra={
            **needs("x:read"),
            **documented(
                interaction("Thing", "search-type", patient="reference", name="string"), {"name": "whole"}
            ),
        },
        responses=FORM_ANSWERS,
        dependencies=[Depends(search_form)],
    )
    async def things_by_post(request: Request, form: Annotated[ThingForm, Form()]) -> JSONResponse:
        page = SearchPage()
        links = links_as_get(request, "Thing", {"patient": form.patient or ""}, page, 50)
        return JSONResponse(searchset(request, [{"resourceType": "Patient", "id": "p1"}], links=links))

    @router.get(
        "/Other",
        openapi_extra={**needs("x:read"), **interaction("Other", "search-type", patient="reference")},
    )
    async def others(request: Request, patient: str, _count: int = 50) -> JSONResponse:
        return JSONResponse(searchset(request, [{"resourceType": "Patient", "id": patient}]))

    app = FastAPI()
    app.include_router(document_answers(router), dependencies=[Depends(doors.refused_body)])  # as create_app
    app.add_exception_handler(Refusal, _refused)  # as every service's app does

    @app.get("/v1/thing")
    async def plain() -> JSONResponse:
        return JSONResponse({"detail": "nope"}, status_code=404)

    return serve_fhir(app)


async def test_a_refusal_on_a_fhir_path_is_answered_as_fhir_and_elsewhere_as_before():
    async with client_of(_app(), "http://t") as client:
        refused = await client.get("/fhir/R4/Thing/1")
        assert (refused.status_code, refused.headers["content-type"]) == (404, FHIR_JSON)
        assert refused.headers["x-kept"] == "yes"
        outcome = OperationOutcome.model_validate(refused.json())
        assert outcome.issue[0].code == "not-found" and outcome.issue[0].diagnostics == "thing not found"
        no_route = await client.get("/fhir/R4/Nothing/1/2")
        assert (no_route.status_code, no_route.json()["resourceType"]) == (404, "OperationOutcome")
        plain = await client.get("/v1/thing")
        assert plain.json() == {"detail": "nope"}
        found = await client.get("/fhir/R4/Thing?patient=p1")
        bundle = Bundle.model_validate(found.json())
        assert bundle.type == "searchset" and bundle.entry[0].fullUrl == "http://t/fhir/R4/Patient/p1"
        assert [link.relation for link in bundle.link] == ["self", "next"]
        assert "_offset=1" in bundle.link[1].url
        statement = CapabilityStatement.model_validate((await client.get("/fhir/R4/metadata")).json())
        thing, _other = statement.rest[0].resource
        assert thing.type == "Thing"
        assert [i.code for i in thing.interaction] == ["read", "search-type"]
        assert [(p.name, p.type) for p in thing.searchParam] == [("patient", "reference"), ("name", "string")]


def test_fhir_routes_document_refusals_as_operation_outcome_and_leave_the_kernel_answers_alone():
    app = _app()
    operation = app.openapi()["paths"]["/fhir/R4/Thing/{thing_id}"]["get"]
    for status in ("401", "403", "404", "422", "429", "503"):
        content = operation["responses"][status]["content"]
        assert list(content) == [FHIR_JSON]
        assert content[FHIR_JSON]["schema"]["$ref"].endswith("/OperationOutcomeDoc")
    assert doors.ALWAYS[401]["model"] is doors.Problem  # the shared answers were copied, not changed
    assert (
        OperationOutcomeDoc.model_json_schema()["properties"]["resourceType"]["const"] == "OperationOutcome"
    )


def test_a_capability_statement_lists_only_declared_interactions():
    statement = capability_statement(
        [], software="careloop x", version="0.1.0", date=datetime(2026, 11, 30, tzinfo=UTC)
    )
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1" and statement["rest"][0]["resource"] == []


def test_a_search_page_counts_from_its_offset():
    page = SearchPage.model_validate({"_count": 2, "_offset": 4})
    assert (page.fetch_limit, page.next_offset(3), page.next_offset(2)) == (3, 6, None)


async def test_a_search_by_post_takes_a_form_once_each_and_links_to_the_same_search_by_get():
    async with client_of(_app(), "http://t") as client:
        found = await client.post("/fhir/R4/Thing/_search", data={"patient": "p1", "name": "Ann"})
        assert found.status_code == 200, found.text
        bundle = Bundle.model_validate(found.json())
        assert [link.url for link in bundle.link] == [
            "http://t/fhir/R4/Thing?patient=p1&_count=50&_offset=0",
            "http://t/fhir/R4/Thing?patient=p1&_count=50&_offset=50",
        ]
        as_json = await client.post("/fhir/R4/Thing/_search", json={"patient": "p1"})
        assert (as_json.status_code, as_json.json()["issue"][0]["code"]) == (415, "not-supported")
        twice = await client.post(
            "/fhir/R4/Thing/_search",
            content=b"name=Ann&name=Bob",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert twice.status_code == 422 and "Ann" not in twice.text and "Bob" not in twice.text
        assert (
            twice.json()["issue"][0]["diagnostics"] == "body.name: given more than once; it takes one value"
        )
        empty = await client.post("/fhir/R4/Thing/_search", data={"name": "", "patient": "p1"})
        assert empty.status_code == 422  # FastAPI would take it as left out: a search for everyone
        assert (
            empty.json()["issue"][0]["diagnostics"]
            == "body.name: given without a value; leave it out or give one"
        )
        unknown = await client.post("/fhir/R4/Thing/_search", data={"colour": "red"})
        assert unknown.status_code == 422 and "red" not in unknown.text
        statement = CapabilityStatement.model_validate((await client.get("/fhir/R4/metadata")).json())
        thing, _other = statement.rest[0].resource
        assert [i.code for i in thing.interaction] == ["read", "search-type"]  # by GET and by POST: one
        params = {p.name: p.documentation for p in thing.searchParam}
        assert params == {"patient": None, "name": "whole"}
    operation = _app().openapi()["paths"]["/fhir/R4/Thing/_search"]["post"]
    assert list(operation["requestBody"]["content"]) == ["application/x-www-form-urlencoded"]
    assert "not a form" in operation["responses"]["415"]["description"]


def test_the_openapi_document_lists_each_search_by_post_beside_its_get():
    paths = _app().openapi()["paths"]
    get, post = paths["/fhir/R4/Other"]["get"], paths["/fhir/R4/Other/_search"]["post"]
    form = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert sorted(form["properties"]) == ["_count", "patient"] and form["required"] == ["patient"]
    assert form["properties"]["_count"]["type"] == "integer"
    assert post["x-careloop-permission"] == get["x-careloop-permission"] == "x:read"
    assert {"413", "415"} <= set(post["responses"]) and set(get["responses"]) <= set(post["responses"])
    assert post["operationId"] == f"{get['operationId']}_by_post"
    # A route of its own keeps its own document; the GET search of a type with one is not doubled.
    own = paths["/fhir/R4/Thing/_search"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]
    assert own["schema"] == {"$ref": "#/components/schemas/ThingForm"}


async def test_every_type_searched_by_get_is_searched_by_post_with_the_same_checks():
    async with client_of(_app(), "http://t") as client:
        found = await client.post("/fhir/R4/Other/_search?_count=2", data={"patient": "p1"})
        assert found.status_code == 200, found.text
        bundle = Bundle.model_validate(found.json())
        assert bundle.entry[0].resource.id == "p1"  # the form's parameter reached the search
        assert bundle.link[0].url == "http://t/fhir/R4/Other?_count=2&patient=p1"
        spaced = await client.post("/fhir/R4/Other/_search", data={"patient": "a b"})
        assert spaced.json()["entry"][0]["resource"]["id"] == "a b"
        # The search by GET's own checks: a parameter it lacks, one of the wrong kind (and, in a service's
        # app, one it does not take: intake's FHIR tests).
        for form, where in (
            ({"_count": "1"}, "query.patient"),
            ({"patient": "p1", "_count": "many"}, "query._count"),
        ):
            refused = await client.post("/fhir/R4/Other/_search", data=form)
            assert refused.status_code == 422, refused.text
            assert refused.json()["issue"][0]["diagnostics"].startswith(where), refused.text
        as_json = await client.post("/fhir/R4/Other/_search", json={"patient": "p1"})
        assert (as_json.status_code, as_json.json()["resourceType"]) == (415, "OperationOutcome")
        latin = await client.post(
            "/fhir/R4/Other/_search",
            content=b"patient=\xe9",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert latin.status_code == 422 and latin.json()["issue"][0]["details"] == {"text": "not_utf8"}
        # A type with a POST search of its own keeps it; a type not searched has no search by POST.
        own = await client.post("/fhir/R4/Thing/_search", data={"patient": "p1"})
        assert own.json()["link"][0]["url"] == "http://t/fhir/R4/Thing?patient=p1&_count=50&_offset=0"
        assert (await client.post("/fhir/R4/Nothing/_search", data={"a": "b"})).status_code in (404, 405)
