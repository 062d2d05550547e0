"""Traces: a server span per request, the trace context into the outbox row and the ``ce_traceparent``
header, a consumer span per event as the child of the context it carries. The SDK's in-memory exporter
stands in for a collector; a fake pool stands in for PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from careloop_shared import tracing
from careloop_shared.app import AccessLog
from careloop_shared.auth import issue_token
from careloop_shared.consumer import EventConsumer, Record, batch_handler
from careloop_shared.events import Event, ReceivedEvent, new_message
from careloop_shared.http import CurrentPrincipal, needs
from careloop_shared.outbox import DatabaseUnitOfWork, UnitOfWork
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import app_of, client_of
from careloop_shared.testing.batches import consumer_of, delivered

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
INCOMING = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


class Pinged(Event):
    type: ClassVar[str] = "test.tracing.pinged.v1"
    source: ClassVar[str] = "/test"


class Ponged(Event):
    type: ClassVar[str] = "test.tracing.ponged.v1"
    source: ClassVar[str] = "/test"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure("test", exporter=exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.disable()


def _ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) in hex."""
    parent = f"{span.parent.span_id:016x}" if span.parent else None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


def _app(emitted: list[Any]) -> FastAPI:
    router = APIRouter()

    @router.post("/v1/patients/{patient_id}/pings")
    async def ping(patient_id: uuid.UUID) -> dict[str, str]:
        uow: UnitOfWork[None] = UnitOfWork(None)
        emitted.append(uow.emit(Pinged(patient_id=patient_id, agency_id="agency-a")))
        return {"status": "ok"}

    app = FastAPI()
    app.include_router(router)
    app.add_middleware(AccessLog, service="test-tracing")
    return app


async def _post(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with client_of(app, "http://test") as client:
        return await client.post(path, headers=headers)


async def test_server_span_is_named_by_the_route_template_and_names_no_patient(spans):
    patient = uuid.uuid4()
    answer = await _post(_app([]), f"/v1/patients/{patient}/pings?name=Zelda")
    assert answer.status_code == 200
    [span] = spans.get_finished_spans()
    assert span.name == "POST /v1/patients/{patient_id}/pings"
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/v1/patients/{patient_id}/pings"
    assert span.attributes["http.response.status_code"] == 200
    assert span.parent is None
    exported = span.to_json()
    assert str(patient) not in exported and "Zelda" not in exported


async def test_a_callers_traceparent_is_the_server_spans_parent(spans):
    await _post(_app([]), f"/v1/patients/{uuid.uuid4()}/pings", headers={"traceparent": INCOMING})
    [span] = spans.get_finished_spans()
    trace_id, _, parent = _ids(span)
    assert (trace_id, parent) == (TRACE_ID, PARENT_SPAN)


async def test_an_event_emitted_by_a_request_carries_its_span_in_ce_traceparent(spans):
    emitted: list[Any] = []
    await _post(_app(emitted), f"/v1/patients/{uuid.uuid4()}/pings", headers={"traceparent": INCOMING})
    [span] = spans.get_finished_spans()
    trace_id, span_id, _ = _ids(span)
    [message] = emitted
    assert message.envelope.traceparent == f"00-{trace_id}-{span_id}-01"
    assert message.envelope.headers()["ce_traceparent"] == message.envelope.traceparent


async def test_untraced_paths_make_no_span(spans):
    app = FastAPI()
    app.add_middleware(AccessLog, service="test-tracing")

    @app.get("/metrics")
    async def metrics() -> dict[str, str]:
        return {}

    async with client_of(app, "http://t") as client:
        assert (await client.get("/metrics")).status_code == 200
    assert spans.get_finished_spans() == ()


class FakeConnection:
    """What the consumer's transaction does: inbox insert (every event new), outbox insert (kept, a dict
    per row, whether the rows came one statement each or as one statement of the table's rows)."""

    def __init__(self) -> None:
        self.outbox: list[dict[str, Any]] = []

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # type: ignore[return-value]

    def plans_due(self, _every_s: float) -> bool:
        return False

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        _consumer, ids = args[:2]
        return [{"event_id": i} for i in ids]

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.outbox.extend(dict(zip(_outbox_columns(sql), row, strict=True)) for row in rows)

    async def execute(self, sql: str, rows: list[dict[str, Any]]) -> None:
        # As one statement the rows come as one array of the table's row type, each a mapping.
        columns = _outbox_columns(sql)
        self.outbox.extend({c: row[c] for c in columns} for row in rows)


def _outbox_columns(sql: str) -> list[str]:
    assert sql.startswith("INSERT INTO outbox (")
    return sql.removeprefix("INSERT INTO outbox (").split(")")[0].split(", ")


class FakePool:
    def __init__(self) -> None:
        self.conn = FakeConnection()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield self.conn


async def _pong(_: Any, uow: UnitOfWork[Any], received: ReceivedEvent) -> None:
    uow.emit(Ponged(patient_id=received.event.patient_id, agency_id="agency-a"), caused_by=received)


@batch_handler
async def _pong_all(_: Any, uow: UnitOfWork[Any], events: list[ReceivedEvent]) -> None:
    for received in reversed(events):  # not in order, and with no span current
        await _pong(None, uow, received)


def _consumer(pool: FakePool, handler: Any) -> EventConsumer:
    return consumer_of(pool, {Pinged: handler}, name="test-tracing")


def _record(offset: int, traceparent: str | None) -> Record:
    return delivered(
        new_message(Pinged(patient_id=uuid.uuid4(), agency_id="agency-a"), traceparent=traceparent), offset
    )


def _outbox_traceparents(pool: FakePool) -> dict[str, str]:
    """The outbox rows' ``ce_traceparent`` by the event's ``ce_causationid``."""
    return {row["headers"]["ce_causationid"]: row["headers"]["ce_traceparent"] for row in pool.conn.outbox}


@pytest.mark.parametrize("handler", [_pong, _pong_all], ids=["one-at-a-time", "batch"])
async def test_consumer_span_is_the_child_of_the_incoming_traceparent_and_parent_of_what_it_emits(
    spans, handler
):
    pool = FakePool()
    other_trace = f"00-{'ab' * 16}-{'cd' * 8}-01"
    records = [_record(0, INCOMING), _record(1, other_trace)]
    await _consumer(pool, handler).process(records)

    consumer_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert [s.name for s in consumer_spans] == [f"process {Pinged.type}"] * 2
    by_parent = {_ids(s)[2]: s for s in consumer_spans}
    first, second = by_parent[PARENT_SPAN], by_parent["cd" * 8]
    assert _ids(first)[0] == TRACE_ID and _ids(second)[0] == "ab" * 16
    assert first.attributes is not None and first.attributes["messaging.destination.name"] == Pinged.type

    emitted = _outbox_traceparents(pool)
    causes = [dict((k, v.decode()) for k, v in r.headers)["ce_id"] for r in records]
    for cause, span in zip(causes, (first, second), strict=True):
        trace_id, span_id, _ = _ids(span)
        assert emitted[cause] == f"00-{trace_id}-{span_id}-01"


async def test_a_record_without_trace_context_starts_a_new_trace(spans):
    pool = FakePool()
    await _consumer(pool, _pong).process([_record(0, None)])
    [span] = spans.get_finished_spans()
    assert span.parent is None
    [row] = pool.conn.outbox
    assert row["headers"]["ce_traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"


async def test_without_tracing_nothing_is_added():
    assert not tracing.enabled()
    pool = FakePool()
    await _consumer(pool, _pong).process([_record(0, INCOMING)])
    [row] = pool.conn.outbox
    assert "ce_traceparent" not in row["headers"]
    uow = DatabaseUnitOfWork(pool.conn, lambda t: t, None)  # type: ignore[arg-type]
    assert uow.emit(Pinged(patient_id=uuid.uuid4(), agency_id="a")).envelope.traceparent is None


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, None),
    ],
)
def test_the_otel_variables_choose_the_exporter(environ, wanted):
    assert tracing.wanted_exporter(environ) == wanted


def test_no_endpoint_installs_nothing():
    assert tracing.configure("test", environ={}) is False
    assert not tracing.enabled()
    assert tracing.current_traceparent() is None


def test_otel_service_name_wins_over_the_services_own(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "intake-eu")
    exporter = InMemorySpanExporter()
    tracing.configure("intake", exporter=exporter, batch=False)
    try:
        span = tracing.start_server_span({"type": "http", "path": "/x", "method": "GET", "headers": []})
        tracing.end_server_span(span, "GET", "/x", 200)
    finally:
        tracing.disable()
    [finished] = exporter.get_finished_spans()
    assert finished.resource.attributes["service.name"] == "intake-eu"
    assert json.loads(finished.to_json())["name"] == "GET /x"


async def test_fastapis_own_telemetry_stays_off_under_a_global_provider(spans, monkeypatch):
    """An operator's auto-instrumentation installs a global tracer provider; FastAPI (0.145 on) would then
    export a span of its own for each request with the path as called (the patient's id) and the query's
    values. A careloop app leaves that to its own server span, which names the route template only."""
    installed = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(installed))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")

    router = APIRouter()

    @router.get("/v1/patients/{patient_id}/pings", openapi_extra=needs("patient:read"))
    async def ping(patient_id: uuid.UUID, me: CurrentPrincipal, name: str | None = None) -> dict[str, str]:
        return {"status": "ok"}

    careloop = app_of("test-telemetry", [router])
    plain = FastAPI()  # FastAPI's defaults, as a control: the global provider is seen

    @plain.get("/v1/patients/{patient_id}/pings")
    async def plain_ping(patient_id: uuid.UUID) -> dict[str, str]:
        return {"status": "ok"}

    patient = uuid.uuid4()
    path = f"/v1/patients/{patient}/pings?name=Zelda"
    token = issue_token(DEV_JWT_SECRET, agency="agency-a", role="care-manager")

    async with client_of(plain, "http://t") as client:
        assert (await client.get(path)).status_code == 200
    theirs = "".join(span.to_json() for span in installed.get_finished_spans())
    assert str(patient) in theirs and "Zelda" in theirs
    installed.clear()

    async with client_of(careloop, "http://t") as client:
        answer = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert installed.get_finished_spans() == ()
    [ours] = spans.get_finished_spans()
    assert ours.name == "GET /v1/patients/{patient_id}/pings"
    assert str(patient) not in ours.to_json() and "Zelda" not in ours.to_json()
