"""The closed loop's HTTP routes: referrals as the two agencies see them, and their status changes.

A referral is visible to the agency that made it, and to the receiving agency once it was sent. Each
referral shown discloses its patient's need (and its history's notes) to the caller: audited first, as a
disclosure outside the patient's agency when the caller is the receiving agency. The notes are sealed
with the patient's data key, asked of intake for the referring agency (``erasure/notes``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from careloop_shared.auth import Principal
from careloop_shared.body import Moment
from careloop_shared.http import (
    Audit,
    Auditor,
    Commands,
    CurrentPrincipal,
    Page,
    Paging,
    needs,
    read_store,
    service_context,
)
from careloop_shared.patient_keys import key_ahead
from referral.config import ReferralContext
from referral.domain.commands import ChangeReferralStatus
from referral.domain.lifecycle import RECEIVING_ROLES, Outcome, ReferralStatus
from referral.erasure.notes import history_shown
from referral.loop import handlers
from referral.loop.schemas import (
    HistoryEntry,
    ReferralDetail,
    ReferralOut,
    ReferralSummary,
    StatusChanged,
    StatusChangeIn,
)
from referral.store import ReferralStore

router = APIRouter(prefix="/v1", tags=["referrals"])
Store = Annotated[ReferralStore, Depends(read_store)]
Ctx = Annotated[ReferralContext, Depends(service_context)]
AgencyId = Annotated[str | None, Query(min_length=1, max_length=100)]


def sent_to_only(who: Principal) -> bool:
    """A provider is a receiving agency's staff: it sees and answers only what was sent to its agency."""
    return who.role in RECEIVING_ROLES


# A read or change that needs the patient's data key while intake cannot answer: nothing done, retry.
KEYS_UNAVAILABLE = "intake could not release the patient's data key (the notes are sealed with it); retry"


def _detail(referral: Any, history: list[Any]) -> ReferralDetail:
    return ReferralDetail(**dict(referral), history=[HistoryEntry(**dict(h)) for h in history])


def _status_changed(change: handlers.StatusChange) -> StatusChanged:
    return StatusChanged(referral=_detail(change.referral, change.history), rerouted_to=change.rerouted_to)


async def audit_shown(audit: Auditor, shown: Iterable[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
    """One entry per (patient, referral, the patient's agency) shown: to the receiving agency, it is a
    disclosure outside the patient's agency."""
    by_agency: dict[str, list[tuple[uuid.UUID, uuid.UUID]]] = {}
    for patient_id, referral_id, patient_agency in shown:
        by_agency.setdefault(patient_agency, []).append((patient_id, referral_id))
    await asyncio.gather(
        *(audit.read_many(each, "referral", patient_agency_id=agency) for agency, each in by_agency.items())
    )


@router.get("/referrals", response_model=Page[ReferralOut], openapi_extra=needs("referral:read"))
async def list_referrals(
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    page: Paging,
    patient_id: uuid.UUID | None = None,
    receiving_agency: AgencyId = None,
    status_: Annotated[
        list[ReferralStatus] | None, Query(alias="status", max_length=10, description="Any of these")
    ] = None,
    attendance_overdue: Annotated[
        bool | None,
        Query(description="Only those whose booked appointment nobody has said the patient came to (true)"),
    ] = None,
) -> Page[ReferralOut]:
    """Referrals your agency made, and those sent to it (never another agency's waiting drafts); of the
    statuses named (``status`` repeated: ``?status=requested&status=accepted``), if any; with
    ``attendance_overdue``, only those whose appointment is (or is not) waiting to be said how it went."""
    rows = await store.loop.list_referrals(
        who.agency_id,
        patient_id=patient_id,
        receiving_agency=receiving_agency,
        status=status_,
        limit=page.fetch_limit,
        offset=page.offset,
        sent_to_only=sent_to_only(who),
        attendance_overdue=attendance_overdue,
    )
    shown = Page.of([ReferralOut(**dict(r)) for r in rows], page)
    await audit_shown(audit, ((r.patient_id, r.id, r.referring_agency_id) for r in shown.items))
    return shown


@router.get("/referrals/summary", response_model=ReferralSummary, openapi_extra=needs("referral:read"))
async def referral_summary(
    who: CurrentPrincipal,
    store: Store,
    ctx: Ctx,
    since: Annotated[Moment | None, Query(description="Referrals made at or after this time")] = None,
    until: Annotated[Moment | None, Query(description="Referrals made before this time")] = None,
    side: Annotated[
        Literal["made", "received"], Query(description="Those your agency made, or those sent to it")
    ] = "made",
) -> ReferralSummary:
    """How the referrals your agency made went (or, ``side=received``, those sent to it): counts by where
    they stand, overdue ones, and the median hours to an answer and to the service. Counts only: no
    patient, no program, so nothing is audited."""
    row = await store.loop.summary(who.agency_id, since, until, ctx.clock(), received=side == "received")
    return ReferralSummary(since=since, until=until, **dict(row))


@router.get(
    "/referrals/{referral_id}",
    response_model=ReferralDetail,
    responses={503: {"description": KEYS_UNAVAILABLE}},
    openapi_extra=needs("referral:read"),
)
async def get_referral(
    referral_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
) -> ReferralDetail:
    """The referral with its history; a note of an erased patient shows as none."""
    row = await store.loop.visible_referral(who.agency_id, referral_id, sent_to_only=sent_to_only(who))
    if row is None:
        raise handlers.ReferralNotFound()
    detail = _detail(row, await history_shown(ctx.keys, row, await store.loop.history_of(referral_id)))
    await audit_shown(audit, [(row["patient_id"], referral_id, row["referring_agency_id"])])
    return detail


@router.post(
    "/referrals/{referral_id}/status",
    response_model=StatusChanged,
    responses={
        403: {"description": "The other party sets this status"},
        409: {"description": "Not a legal move from the current status"},
        410: {"description": "A note about a patient whose data was erased; body names erased_at once known"},
        503: {"description": KEYS_UNAVAILABLE},
    },
    openapi_extra=needs("referral:change-status"),
)
async def change_referral_status(
    referral_id: uuid.UUID,
    body: StatusChangeIn,
    who: CurrentPrincipal,
    commands: Commands,
    audit: Audit,
    store: Store,
    ctx: Ctx,
) -> Any:
    """Move the referral along its lifecycle, as the referring or the receiving agency; a note is kept
    sealed with the patient's data key, and the answer shows the history with its notes."""
    seen = await store.loop.visible_referral(who.agency_id, referral_id, sent_to_only=sent_to_only(who))
    if seen is not None and (body.note is not None or await store.erasure.has_sealed_notes(referral_id)):
        await key_ahead(ctx.keys, seen["agency_id"], seen["patient_id"])  # before the transaction opens
    outcome = Outcome(**body.outcome.model_dump()) if body.outcome else None
    command = ChangeReferralStatus(
        who.agency_id,
        referral_id,
        body.status,
        by=who.subject,
        by_role=who.role,
        reason=body.reason,
        outcome=outcome,
        note=body.note,
        receiving_only=sent_to_only(who),
    )
    about = seen["patient_id"] if seen is not None else None  # the answer kept for a replay holds notes
    answer = await commands.run(
        handlers.change_referral_status, command, respond=_status_changed, patient_id=about
    )
    # The answer (a first one or a replay) shows the referral with its history's notes.
    shown = json.loads(bytes(answer.body))["referral"]
    await audit_shown(audit, [(uuid.UUID(shown["patient_id"]), referral_id, shown["referring_agency_id"])])
    return answer
