"""followup's HTTP routes: each command route builds a command and runs its handler; reads use the store.
A care manager also arranges contacts with a patient and calls them off (``POST /v1/follow-ups``).

Every POST honours Idempotency-Key; every read is agency-scoped. A follow-up's detail shows its outcomes'
free-text notes about the patient, so each read of it is audited; the lists and the work queue show
pseudonymous ids, codes and times only, as do the command answers, and are not. Notes are kept sealed
with the patient's data key, asked of intake before any transaction (``followup.notes``).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from careloop_shared.http import (
    Audit,
    Commands,
    CurrentPrincipal,
    Page,
    Paging,
    needs,
    read_store,
    service_context,
)
from followup import handlers
from followup.config import FollowupContext
from followup.contacts import handlers as contacts
from followup.domain.commands import (
    ArrangeContact,
    CancelContact,
    ChangeArrangement,
    RecordOutcome,
    RescheduleFollowUp,
)
from followup.notes import opened_notes, seal_note_ahead
from followup.schemas import (
    ArrangeIn,
    ArrangementIn,
    CancelIn,
    FollowUpDetail,
    FollowUpOut,
    OutcomeIn,
    OutcomeOut,
    OutcomeResult,
    RescheduleIn,
    Status,
)
from followup.store import FollowupStore

router = APIRouter(prefix="/v1", tags=["follow-ups"])
Store = Annotated[FollowupStore, Depends(read_store)]
Ctx = Annotated[FollowupContext, Depends(service_context)]
KEYS_UNAVAILABLE = {
    "description": "intake could not give the patient's data key just now (Retry-After): nothing was done"
}


def _outcome_result(result: dict[str, Any]) -> OutcomeResult:
    return OutcomeResult(**{**result, "follow_up": FollowUpOut.of(result["follow_up"])})


@router.get("/follow-ups", response_model=Page[FollowUpOut], openapi_extra=needs("follow-up:read"))
async def list_follow_ups(
    who: CurrentPrincipal,
    store: Store,
    page: Paging,
    patient_id: uuid.UUID | None = None,
    status: Status | None = None,
) -> Page[FollowUpOut]:
    rows = await store.list_follow_ups(who.agency_id, patient_id, status, page.fetch_limit, page.offset)
    return Page.of([FollowUpOut.of(r) for r in rows], page)


@router.get("/work-queue", response_model=Page[FollowUpOut], openapi_extra=needs("follow-up:read"))
async def work_queue(who: CurrentPrincipal, store: Store, page: Paging) -> Page[FollowUpOut]:
    """The agency's due and overdue follow-ups, most urgent priority first, then the longest waiting."""
    rows = await store.work_queue(who.agency_id, page.fetch_limit, page.offset)
    return Page.of([FollowUpOut.of(r) for r in rows], page)


@router.get(
    "/follow-ups/{follow_up_id}",
    response_model=FollowUpDetail,
    responses={503: KEYS_UNAVAILABLE},
    openapi_extra=needs("follow-up:read"),
)
async def get_follow_up(
    follow_up_id: uuid.UUID, who: CurrentPrincipal, store: Store, ctx: Ctx, audit: Audit
) -> FollowUpDetail:
    """The follow-up and every attempt's outcome, notes included (none once the patient was erased),
    with who recorded each."""
    row = await store.get_follow_up(who.agency_id, follow_up_id)
    if row is None:
        raise handlers.FollowUpNotFound()
    kept = await store.list_outcomes(follow_up_id)
    notes = await opened_notes(ctx.keys, row, kept)
    outcomes = [OutcomeOut(**{**dict(o), "note": note}) for o, note in zip(kept, notes, strict=True)]
    detail = FollowUpDetail(**FollowUpOut.of(row).model_dump(), outcomes=outcomes)
    await audit.read(row["patient_id"], "follow-up", entity_id=follow_up_id)
    return detail


@router.post(
    "/follow-ups/{follow_up_id}/outcome",
    response_model=OutcomeResult,
    responses={
        404: {"description": "No such follow-up in your agency"},
        409: {"description": "The follow-up is not due or overdue; detail says why"},
        410: {"description": "The patient was erased: no note is kept about them (record it without one)"},
        503: KEYS_UNAVAILABLE,
    },
    openapi_extra=needs("follow-up:record-outcome"),
)
async def record_outcome(
    follow_up_id: uuid.UUID,
    body: OutcomeIn,
    who: CurrentPrincipal,
    commands: Commands,
    store: Store,
    ctx: Ctx,
) -> Any:
    command = RecordOutcome(
        agency_id=who.agency_id,
        follow_up_id=follow_up_id,
        recorded_by=who.subject,
        recorded_by_role=who.role,
        reached=body.reached,
        goal_progress=tuple((g.goal_id, g.progress) for g in body.goal_progress),
        barriers=tuple(body.barriers),
        next_step=body.next_step,
        note=body.note,
    )
    sealed = await seal_note_ahead(ctx.keys, store, command)  # no transaction waits on intake
    handler = partial(handlers.record_outcome, sealed_note=sealed)  # the command alone is its fingerprint
    return await commands.run(handler, command, respond=_outcome_result)


@router.post(
    "/follow-ups/{follow_up_id}/reschedule",
    response_model=FollowUpOut,
    responses={
        404: {"description": "No such follow-up in your agency"},
        409: {"description": "The follow-up is completed or cancelled"},
    },
    openapi_extra=needs("follow-up:reschedule"),
)
async def reschedule_follow_up(
    follow_up_id: uuid.UUID, body: RescheduleIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = RescheduleFollowUp(who.agency_id, follow_up_id, who.subject, who.role, body.reason, body.due_at)
    return await commands.run(handlers.reschedule_follow_up, command, respond=FollowUpOut.of)


@router.post(
    "/follow-ups",
    status_code=201,
    response_model=FollowUpOut,
    responses={
        404: {"description": "No such patient in your agency"},
        410: {"description": "The patient was erased: there is no way left to reach them"},
    },
    openapi_extra=needs("follow-up:arrange"),
)
async def arrange_contact(body: ArrangeIn, who: CurrentPrincipal, commands: Commands) -> Any:
    """A contact the caller agreed with the patient (reason ``arranged-contact``): it falls due at its
    time, opens a follow-up task for the patient's care manager and takes an outcome like any other. It
    reaches the patient by the plan's channel or in person, so a channel the patient marked unsafe is
    never used."""
    command = ArrangeContact(
        who.agency_id, body.patient_id, who.subject, who.role, body.due_at, body.channel, body.purpose
    )
    return await commands.run(contacts.arrange_contact, command, status_code=201, respond=FollowUpOut.of)


@router.post(
    "/follow-ups/{follow_up_id}/arrangement",
    response_model=FollowUpOut,
    responses={
        404: {"description": "No such follow-up in your agency"},
        409: {"description": "Not an arranged contact, or no longer open"},
        422: {
            "description": "Neither named, an unknown purpose, or a channel the patient's plan does not allow"
        },
    },
    openapi_extra=needs("follow-up:arrange"),
)
async def change_arrangement(
    follow_up_id: uuid.UUID, body: ArrangementIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    """Reach the patient another way, or for another purpose, at an open arranged contact (same time;
    FollowUpScheduled when something changed)."""
    command = ChangeArrangement(
        who.agency_id, follow_up_id, who.subject, who.role, body.channel, body.purpose
    )
    return await commands.run(contacts.change_arrangement, command, respond=FollowUpOut.of)


@router.post(
    "/follow-ups/{follow_up_id}/cancel",
    response_model=FollowUpOut,
    responses={
        404: {"description": "No such follow-up in your agency"},
        409: {"description": "Not an arranged contact, or no longer open"},
    },
    openapi_extra=needs("follow-up:arrange"),
)
async def cancel_contact(
    follow_up_id: uuid.UUID, body: CancelIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    """Call off an open arranged contact (FollowUpCancelled); its follow-up task, if it opened one, closes."""
    command = CancelContact(who.agency_id, follow_up_id, who.subject, who.role, body.reason)
    return await commands.run(contacts.cancel_contact, command, respond=FollowUpOut.of)
