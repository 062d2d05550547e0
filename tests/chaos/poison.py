"""Poison records of every kind, for every topic a service consumes, and where they must end up: in the
dead-letter topic of every service that consumes that topic, with the reason.

Each poison record's key is ``poison-<kind>-<n>``, so the counts leave them out of the real traffic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from careloop_shared.events import SPEC_VERSION

KINDS = (
    "not-json",
    "missing-headers",
    "unknown-type",
    "content-type",
    "invalid-body",
    "subject-mismatch",
    "tombstone",
    "header-not-utf8",
    "malformed-id",
)


@dataclass(frozen=True)
class Poison:
    kind: str
    topic: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _headers(event_type: str, subject: str) -> dict[str, bytes]:
    return {
        "ce_specversion": SPEC_VERSION.encode(),
        "ce_id": str(uuid.uuid4()).encode(),
        "ce_type": event_type.encode(),
        "ce_source": b"chaos",
        "ce_subject": subject.encode(),
        "ce_time": datetime.now(UTC).isoformat().encode(),
        "content-type": b"application/json",
    }


def poison_for(topic: str, event_type: str, n: int, real: Any | None) -> list[Poison]:
    """Every kind for one topic; ``real`` (a real record of the topic, if any) lends a valid body to the
    subject mismatch, which is left out without one."""
    subject = str(uuid.uuid4())
    made = []
    for kind in KINDS:
        headers = _headers(event_type, subject)
        value: bytes | None = json.dumps({"patient_id": subject}).encode()
        if kind == "not-json":
            value = b"{this is not json"
        elif kind == "missing-headers":
            headers = {"content-type": b"application/json"}
        elif kind == "unknown-type":
            headers["ce_type"] = b"careloop.chaos.unknown.v1"
        elif kind == "content-type":
            headers["content-type"] = b"application/avro"
        elif kind == "invalid-body":
            value = b"{}"
        elif kind == "subject-mismatch":
            if real is None:
                continue
            headers = {k: v for k, v in real.headers}
            headers.update(ce_id=str(uuid.uuid4()).encode(), ce_subject=str(uuid.uuid4()).encode())
            value = real.value
        elif kind == "tombstone":
            value = None
        elif kind == "header-not-utf8":
            if real is not None:  # a valid event but for the header: refused for the header alone
                headers = {k: v for k, v in real.headers}
                headers["ce_id"], value = str(uuid.uuid4()).encode(), real.value
            headers["ce_source"] = b"\xff\xfe"
        elif kind == "malformed-id":
            if real is not None:  # a valid event but for its id: refused for the id alone
                headers, value = {k: v for k, v in real.headers}, real.value
            headers["ce_id"] = b"+" + str(uuid.uuid4()).encode()[1:]  # no UUID, though int(..., 16) reads it
        key = f"poison-{kind}-{n}".encode()
        made.append(Poison(kind, topic, key, value, list(headers.items())))
    return made


async def publish(bootstrap: str, poison: Iterable[Poison]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    sent = 0
    try:
        for p in poison:
            await producer.send_and_wait(p.topic, p.value, key=p.key, headers=p.headers)
            sent += 1
    finally:
        await producer.stop()
    return sent


def is_poison(key: bytes | None) -> bool:
    return key is not None and key.startswith(b"poison-")
