"""Metrics: HTTP requests by route template, the consumer's counters, and ``/metrics`` itself."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from careloop_shared import metrics
from careloop_shared.app import AccessLog
from careloop_shared.consumer import EventConsumer, Record, TransientFailure, batch_handler, refusing
from careloop_shared.errors import Conflict
from careloop_shared.events import Event, ReceivedEvent
from careloop_shared.outbox import UnitOfWork
from careloop_shared.settings import ServiceSettings
from careloop_shared.testing import app_of, client_of
from careloop_shared.testing.batches import consumer_of, record_of


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def _call(app: FastAPI, method: str, path: str) -> httpx.Response:
    async with client_of(app, "http://t") as client:
        return await client.request(method, path)


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(AccessLog, service="test-metrics-http")

    @app.get("/v1/patients/{patient_id}")
    async def patient(patient_id: uuid.UUID) -> dict[str, str]:
        return {"id": str(patient_id)}

    return app


async def test_requests_are_counted_by_route_template_never_by_the_url():
    patient = uuid.uuid4()
    labels = {"service_name": "test-metrics-http", "method": "GET", "route": "/v1/patients/{patient_id}"}
    before = sample("careloop_http_request_duration_seconds_count", **labels, status="200")
    assert (await _call(_app(), "GET", f"/v1/patients/{patient}?name=Zelda")).status_code == 200
    after = sample("careloop_http_request_duration_seconds_count", **labels, status="200")
    assert after == before + 1
    text = metrics.exposition()[0].decode()
    assert str(patient) not in text and "Zelda" not in text
    assert sample("careloop_http_requests_in_flight", service_name="test-metrics-http") == 0


async def test_unknown_routes_and_invented_methods_are_one_series_each():
    app = _app()
    await _call(app, "GET", f"/no/such/{uuid.uuid4()}")
    await _call(app, "BREW", "/v1/patients/x")
    assert sample(
        "careloop_http_request_duration_seconds_count",
        service_name="test-metrics-http",
        method="GET",
        route=metrics.UNMATCHED_ROUTE,
        status="404",
    )
    assert not any(s.labels.get("method") == "BREW" for m in metrics.REGISTRY.collect() for s in m.samples)


def _service_app(**settings: Any) -> FastAPI:
    return app_of("test-metrics-app", [], ServiceSettings(**settings))


async def test_metrics_answer_without_a_token_or_a_rate_limit_and_are_not_in_the_api_document():
    app = _service_app(rate_limit_agency="1/minute", rate_limit_token="1/minute")
    for _ in range(3):
        answer = await _call(app, "GET", "/metrics")
        assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "careloop_http_request_duration_seconds_bucket" in answer.text
    assert "process_cpu_seconds_total" in answer.text
    assert "/metrics" not in app.openapi()["paths"]


class Pinged(Event):
    type: ClassVar[str] = "test.metrics.pinged.v1"
    source: ClassVar[str] = "/test"


class FakeConnection:
    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # type: ignore[return-value]

    async def fetch(self, _sql: str, _consumer: str, ids: list[uuid.UUID], *_: Any) -> list[dict[str, Any]]:
        return [{"event_id": i} for i in ids]

    async def executemany(self, *_: Any) -> None:
        pass

    async def execute(self, *_: Any) -> None:
        pass

    def plans_due(self, _every_s: float) -> bool:
        return False


class FakePool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield FakeConnection()


def _consumer(handler: Any, dead: list[str]) -> EventConsumer:
    async def dead_letter(topic: str, *_: Any) -> None:
        dead.append(topic)

    return consumer_of(FakePool(), {Pinged: handler}, dead_letter, name="test-metrics-consumer", backoff_s=0)


def _record(offset: int, value: bytes | None = None) -> Record:
    record = record_of(Pinged(patient_id=uuid.uuid4(), agency_id="agency-a"), offset)
    return record._replace(value=value) if value else record


def _counts(**extra: str) -> dict[str, float]:
    labels = {"service_name": "test-metrics-consumer", "topic": Pinged.type}
    return {
        "consumed": sample("careloop_consumer_records_total", **labels),
        "handled": sample("careloop_consumer_events_handled_total", **labels),
        "timed": sample("careloop_consumer_handler_duration_seconds_count", **labels),
        "retried": sample("careloop_consumer_retries_total", **labels, reason="failed"),
        "undecodable": sample("careloop_consumer_dead_lettered_total", **labels, reason="undecodable"),
        "failed": sample("careloop_consumer_dead_lettered_total", **labels, reason="failed-after-retries"),
    }


async def test_handled_events_move_the_consumer_counters():
    async def handle(_: Any, __: UnitOfWork[Any], ___: ReceivedEvent) -> None:
        pass

    dead: list[str] = []
    before, batches_before = _counts(), _batches()
    await _consumer(handle, dead).process([_record(0), _record(1), _record(2, value=b"not json")])
    after, batches_after = _counts(), _batches()
    assert {k: after[k] - before[k] for k in after} == {
        "consumed": 3,
        "handled": 2,
        "timed": 2,
        "retried": 0,
        "undecodable": 1,
        "failed": 0,
    }
    # One batch of three records, whatever became of each.
    assert (batches_after[0] - batches_before[0], batches_after[1] - batches_before[1]) == (1, 3)
    assert dead == ["dlq"]


def _batches() -> tuple[float, float]:
    labels = {"service_name": "test-metrics-consumer"}
    return (
        sample("careloop_consumer_batch_records_count", **labels),
        sample("careloop_consumer_batch_records_sum", **labels),
    )


async def test_a_failing_event_counts_its_retries_and_its_dead_letter_reason():
    async def fail(*_: Any) -> None:
        raise ValueError("a bug")

    dead: list[str] = []
    before = _counts()
    await _consumer(fail, dead).process([_record(0)])
    after = _counts()
    assert {k: after[k] - before[k] for k in ("consumed", "handled", "retried", "failed")} == {
        "consumed": 1,
        "handled": 0,
        "retried": 2,  # three attempts: two retries, then the dead-letter topic
        "failed": 1,
    }


async def test_an_event_refused_by_name_is_dead_lettered_at_once_and_the_rest_applied_together():
    class Refused(Conflict):
        pass

    calls: list[int] = []
    records = [_record(0), _record(1), _record(2)]
    refused_id = dict(records[1].headers)["ce_id"].decode()

    @batch_handler
    async def handle(_: Any, __: UnitOfWork[Any], batch: list[ReceivedEvent]) -> None:
        calls.append(len(batch))
        for received in batch:
            if str(received.envelope.id) == refused_id:
                raise refusing(received, Refused("not this one"))

    dead: list[str] = []
    before, refused_before = _counts(), _refused()
    await _consumer(handle, dead).process(records)
    after = _counts()
    assert calls == [3, 2]  # the batch, then the two others together: no event alone, none tried again
    assert {k: after[k] - before[k] for k in ("handled", "retried", "failed")} == {
        "handled": 2,
        "retried": 0,
        "failed": 0,
    }
    assert (_refused() - refused_before, dead) == (1, ["dlq"])


async def test_an_event_a_rule_refuses_without_naming_it_is_found_alone_and_not_tried_again():
    calls: list[int] = []
    records = [_record(0), _record(1)]
    refused_id = dict(records[0].headers)["ce_id"].decode()

    @batch_handler
    async def handle(_: Any, __: UnitOfWork[Any], batch: list[ReceivedEvent]) -> None:
        calls.append(len(batch))
        if any(str(r.envelope.id) == refused_id for r in batch):
            raise Conflict("not with this one")  # found on a table's key, say: no event named

    dead: list[str] = []
    before, refused_before = _counts(), _refused()
    await _consumer(handle, dead).process(records)
    after = _counts()
    assert calls == [2, 1, 1]  # the batch, then each event alone: the refused one once
    assert {k: after[k] - before[k] for k in ("handled", "retried", "failed")} == {
        "handled": 1,
        "retried": 0,
        "failed": 0,
    }
    assert (_refused() - refused_before, dead) == (1, ["dlq"])


def _refused() -> float:
    labels = {"service_name": "test-metrics-consumer", "topic": Pinged.type, "reason": "refused"}
    return sample("careloop_consumer_dead_lettered_total", **labels)


async def test_an_event_failing_for_a_server_out_of_disk_is_redelivered_not_dead_lettered():
    async def disk_full(*_: Any) -> None:
        raise asyncpg.DiskFullError('could not extend file "base/16384/16385": No space left on device')

    dead: list[str] = []
    before = _counts()
    with pytest.raises(TransientFailure):
        await _consumer(disk_full, dead).process([_record(0), _record(1)])
    after = _counts()
    assert dead == []  # no event is poison because the database's disk is full: the batch comes again
    assert (after["failed"] - before["failed"], after["handled"] - before["handled"]) == (0, 0)
