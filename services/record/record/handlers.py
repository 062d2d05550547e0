"""record's one use case: append every event, once, to its patient's hash chain."""

from __future__ import annotations

from typing import Any, TypeAlias

from careloop_shared.consumer import EventOfAnotherAgency, batch_handler, first_agencies, refusing
from careloop_shared.events import ReceivedEvent
from careloop_shared.outbox import UnitOfWork
from record.config import RecordContext
from record.domain.chain import entry_hash
from record.store import Head, RecordStore

Uow: TypeAlias = UnitOfWork[RecordStore]


@batch_handler
async def when_any_event_append_to_record(ctx: RecordContext, uow: Uow, events: list[ReceivedEvent]) -> None:
    """Link each event to the end of its patient's chain, in arrival order, authenticated with the chain
    key the database does not hold. Once only: the entries' unique event id refuses an event appended before
    (a redelivery, or a replica's meanwhile), and the consumer then applies the batch again, each event
    looked for among the entries first (``APPLIED_IN``).

    A chain is one agency's: its first event's, kept on its head. An event naming another agency is refused
    by name (``EventOfAnotherAgency``; record's inbox is its entries, so the consumer's own claim of each
    patient's agency does not run here): the consumer dead-letters it and applies the rest of the batch,
    so the chain's agency sees the whole chain, and no other agency sees any of it.

    A whole batch costs three statements: lock the heads of the patients involved, insert the entries,
    move the heads (two more when some patient is new to the record: its genesis head, then its lock).
    """
    heads = await uow.store.lock_heads(first_agencies(events))
    recorded_at = ctx.clock()
    entries: list[dict[str, Any]] = []
    for received in events:
        patient_id, agency_id = received.event.patient_id, received.event.agency_id
        seq, prev_hash, chain_agency = heads[patient_id]
        if chain_agency not in (None, agency_id):
            raise refusing(received, EventOfAnotherAgency())
        entry: dict[str, Any] = {
            "patient_id": patient_id,
            "seq": seq + 1,
            "event_id": received.envelope.id,
            "event_type": received.envelope.type,
            "source": received.envelope.source,
            "agency_id": agency_id,
            "occurred_at": received.envelope.time,
            "recorded_at": recorded_at,
            "correlation_id": received.envelope.correlation_id,
            "causation_id": received.envelope.causation_id,
            "body": received.body or received.event.body(),
            "prev_hash": prev_hash,
        }
        entry["hash"] = entry_hash(prev_hash, entry)
        entry["mac_key"], entry["mac"] = ctx.chain_keys.mac(entry["hash"])
        heads[patient_id] = Head(entry["seq"], entry["hash"], agency_id)
        entries.append(entry)
    await uow.store.append(entries, heads)
