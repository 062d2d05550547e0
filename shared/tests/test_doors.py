"""The HTTP door every service has (``doors.Doors``), JSON types taken as they are (``body.Body``) and
the answers the kernel documents (``doors.declare_answers``): no broker, no database."""

import uuid
from datetime import UTC, date, datetime
from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

from careloop_shared.body import AwareMoment, Body, Moment
from careloop_shared.doors import (
    BUSY_NOTE,
    NUL_MSG,
    Doors,
    check_query,
    declare_answers,
    elsewhere,
    nul_locations,
)
from careloop_shared.errors import Conflict, Invalid
from careloop_shared.testing import client_of


class Child(Body):
    name: str


class Thing(Body):
    name: str
    born: date | None = None
    count: int = 0
    ratio: float = 1.0
    urgent: bool = False
    ref: uuid.UUID | None = None
    kids: list[Child] = []


router = APIRouter()


@router.post("/things/{thing_id}", status_code=201)
async def make(thing_id: str, body: Thing, q: str | None = None) -> dict:
    return {"name": body.name, "born": body.born, "kids": len(body.kids)}


@router.get("/things")
async def things(patient_id: uuid.UUID | None = None) -> list[str]:
    return []


@router.post("/finds/_search")
async def search(request: Request) -> dict:
    return {"form": (await request.body()).decode()}


@router.delete("/things/{thing_id}")
async def drop(thing_id: str) -> None:
    raise Conflict("no")


for _route in router.routes:
    assert isinstance(_route, APIRoute)
    declare_answers(_route)
app = FastAPI()
app.include_router(router)
app.add_middleware(Doors, max_body_bytes=1000)


@pytest.fixture
async def client():
    async with client_of(app, "http://t") as c:
        yield c


async def test_a_json_body_within_the_limit_reaches_the_route(client):
    r = await client.post("/things/a", json={"name": "x", "born": "2020-01-02", "kids": [{"name": "k"}]})
    assert r.status_code == 201, r.text
    assert r.json() == {"name": "x", "born": "2020-01-02", "kids": 1}
    charset = await client.post(
        "/things/a", content=b'{"name": "x"}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 201


async def test_a_body_past_the_limit_is_413_whether_announced_or_streamed(client):
    announced = await client.post("/things/a", json={"name": "x" * 2000})
    assert announced.status_code == 413
    assert announced.json() == {"detail": "the body is larger than 1000 bytes", "limit": 1000}

    async def chunks():
        for _ in range(10):
            yield b" " * 200

    streamed = await client.post("/things/a", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    "content_type",
    ["", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_a_body_that_is_not_said_to_be_json_is_415(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = await client.post("/things/a", content=b'{"name": "x"}', headers=headers)
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["detail"]


async def test_a_form_is_taken_by_a_search_by_post_only_and_nul_in_it_refused_by_field(client):
    form = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    found = await client.post("/finds/_search", content=b"name=Ann+Lee", headers=form)
    assert (found.status_code, found.json()) == (200, {"form": "name=Ann+Lee"})
    elsewhere = await client.post("/things/a", content=b"name=x", headers=form)
    assert elsewhere.status_code == 415
    as_text = await client.post("/finds/_search", content=b"name=x", headers={"content-type": "text/plain"})
    assert as_text.status_code == 415 and "x-www-form-urlencoded" in as_text.json()["detail"]
    for body, where in ((b"name=Se%00cret&b=1", ["body", "name"]), (b"na%00me=Secret", ["body", "name"])):
        refused = await client.post("/finds/_search", content=body, headers=form)
        assert refused.status_code == 422 and "cret" not in refused.text
        assert refused.json()["detail"] == [{"loc": where, "type": "nul_character", "msg": NUL_MSG}]
    past = await client.post("/finds/_search", content=b"name=" + b"x" * 2000, headers=form)
    assert past.status_code == 413


async def test_nul_is_refused_where_it_is_without_echoing_what_surrounds_it(client):
    body = await client.post("/things/a", json={"name": "ok", "kids": [{"name": "Se\x00cret"}]})
    assert body.status_code == 422
    assert body.json() == {
        "detail": [{"loc": ["body", "kids", 0, "name"], "type": "nul_character", "msg": NUL_MSG}]
    }
    query = await client.post("/things/a?q=Se%00cret", json={"name": "ok"})
    assert query.json()["detail"][0]["loc"] == ["query", "q"]
    path = await client.post("/things/Se%00cret", json={"name": "ok"})
    assert path.json()["detail"][0]["loc"] == ["path"]
    for r in (query, path):
        assert r.status_code == 422 and "cret" not in r.text
    # A backslash before u0000 is text, not NUL: it reaches the route.
    literal = await client.post(
        "/things/a", content=b'{"name": "a\\\\u0000"}', headers={"content-type": "application/json"}
    )
    assert literal.status_code == 201


def test_nul_locations_name_keys_without_quoting_them():
    assert list(nul_locations({"a": ["x", {"b\x00": 1}], "c": "\x00"})) == [
        ["body", "a", 1, "<key>"],
        ["body", "c"],
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [("born", 0), ("count", "1"), ("count", True), ("count", 1.5), ("urgent", 0), ("urgent", "true"),
     ("ratio", "1.0"), ("ref", 5), ("name", 5), ("kids", {"name": "k"})],
)  # fmt: skip
async def test_json_types_are_taken_as_they_are_not_guessed_at(client, field, value):
    r = await client.post("/things/a", json={"name": "x", field: value})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert problem["type"] == "json_type"


async def test_json_types_nested_and_numbers_as_numbers(client):
    nested = await client.post("/things/a", json={"name": "x", "kids": [{"name": 3}]})
    assert nested.status_code == 422
    assert nested.json()["detail"][0]["loc"] == ["body", "kids", 0, "name"]
    ok = await client.post("/things/a", json={"name": "x", "ratio": 2, "count": 3, "urgent": True})
    assert ok.status_code == 201, ok.text


class Period(Body):
    start: Moment
    end: AwareMoment | None = None


@pytest.mark.parametrize(
    "sent",
    [
        "0001-01-01T00:00:00Z",  # asyncpg stores it as -infinity and reads it back without an offset
        "9999-12-31T23:59:59.999999Z",  # and this as infinity
        "0001-01-01T00:00:00+01:00",  # before the first instant Python can name in UTC
        "9999-12-31T23:00:00-02:00",  # after the last
        "1899-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
    ],
)
def test_a_time_past_the_years_kept_is_refused_at_its_field(sent):
    with pytest.raises(ValidationError) as refused:
        Period.model_validate({"start": sent})
    [problem] = refused.value.errors()
    assert (problem["loc"], problem["type"]) == (("start",), "time_out_of_range")
    with pytest.raises(ValidationError) as refused:
        Period.model_validate({"start": "2026-12-01T00:00:00Z", "end": sent})
    assert [e["type"] for e in refused.value.errors()] == ["time_out_of_range"]


def test_a_time_without_an_offset_is_utcs_where_one_is_not_required():
    period = Period.model_validate({"start": "1900-01-01T00:00:00", "end": "2999-12-31T23:59:59+14:00"})
    assert period.start == datetime(1900, 1, 1, tzinfo=UTC)  # compares with the end: no TypeError
    assert period.start < period.end
    with pytest.raises(ValidationError) as refused:
        Period.model_validate({"start": "2026-12-01T00:00:00Z", "end": "2027-01-01T00:00:00"})
    assert refused.value.errors()[0]["type"] == "timezone_aware"


@pytest.mark.parametrize("sent", ["0", "0.5", "1700000000", "86400", " 2026-12-01", "12/01/2026"])
def test_a_day_or_a_time_is_text_in_iso_8601_not_a_number_written_as_text(sent):
    """Pydantic reads "0.5" as half a second past 1970 and "0" as its first day: a mistake to point out."""
    with pytest.raises(ValidationError) as refused:
        Period.model_validate({"start": sent})
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("start",), "date_format")]
    with pytest.raises(ValidationError) as refused:
        Thing.model_validate({"name": "x", "born": sent})
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("born",), "date_format")]
    # A time in a URL likewise.
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(Moment).validate_python(sent)
    assert [e["type"] for e in refused.value.errors()] == ["date_format"]
    assert TypeAdapter(Moment).validate_python("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)


def test_models_built_in_code_keep_their_objects():
    thing = Thing(name="x", born=date(2020, 1, 1), kids=[Child(name="k")], ref=uuid.uuid4())
    assert thing.kids[0].name == "k"


def test_every_answer_the_kernel_gives_is_documented_where_it_can_happen():
    paths = app.openapi()["paths"]
    post = set(paths["/things/{thing_id}"]["post"]["responses"])
    listing = set(paths["/things"]["get"]["responses"])
    delete = set(paths["/things/{thing_id}"]["delete"]["responses"])
    assert post == {"201", "401", "403", "404", "409", "413", "415", "422", "429", "503"}
    assert listing == {"200", "401", "403", "404", "422", "429", "503"}  # 404: a patient_id filter
    assert "413" not in delete and "409" in delete
    problem = paths["/things/{thing_id}"]["post"]["responses"]["409"]["content"]["application/json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "Retry-After" in paths["/things"]["get"]["responses"]["429"]["headers"]


def test_a_routes_own_description_of_an_answer_is_kept_with_the_kernels_body():
    r = APIRouter()

    @r.get("/x/{x_id}", responses={404: {"description": "No such x"}})
    async def x(x_id: str) -> dict:
        return {}

    (route,) = r.routes
    assert isinstance(route, APIRoute)
    declare_answers(route)
    assert route.responses[404]["description"] == "No such x"
    assert issubclass(route.responses[404]["model"], BaseModel)


def test_a_routes_own_503_is_told_the_service_may_be_busy_without_changing_the_dict_it_shares():
    shared = {503: {"description": "intake could not give the key; retry."}}
    r = APIRouter()

    @r.get("/a", responses=shared)
    async def a() -> dict:
        return {}

    @r.get("/b", responses=shared)
    async def b() -> dict:
        return {}

    for route in r.routes:
        assert isinstance(route, APIRoute)
        declare_answers(route)
        declare_answers(route)  # said once however often
        answer = route.responses[503]
        assert answer["description"] == f"intake could not give the key; retry. {BUSY_NOTE}"
        assert "Retry-After" in answer["headers"]
    assert shared[503] == {"description": "intake could not give the key; retry."}


def test_an_unknown_parameter_or_one_value_given_twice_is_refused_and_a_list_may_repeat():
    r = APIRouter()

    @r.get("/x", openapi_extra=elsewhere({"name": "a name goes in the body of POST /x/_search"}))
    async def x(offset: int = 0, type: Annotated[list[str] | None, Query()] = None) -> dict:
        return {}

    (route,) = r.routes
    assert isinstance(route, APIRoute)
    check_query(route, [("type", "a"), ("type", "b"), ("offset", "1")])
    with pytest.raises(Invalid) as unknown:
        check_query(route, [("limit", "1"), ("offset", "1")])
    assert unknown.value.problems == [
        {"loc": ["query", "limit"], "type": "unknown_parameter", "msg": "not a parameter of this operation"}
    ]
    with pytest.raises(Invalid) as hinted:  # where it belongs instead, as the route says
        check_query(route, [("name", "Ann")])
    assert hinted.value.problems[0]["msg"] == "a name goes in the body of POST /x/_search"
    with pytest.raises(Invalid) as refused:
        check_query(route, [("offset", "1"), ("offset", "2"), ("type", "a")])
    assert refused.value.problems == [
        {"loc": ["query", "offset"], "type": "repeated", "msg": "given more than once; it takes one value"}
    ]


def test_the_fields_of_a_query_model_are_its_parameters():
    from careloop_shared.http import Paging

    r = APIRouter()

    @r.get("/x")
    async def x(page: Paging, patient_id: uuid.UUID | None = None) -> dict:
        return {}

    (route,) = r.routes
    assert isinstance(route, APIRoute)
    check_query(route, [("limit", "5"), ("offset", "10"), ("patient_id", str(uuid.uuid4()))])
    with pytest.raises(Invalid):
        check_query(route, [("page", "1")])
