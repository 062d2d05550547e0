"""Event envelope: CloudEvents 1.0 in Kafka binary mode.

The Kafka value is the JSON body (the event's data); every context attribute travels in a ``ce_*``
header; the Kafka key is the patient's pseudonymous id so one patient's events stay in order.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, NamedTuple, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from careloop_shared.body import MAX_INT, MIN_INT, in_the_years_kept
from careloop_shared.errors import SafeMessageError
from careloop_shared.ids import new_id, parse_id, written_in_c

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


def is_json_content_type(content_type: str, *, suffixed: bool = False) -> bool:
    """``application/json`` (or, if ``suffixed``, ``application/<something>+json``), in UTF-8 if a
    charset is named."""
    if content_type == CONTENT_TYPE:  # what every careloop producer writes: no parsing needed
        return True
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    plus_json = suffixed and media.startswith("application/") and media.endswith("+json")
    if not (media == CONTENT_TYPE or plus_json):
        return False
    charsets = [p.split("=", 1)[1] for p in params.split(";") if p.strip().lower().startswith("charset=")]
    return all(c.strip().strip('"').lower() in ("utf-8", "utf8") for c in charsets)


class Event(BaseModel):
    """Base of every event body. Subclasses set ``type`` and ``source`` and name the patient."""

    # Tolerant reader: a newer producer may add optional fields an older consumer does not know.
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: ClassVar[str]
    source: ClassVar[str]

    # Written as text several times an event (its subject, its Kafka key, the record's entry): asyncpg's
    # class does that in C (``ids``); the schema is a UUID's either way.
    patient_id: Annotated[uuid.UUID, AfterValidator(written_in_c)]
    agency_id: str

    @property
    def subject(self) -> str:
        return str(self.patient_id)

    def body(self) -> bytes:
        return self.model_dump_json().encode()


E = TypeVar("E", bound=Event)

REGISTRY: dict[str, type[Event]] = {}


def register(cls: type[E]) -> type[E]:
    """Class decorator: make an event type known to decoders and to the published schemas."""
    if cls.type in REGISTRY:
        raise ValueError(f"event type {cls.type} registered twice")
    REGISTRY[cls.type] = cls
    return cls


# Envelope and ReceivedEvent are named tuples, immutable as frozen dataclasses are but built in a third to
# two-fifths of the time (a frozen dataclass sets each field through object.__setattr__): every event a
# consumer reads builds one of each, eleven a chain journey (README, Performance). Change one with
# ``_replace``.
class Envelope(NamedTuple):
    """CloudEvents context attributes of one event."""

    id: uuid.UUID
    type: str
    source: str
    subject: str
    time: datetime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    # W3C trace context of the span whose work emitted the event (CloudEvents distributed tracing).
    traceparent: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {
            "ce_specversion": SPEC_VERSION,
            "ce_id": str(self.id),
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_subject": self.subject,
            "ce_time": self.time.isoformat(),
            "ce_correlationid": str(self.correlation_id),
            "content-type": CONTENT_TYPE,
        }
        if self.causation_id is not None:
            headers["ce_causationid"] = str(self.causation_id)
        if self.traceparent is not None:
            headers["ce_traceparent"] = self.traceparent
        return headers


@dataclass(frozen=True)
class Message:
    """An event ready to be published: envelope, body and Kafka key."""

    envelope: Envelope
    event: Event
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.event.subject)


def new_message(
    event: Event,
    *,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
) -> Message:
    event_id = event_id or new_id()
    envelope = Envelope(
        id=event_id,
        type=event.type,
        source=event.source,
        subject=event.subject,
        time=time or datetime.now(UTC),
        correlation_id=correlation_id or event_id,
        causation_id=causation_id,
        traceparent=traceparent,
    )
    return Message(envelope=envelope, event=event)


class UndecodableEvent(SafeMessageError):
    """A Kafka record that is not a valid careloop event. The message never quotes the payload."""


class Record(NamedTuple):
    """What a consumer needs of a Kafka record (a named tuple, as ``ReceivedEvent`` is: one is built for
    every record read)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class ReceivedEvent(NamedTuple):
    """An event read from Kafka, with where it came from."""

    envelope: Envelope
    event: Event
    topic: str
    partition: int
    offset: int
    body: bytes = b""  # the value exactly as it was published


def _header_map(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers:
        try:
            text = value.decode()
        except UnicodeDecodeError as exc:
            raise UndecodableEvent(f"header {key!r} is not UTF-8") from exc
        # Two values for one attribute: which is the event's is not for a reader to guess (as a query
        # parameter given twice is refused over HTTP). Other headers are not ours to judge.
        if key in out and out[key] != text and (key.startswith("ce_") or key.lower() == "content-type"):
            raise UndecodableEvent(f"header {key!r} given twice")
        out[key] = text
    return out


def decode(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    *,
    topic: str,
    partition: int,
    offset: int,
    accepted: Mapping[str, type[Event]] | None = None,
) -> ReceivedEvent:
    """Decode a binary-mode CloudEvent; raise UndecodableEvent with a reason that names no values."""
    h = _header_map(headers)
    for required in ("ce_id", "ce_type", "ce_source", "ce_time", "ce_subject"):
        if required not in h:
            raise UndecodableEvent(f"missing header {required}")
    if h.get("ce_specversion") != SPEC_VERSION:
        raise UndecodableEvent("unsupported ce_specversion")
    # Binary mode: the record's content-type is the data's. Without one, JSON (what every producer
    # of careloop's events writes); anything else is not for us to guess at.
    content_type = h.get("content-type", h.get("Content-Type"))
    if content_type is not None and not is_json_content_type(content_type):
        # application/cloudevents+json included: a structured-mode record is not an event's data.
        raise UndecodableEvent("unsupported content-type: binary-mode CloudEvents with application/json data")
    types = REGISTRY if accepted is None else accepted
    model = types.get(h["ce_type"])
    if model is None:
        raise UndecodableEvent(f"unknown event type {h['ce_type']!r}")
    try:
        envelope = Envelope(
            id=parse_id(h["ce_id"]),
            type=h["ce_type"],
            source=h["ce_source"],
            subject=h["ce_subject"],
            time=datetime.fromisoformat(h["ce_time"]),
            correlation_id=parse_id(h.get("ce_correlationid") or h["ce_id"]),
            causation_id=parse_id(h["ce_causationid"]) if h.get("ce_causationid") else None,
            # Kept as it came: a span started from it checks it (a malformed one starts a new trace).
            traceparent=h.get("ce_traceparent"),
        )
    except ValueError as exc:
        raise UndecodableEvent("malformed ce_* header value") from exc
    if value is None:
        raise UndecodableEvent("empty value (tombstone)")
    try:
        # Parsed and validated in one pass (pydantic-core), without an intermediate dict.
        event = model.model_validate_json(value)  # ValidationError is logged without input values
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_input=False)):
            raise UndecodableEvent("value is not JSON") from None
        raise
    if event.subject != envelope.subject:
        raise UndecodableEvent("ce_subject does not match the event's patient_id")
    return ReceivedEvent(envelope, event, topic, partition, offset, bytes(value))


# What an event's schema allows but no careloop service keeps, nor any careloop producer sends (its
# requests are held to the same): text with NUL (PostgreSQL's text and jsonb cannot hold it), a number past
# the 32-bit integers the services store, a time outside the years 1900 to 2999 (every contract's times are
# ``contracts.EventTime``, refused as the event is read; looked for here too, for a time in a field of no
# declared type). Looked for only once a batch has failed (``consumer``; a walk of the event costs more than
# reading it): such an event is then dead-lettered at once as invalid, instead of being retried and
# splitting its batch into a transaction an event to find it.


def refusal_of(event: Event) -> ValidationError | None:
    """Why careloop does not keep this event, naming each field (never its value); None if it does."""
    problems = list(not_kept(event))
    return ValidationError.from_exception_data(type(event).__name__, problems) if problems else None


def not_kept(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[InitErrorDetails]:
    """Each value of an event (its fields, their items, their parts) that careloop does not keep."""
    problem: PydanticCustomError | None = None
    if isinstance(value, str):
        if "\x00" in value:
            problem = PydanticCustomError("text_with_nul", "text must not contain NUL (U+0000)")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            problem = PydanticCustomError("int_out_of_range", "should be a 32-bit integer")
    elif isinstance(value, float):
        if not (math.isfinite(value) and MIN_INT <= value <= MAX_INT):
            problem = PydanticCustomError("number_out_of_range", "should be a finite number below 2^31")
    elif isinstance(value, datetime):
        if not in_the_years_kept(value):
            problem = PydanticCustomError("time_out_of_range", "should be a time in the years 1900 to 2999")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from not_kept(getattr(value, name), (*loc, name))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            yield from not_kept(item, (*loc, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from not_kept(key, (*loc, "<key>"))
            yield from not_kept(item, (*loc, str(key)))
    if problem is not None:
        yield InitErrorDetails(type=problem, loc=loc, input=None)
