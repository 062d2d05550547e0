"""Prometheus metrics of one service process: HTTP requests, the event consumer and the outbox relay.

One registry per process, served at ``/metrics``. Every label value comes from the code: the service's
name, route templates, HTTP methods and status codes, topic names and reason codes. Never an id, a URL
as it was called, or anything about a patient. Hot paths use label children looked up once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# `service_name`, not `service`: Prometheus's Kubernetes discovery adds a `service` target label.
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_DURATION = Histogram(
    "careloop_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template (never the URL as called).",
    ["service_name", "method", "route", "status"],
    registry=REGISTRY,
    buckets=_FAST,
)
HTTP_IN_FLIGHT = Gauge(
    "careloop_http_requests_in_flight",
    "HTTP requests being answered now.",
    ["service_name"],
    registry=REGISTRY,
)
HTTP_REFUSED_BUSY = Counter(
    "careloop_http_refused_busy",
    "Requests answered 503 because they waited longer than CARELOOP_HTTP_QUEUE_WAIT_S for their turn.",
    ["service_name"],
    registry=REGISTRY,
)
CONSUMED = Counter(
    "careloop_consumer_records",
    "Kafka records the consumer received (before decoding; redeliveries count again).",
    ["service_name", "topic"],
    registry=REGISTRY,
)
HANDLED = Counter(
    "careloop_consumer_events_handled",
    "Events whose effects committed (a redelivered event already handled is not counted).",
    ["service_name", "topic"],
    registry=REGISTRY,
)
RETRIED = Counter(
    "careloop_consumer_retries",
    "Events tried again: `failed` (the handler raised; one event at a time, bounded) or `transient`"
    " (database or broker trouble; the whole batch is redelivered).",
    ["service_name", "topic", "reason"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "careloop_consumer_dead_lettered",
    "Records sent to the dead-letter topic: `undecodable`, `invalid` (fails its contract, or carries a"
    " value no careloop service keeps), `refused` (a rule of the service's refused it, at once, not tried"
    " again) or `failed-after-retries`.",
    ["service_name", "topic", "reason"],
    registry=REGISTRY,
)
HANDLER_DURATION = Histogram(
    "careloop_consumer_handler_duration_seconds",
    "Handler time per event (a batch handler's time shared equally among its events).",
    ["service_name", "topic"],
    registry=REGISTRY,
    buckets=_FAST,
)
BATCH_RECORDS = Histogram(
    "careloop_consumer_batch_records",
    "Records per consumed batch. A batch costs one fetch, transaction, relay cycle and offset commit"
    " whatever its size, so below saturation the number of batches, not of events, sets the CPU spent.",
    ["service_name"],
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
LAG = Gauge(
    "careloop_consumer_lag",
    "Records on the broker this process has not taken yet (highwater minus position), summed over"
    " the topic's partitions assigned to it; refreshed on every scrape.",
    ["service_name", "topic"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "careloop_outbox_backlog",
    "Committed events not yet published (reported by the replica whose relay is active).",
    ["service_name"],
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "careloop_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest event not yet published; 0 when none waits.",
    ["service_name"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "careloop_outbox_published", "Events the relay published.", ["service_name"], registry=REGISTRY
)
RELAY_CYCLE = Histogram(
    "careloop_outbox_relay_cycle_duration_seconds",
    "Time to read one batch from the outbox and have the broker acknowledge it.",
    ["service_name"],
    registry=REGISTRY,
    buckets=_FAST,
)
COMMAND_GROUP = Histogram(
    "careloop_command_group_commands",
    "HTTP commands per shared transaction (careloop_shared.command_groups): 1 on an idle service, more as"
    " commands arrive while the transactions before them run.",
    ["service_name"],
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 50, 64),
)
COMMAND_GROUP_ROLLED_BACK = Counter(
    "careloop_command_group_rolled_back",
    "Shared transactions rolled back because one of their commands failed (their commands ran again).",
    ["service_name"],
    registry=REGISTRY,
)

PATIENT_KEY_REQUESTS = Counter(
    "careloop_patient_key_requests",
    "Requests to intake for a patient's data key, by outcome (released, erased, not_found, refused,"
    " unavailable); cache hits are not requests.",
    ["service_name", "outcome"],
    registry=REGISTRY,
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"


def known_method(method: str) -> str:
    """The method as a label: any other a client invents is one value, not a new series."""
    return method if method in HTTP_METHODS else "_OTHER"


def exposition() -> tuple[bytes, str]:
    """This process's metrics in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class _Children:
    """A metric's children for one service, each looked up once (``labels()`` takes a lock)."""

    def __init__(self, metric: Any, service: str) -> None:
        self._metric = metric
        self._service = service
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._cache[labels] = self._metric.labels(self._service, *labels)
        return child


class HttpMetrics:
    def __init__(self, service: str) -> None:
        self.in_flight = HTTP_IN_FLIGHT.labels(service)
        self._duration = _Children(HTTP_DURATION, service)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._duration(known_method(method), route, str(status)).observe(seconds)


class ConsumerMetrics:
    def __init__(self, service: str) -> None:
        self._consumed = _Children(CONSUMED, service)
        self._handled = _Children(HANDLED, service)
        self._retried = _Children(RETRIED, service)
        self._dead = _Children(DEAD_LETTERED, service)
        self._duration = _Children(HANDLER_DURATION, service)
        self._batch = BATCH_RECORDS.labels(service)

    def consumed(self, topics: Iterable[str]) -> None:
        """One batch taken from the broker: its records' topics."""
        counts = _count(topics)
        if counts:
            self._batch.observe(sum(counts.values()))
        for topic, n in counts.items():
            self._consumed(topic).inc(n)

    def handled(self, topics: Iterable[str]) -> None:
        for topic, n in _count(topics).items():
            self._handled(topic).inc(n)

    def handler_time(self, topics: list[str], seconds: float) -> None:
        share = seconds / len(topics) if topics else 0.0
        for topic in topics:
            self._duration(topic).observe(share)

    def retried(self, topics: Iterable[str], reason: str) -> None:
        for topic, n in _count(topics).items():
            self._retried(topic, reason).inc(n)

    def dead_lettered(self, topic: str, reason: str) -> None:
        self._dead(topic, reason).inc()


def _count(topics: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for topic in topics:
        counts[topic] = counts.get(topic, 0) + 1
    return counts


class OutboxMetrics:
    def __init__(self, service: str) -> None:
        self._service = service
        self._published = OUTBOX_PUBLISHED.labels(service)
        self._cycle = RELAY_CYCLE.labels(service)

    def published(self, count: int, seconds: float) -> None:
        self._published.inc(count)
        self._cycle.observe(seconds)

    def backlog(self, count: int, oldest_age_s: float | None) -> None:
        OUTBOX_BACKLOG.labels(self._service).set(count)
        OUTBOX_OLDEST_AGE.labels(self._service).set(max(0.0, oldest_age_s or 0.0))

    def forget_backlog(self) -> None:
        """This replica's relay stopped: another one may report the backlog now."""
        for gauge in (OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE):
            with contextlib.suppress(KeyError):
                gauge.remove(self._service)


class CommandGroupMetrics:
    def __init__(self, service: str) -> None:
        self.commands = COMMAND_GROUP.labels(service)
        self.rolled_back = COMMAND_GROUP_ROLLED_BACK.labels(service)


async def refresh_consumer_lag(service: str, topics: Iterable[str], consumers: Iterable[Any]) -> None:
    """Set ``careloop_consumer_lag`` from what the aiokafka consumers already know: the highwater of
    each assigned partition (from the last fetch response) and the consumer's position in it. No
    request to the broker; a topic with no partition assigned here is 0."""
    lag = dict.fromkeys(topics, 0)
    for consumer in consumers:
        for tp in list(consumer.assignment()):
            if tp.topic not in lag:
                continue
            try:
                high = consumer.highwater(tp)  # asserts the partition is still assigned
                if high is None:
                    continue
                # Answers at once for a partition with a position; never wait for one here.
                position = await asyncio.wait_for(consumer.position(tp), 0.2)
            except Exception:  # revoked meanwhile, or no position yet: not this process's lag now
                continue
            lag[tp.topic] += max(0, high - position)
    for topic, n in lag.items():
        LAG.labels(service, topic).set(n)
