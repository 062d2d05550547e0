"""record's HTTP routes: a patient's timeline and the verification of its chain.

The timeline discloses the case record, so each read of it is audited; verify answers counts and
whether the chain holds, nothing about the patient, and is not.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from careloop_shared.body import Moment
from careloop_shared.errors import NotFound
from careloop_shared.http import Audit, CurrentPrincipal, needs, read_store, service_context
from record.checkpoints import witness_of
from record.config import RecordContext
from record.domain.chain import Verification, verify
from record.domain.timeline import timeline
from record.store import RecordStore

router = APIRouter(prefix="/v1/patients/{patient_id}", tags=["case record"])
Store = Annotated[RecordStore, Depends(read_store)]
Ctx = Annotated[RecordContext, Depends(service_context)]


class EntryOut(BaseModel):
    seq: int
    event_id: uuid.UUID
    type: str
    time: datetime
    recorded_at: datetime
    source: str
    actor: str = Field(
        description="Who made it happen: the person and their role (care-manager cm-ana) where the event"
        " names one, else a role or party, else system (the service)."
    )
    summary: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    data: dict[str, Any]


class RecordOut(BaseModel):
    patient_id: uuid.UUID
    entries: list[EntryOut]


class VerifyOut(BaseModel):
    patient_id: uuid.UUID
    entries: int
    intact: bool
    first_broken_seq: int | None
    problem: str | None
    witnessed_by_checkpoint: int | None = Field(
        None,
        description="The checkpoint (signed, published outside the record database) whose head of this"
        " chain was checked; none while no checkpoint has signed it yet.",
    )


async def _owned(store: RecordStore, agency_id: str, patient_id: uuid.UUID) -> None:
    if await store.owning_agency(patient_id) != agency_id:
        raise NotFound("no record for this patient")


@router.get("/record", response_model=RecordOut, openapi_extra=needs("record:read"))
async def patient_record(
    patient_id: uuid.UUID,
    who: CurrentPrincipal,
    store: Store,
    ctx: Ctx,
    audit: Audit,
    type: Annotated[
        list[Annotated[str, Query(max_length=100)]] | None,
        Query(max_length=50, description="Event types (ce_type) to keep"),
    ] = None,
    since: Annotated[Moment | None, Query(description="Keep entries at or after this time")] = None,
    until: Annotated[Moment | None, Query(description="Keep entries before this time")] = None,
) -> RecordOut:
    """The patient's events in order, causes before effects, with type, time, source, summary, and the
    actor: the person who made the change (role and id) where the event names one."""
    await _owned(store, who.agency_id, patient_id)
    rows = await store.entries(patient_id, types=type, since=since, until=until)
    shown = RecordOut(patient_id=patient_id, entries=[EntryOut(**e) for e in timeline(ctx.summaries, rows)])
    await audit.read(patient_id, "record")
    return shown


@router.get("/record/verify", response_model=VerifyOut, openapi_extra=needs("record:verify"))
async def verify_patient_record(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, ctx: Ctx
) -> VerifyOut:
    """Recompute the hash chain, check every entry's MAC under the chain key (which the database does
    not hold) and that the chain still holds the head last signed into a checkpoint published outside
    the database; name the first entry that does not hold, if any. Discloses counts only."""
    await _owned(store, who.agency_id, patient_id)
    witness = await witness_of(ctx, store, patient_id)  # before the chain: entries are only appended
    result = verify(
        *await store.chain(patient_id),
        authentic=lambda e: ctx.chain_keys.authentic(bytes(e["hash"]), e["mac_key"], e["mac"]),
        witnessed=witness.witnessed,
    )
    if result.intact and witness.problem:
        result = Verification(result.entries, False, None, witness.problem)
    return VerifyOut(
        patient_id=patient_id,
        entries=result.entries,
        intact=result.intact,
        first_broken_seq=result.first_broken_seq,
        problem=result.problem,
        witnessed_by_checkpoint=result.witnessed_by,
    )
