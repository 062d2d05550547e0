"""record's use cases: append every event once; read and verify a patient's record."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from careloop_shared.events import ReceivedEvent
from careloop_shared.outbox import UnitOfWork
from record import store
from record.domain.chain import GENESIS, Verification, entry_hash, verify
from record.domain.timeline import Summaries, actor, causal_order, summarise


async def when_any_event_append_to_record(uow: UnitOfWork, received: ReceivedEvent) -> None:
    """Link the event to the end of its patient's chain (the consumer's inbox makes this once only)."""
    patient_id = received.event.patient_id
    head = await store.lock_head(uow.conn, patient_id)
    entry: dict[str, Any] = {
        "patient_id": patient_id,
        "seq": (head["seq"] if head else 0) + 1,
        "event_id": received.envelope.id,
        "event_type": received.envelope.type,
        "source": received.envelope.source,
        "agency_id": received.event.agency_id,
        "occurred_at": received.envelope.time,
        "recorded_at": datetime.now(UTC),
        "correlation_id": received.envelope.correlation_id,
        "causation_id": received.envelope.causation_id,
        "body": received.body or received.event.body(),
        "prev_hash": bytes(head["hash"]) if head else GENESIS,
    }
    entry["hash"] = entry_hash(entry["prev_hash"], entry)
    await store.append(uow.conn, entry)


def timeline(summaries: Summaries, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    items = []
    for row in causal_order(rows):
        body = json.loads(bytes(row["body"]))
        items.append(
            {
                "seq": row["seq"],
                "event_id": row["event_id"],
                "type": row["event_type"],
                "time": row["occurred_at"],
                "recorded_at": row["recorded_at"],
                "source": row["source"],
                "actor": actor(row["source"], body),
                "summary": summarise(summaries, row["event_type"], body),
                "correlation_id": row["correlation_id"],
                "causation_id": row["causation_id"],
                "data": body,
            }
        )
    return items


async def verify_record(db: store.Db, patient_id: uuid.UUID) -> Verification:
    return verify(await store.entries(db, patient_id), await store.head(db, patient_id))
