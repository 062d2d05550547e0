"""record's use cases: append every event once; read and verify a patient's record."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from careloop_shared.consumer import batch_handler
from careloop_shared.events import ReceivedEvent
from careloop_shared.outbox import UnitOfWork
from record import store
from record.domain.chain import Verification, entry_hash, verify
from record.domain.timeline import Summaries, actor, causal_order, summarise


@batch_handler
async def when_any_event_append_to_record(uow: UnitOfWork, events: list[ReceivedEvent]) -> None:
    """Link each event to the end of its patient's chain, in arrival order (the inbox makes it once only).

    A whole batch costs three statements: lock the heads of the patients involved, insert the entries,
    move the heads.
    """
    heads = await store.lock_heads(uow.conn, {e.event.patient_id for e in events})
    entries: list[dict[str, Any]] = []
    for received in events:
        patient_id = received.event.patient_id
        seq, prev_hash = heads[patient_id]
        entry: dict[str, Any] = {
            "patient_id": patient_id,
            "seq": seq + 1,
            "event_id": received.envelope.id,
            "event_type": received.envelope.type,
            "source": received.envelope.source,
            "agency_id": received.event.agency_id,
            "occurred_at": received.envelope.time,
            "recorded_at": datetime.now(UTC),
            "correlation_id": received.envelope.correlation_id,
            "causation_id": received.envelope.causation_id,
            "body": received.body or received.event.body(),
            "prev_hash": prev_hash,
        }
        entry["hash"] = entry_hash(prev_hash, entry)
        heads[patient_id] = (entry["seq"], entry["hash"])
        entries.append(entry)
    await store.append(uow.conn, entries, heads)


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
