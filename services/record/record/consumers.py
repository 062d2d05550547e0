"""record's Kafka subscriptions: every careloop event type goes to the case record."""

from __future__ import annotations

from careloop_shared import contracts  # noqa: F401 - registers every event type
from careloop_shared.consumer import Handler
from careloop_shared.events import REGISTRY, Event
from record.handlers import when_any_event_append_to_record

HANDLERS: dict[type[Event], Handler] = dict.fromkeys(REGISTRY.values(), when_any_event_append_to_record)
