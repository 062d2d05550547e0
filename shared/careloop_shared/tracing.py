"""OpenTelemetry traces that follow a patient's journey: a server span per HTTP request, a consumer span
per handled event, and between services the trace context in the CloudEvents ``traceparent`` extension
(Kafka header ``ce_traceparent``) of every event a span's work emits.

Configured from the standard ``OTEL_*`` variables (endpoint, headers, sampler, resource, batch
processor). Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) and without
``OTEL_TRACES_EXPORTER``, no provider is installed and every helper here returns at once.

A span names route templates, methods, status codes, topics and event types: never a URL as called,
a query value, a body, a patient id or an exception's message (which may quote a value).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from careloop_shared.logging import get_logger
from careloop_shared.metrics import known_method

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from careloop_shared.events import ReceivedEvent

log = get_logger(__name__)

UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})  # scrapes and probes: noise
_PROPAGATOR = TraceContextTextMapPropagator()
_NOTHING = contextlib.nullcontext()

_tracer: Tracer | None = None  # None: tracing is off
_provider: TracerProvider | None = None


def wanted_exporter(environ: Mapping[str, str]) -> str | None:
    """The exporter the ``OTEL_*`` variables ask for: ``otlp``, ``console``, or None (tracing off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if any(environ.get(name) for name in endpoints) else None
    supported = [n for n in names if n in ("otlp", "console")]
    if "none" in names or not supported:
        if "none" not in names:
            log.warning("no supported OTEL_TRACES_EXPORTER (otlp, console); tracing is off", exporters=names)
        return None
    return supported[0]


def configure(
    service_name: str,
    *,
    exporter: SpanExporter | None = None,
    batch: bool = True,
    environ: Mapping[str, str] = os.environ,
) -> bool:
    """Install this process's tracer when the environment asks for one (or ``exporter`` is given, as
    tests do); True when tracing is on."""
    global _tracer, _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    if exporter is None:
        kind = wanted_exporter(environ)
        if kind is None:
            return False
        exporter = ConsoleSpanExporter() if kind == "console" else _otlp_exporter(environ)
    disable()
    resource = Resource.create({"service.namespace": "careloop"})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))  # OTEL_SERVICE_NAME wins
    # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    _provider, _tracer = provider, provider.get_tracer("careloop")
    return True


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "http/protobuf":
        log.warning("only OTLP over http/protobuf is built in; using it", protocol=protocol)
    return OTLPSpanExporter()  # endpoint, headers, timeout, TLS: from the OTEL_EXPORTER_OTLP_* variables


def disable() -> None:
    """Flush and remove this process's tracer (tests; a provider also flushes at exit by itself)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer, _provider = None, None


def enabled() -> bool:
    return _tracer is not None


def traceparent_of(context: SpanContext) -> str | None:
    """W3C ``traceparent`` of a span context (also of one not sampled: the decision travels with it)."""
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def current_traceparent() -> str | None:
    """The active span's ``traceparent``: what an event emitted now carries."""
    if _tracer is None:
        return None
    return traceparent_of(trace.get_current_span().get_span_context())


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the active span's ``traceparent`` to an outgoing request's headers."""
    traceparent = current_traceparent()
    if traceparent is not None:
        headers["traceparent"] = traceparent


def _parent(traceparent: str | None) -> Context:
    """The context to start a span in: a child of ``traceparent`` if it is one, else a new trace."""
    if not traceparent:
        return Context()
    return _PROPAGATOR.extract({"traceparent": traceparent})


def active(span: Span | None) -> AbstractContextManager[Any]:
    """Make ``span`` current (for what runs inside: the events it emits carry it)."""
    if span is None:
        return _NOTHING
    return trace.use_span(span, record_exception=False, set_status_on_exception=False)


def start_server_span(scope: Mapping[str, Any]) -> Span | None:
    """A server span for an HTTP request (None when tracing is off, or for a probe or a scrape);
    named by its method until the route is known. A caller's ``traceparent`` header is its parent."""
    if _tracer is None or scope.get("path") in UNTRACED_PATHS:
        return None
    traceparent = next(
        (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"traceparent"), None
    )
    method = known_method(scope["method"])
    return _tracer.start_span(
        method, _parent(traceparent), kind=SpanKind.SERVER, attributes={"http.request.method": method}
    )


def end_server_span(span: Span | None, method: str, route: str, status: int) -> None:
    if span is None:
        return
    span.update_name(f"{known_method(method)} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


@contextlib.contextmanager
def consuming(
    consumer: str, events: Sequence[ReceivedEvent], causes: MutableMapping[uuid.UUID, str]
) -> Iterator[dict[uuid.UUID, Span]]:
    """A consumer span for each event, child of the ``traceparent`` it carries; each span's own
    ``traceparent`` goes into ``causes`` (by event id), for the events emitted because of it."""
    spans: dict[uuid.UUID, Span] = {}
    if _tracer is None:
        yield spans
        return
    for event in events:
        span = _tracer.start_span(
            f"process {event.envelope.type}",
            _parent(event.envelope.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": event.topic,
                "messaging.consumer.group.name": consumer,
                "messaging.destination.partition.id": str(event.partition),
                "messaging.kafka.offset": event.offset,
                "cloudevents.event_type": event.envelope.type,
            },
        )
        spans[event.envelope.id] = span
        traceparent = traceparent_of(span.get_span_context())
        if traceparent is not None:
            causes[event.envelope.id] = traceparent
    try:
        yield spans
    except BaseException as exc:
        for span in spans.values():
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))  # the type, never the message
        raise
    finally:
        for span in spans.values():
            span.end()


def within(spans: Mapping[uuid.UUID, Span], event: ReceivedEvent) -> AbstractContextManager[Any]:
    """Make ``event``'s consumer span current while its handler runs."""
    return active(spans.get(event.envelope.id)) if spans else _NOTHING
