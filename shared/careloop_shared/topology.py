"""Which service publishes each event type and which services consume it, read from the services' code.

Each service's ``main.build_app()`` declares its ``ServiceSpec.publishes`` and handlers; the chart's topic
table (``deploy/helm/topics.py``) and the analysts' event catalogue (``careloop_shared.catalogue``) are
both written from this, so a new event or subscription changes both. The services are imported by name,
only when asked: no service imports another, and nothing here runs inside a service.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from careloop_shared.runtime import ServiceRuntime

# The services that publish or consume events; the workspace only calls their HTTP APIs.
EVENT_SERVICES = ("intake", "careplan", "referral", "followup", "record")


class TopologyError(ValueError):
    """The services disagree: an event with two producers, or consumed but published by none."""


@dataclass(frozen=True)
class EventFlow:
    producer: dict[str, str]  # event type -> the one service that publishes it
    consumers: dict[str, list[str]]  # event type -> the services that handle it, sorted


@contextlib.contextmanager
def _as_shipped() -> Iterator[None]:
    """Topic and group names as the code gives them, without this shell's test prefix or overrides."""
    names = [n for n in os.environ if n == "CARELOOP_TOPIC_PREFIX" or n.endswith("_GROUP_ID")]
    saved = {n: os.environ.pop(n) for n in names}
    try:
        yield
    finally:
        os.environ.update(saved)


def shipped_runtimes(services: tuple[str, ...] = EVENT_SERVICES) -> dict[str, ServiceRuntime]:
    """Each service's runtime as ``build_app()`` makes it (nothing is started or connected)."""
    runtimes: dict[str, ServiceRuntime] = {}
    with _as_shipped():
        for service in services:
            runtime = importlib.import_module(f"{service}.main").build_app().state.runtime
            if not isinstance(runtime, ServiceRuntime):
                raise TypeError(f"{service}.main.build_app() has no ServiceRuntime in app.state.runtime")
            runtimes[service] = runtime
    return runtimes


def event_flow(runtimes: Mapping[str, ServiceRuntime]) -> EventFlow:
    producer: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}
    for service, runtime in runtimes.items():
        for event in runtime.spec.publishes:
            if producer.setdefault(event.type, service) != service:
                raise TopologyError(f"{event.type} is published by both {producer[event.type]} and {service}")
        for event in runtime.spec.handlers:
            consumers.setdefault(event.type, []).append(service)
    unpublished = sorted(set(consumers) - set(producer))
    if unpublished:
        raise TopologyError(f"consumed but published by no service: {unpublished}")
    return EventFlow(producer, {name: sorted(found) for name, found in consumers.items()})
