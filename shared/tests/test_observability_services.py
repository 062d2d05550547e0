"""Traces and metrics of real service processes: one trace id from intake's request to careplan's
handling of the event it caused, exported over OTLP/HTTP to a receiver this test runs; ``/metrics``
of both services counting what happened, by route template and topic."""

from __future__ import annotations

import asyncio
import gzip
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from prometheus_client.parser import text_string_to_metric_families

from careloop_shared import db, metrics
from careloop_shared.auth import issue_token
from careloop_shared.contracts import PatientAssessed
from careloop_shared.outbox import OutboxRelay
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import ServiceProcess, eventually, unique_prefix

pytestmark = pytest.mark.integration

PATIENT = {
    "given_name": "Zelda",
    "family_name": "Quartermaine",
    "birth_date": "1961-07-19",
    "phone": "+1 555 0199",
}
PHQ2_POSITIVE = {"instrument": "phq-2", "answers": {"44250-9": 2, "44255-8": 2}}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, str]


class OtlpReceiver(ThreadingHTTPServer):
    """The smallest OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHandler)
        self.spans: list[ReceivedSpan] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            resource.get("service.name", ""),
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.kind,
                            {a.key: _text(a.value) for a in span.attributes},
                        )
                    )


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return str(getattr(value, kind)) if kind else ""


class _OtlpHandler(BaseHTTPRequestHandler):
    server: OtlpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            self.server.keep(ExportTraceServiceRequest.FromString(body))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest_asyncio.fixture(scope="module")
async def services(infra, database_factory, receiver, tmp_path_factory):
    log_dir: Path = tmp_path_factory.mktemp("observability-logs")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "CARELOOP_PG_URL": infra.pg_url,
        "CARELOOP_TOPIC_PREFIX": unique_prefix(),
        "PYTHON": sys.executable,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second, not five
    }
    for service in ("intake", "careplan"):
        env[f"{service.upper()}_DATABASE_URL"] = await database_factory(service)
    processes = {s: ServiceProcess(s, env, log_dir).start() for s in ("intake", "careplan")}
    try:
        await asyncio.gather(*(p.wait_ready() for p in processes.values()))
        yield env["CARELOOP_TOPIC_PREFIX"], processes
    finally:
        for process in processes.values():
            process.stop()


def _metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


async def test_one_trace_runs_from_intakes_request_to_careplans_handling(services, receiver):
    prefix, svc = services
    agency = {
        "Authorization": f"Bearer {issue_token(DEV_JWT_SECRET, agency='agency-otel', role='care-manager')}"
    }
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(f"{svc['intake'].url}/v1/patients", json=PATIENT, headers=agency)
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        assessed = await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/assessments", json=PHQ2_POSITIVE, headers=agency
        )
        assert assessed.status_code == 202, assessed.text

        route = "/v1/patients/{patient_id}/assessments"

        async def request_span() -> ReceivedSpan | None:
            return next((s for s in receiver.spans if s.name == f"POST {route}"), None)

        request = await eventually(request_span, timeout=20, what="intake's request span")
        assert request.service == "intake"

        async def careplan_span() -> ReceivedSpan | None:
            return next(
                (
                    s
                    for s in receiver.spans
                    if s.service == "careplan"
                    and s.trace_id == request.trace_id
                    and s.name == f"process {PatientAssessed.type}"
                ),
                None,
            )

        handled = await eventually(careplan_span, timeout=30, what="careplan's span in the same trace")
        # The event intake wrote during the request carried the request span's context.
        assert handled.parent_span_id == request.span_id
        assert handled.attributes["messaging.destination.name"] == f"{prefix}{PatientAssessed.type}"

        # Nothing about the patient in any span: no id, no name, no birth date.
        for span in receiver.spans:
            seen = f"{span.name} {span.attributes}"
            assert patient_id not in seen and "Zelda" not in seen and "1961" not in seen

        intake_text = (await http.get(f"{svc['intake'].url}/metrics")).text
        assert (
            _metric(
                intake_text,
                "careloop_http_request_duration_seconds_count",
                service_name="intake",
                method="POST",
                route=route,
                status="202",
            )
            == 1
        )
        assert patient_id not in intake_text

        async def careplan_handled() -> float:
            text = (await http.get(f"{svc['careplan'].url}/metrics")).text
            handled = _metric(
                text,
                "careloop_consumer_events_handled_total",
                service_name="careplan",
                topic=f"{prefix}{PatientAssessed.type}",
            )
            return handled or 0.0

        assert await eventually(careplan_handled, timeout=10, what="careplan's handled counter") >= 1
        careplan_text = (await http.get(f"{svc['careplan'].url}/metrics")).text
        topic = f"{prefix}{PatientAssessed.type}"
        assert (_metric(careplan_text, "careloop_consumer_records_total", topic=topic) or 0) >= 1
        assert _metric(careplan_text, "careloop_consumer_lag", topic=topic) == 0
        assert (_metric(careplan_text, "careloop_outbox_published_total") or 0) >= 1

        async def intake_backlog() -> bool:
            text = (await http.get(f"{svc['intake'].url}/metrics")).text
            return _metric(text, "careloop_outbox_backlog", service_name="intake") == 0

        # Counted by the active relay every few seconds.
        assert await eventually(intake_backlog, timeout=15, what="intake's outbox backlog of 0")


async def test_the_backlog_counts_unpublished_events_but_not_those_published_and_not_yet_marked(
    database_factory,
):
    pool = await db.create_pool(await database_factory("backlog"), min_size=1, max_size=2)
    try:
        await db.migrate(pool, db.kernel_migrations())
        async with pool.acquire() as conn:
            positions = [
                await conn.fetchval(
                    "INSERT INTO outbox (event_id, event_type, topic, key, headers, payload, created_at)"
                    " VALUES ($1, 't', 't', 'k', '{}', '', now() - $2 * interval '1 second')"
                    " RETURNING position",
                    uuid.uuid4(),
                    age,
                )
                for age in (300, 60, 1)
            ]
            relay = OutboxRelay("unused", "unused", client_id="test-backlog")
            await relay._count_backlog(conn, [positions[0]])  # the oldest: sent, awaiting its mark
    finally:
        await pool.close()
    assert metrics.REGISTRY.get_sample_value("careloop_outbox_backlog", {"service_name": "test-backlog"}) == 2
    age = metrics.REGISTRY.get_sample_value(
        "careloop_outbox_oldest_unpublished_age_seconds", {"service_name": "test-backlog"}
    )
    assert age is not None and 60 <= age < 120
