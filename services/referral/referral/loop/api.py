"""The closed loop's HTTP routes: referrals as the two agencies see them, and their status changes.

A referral is visible to the agency that made it, and to the receiving agency once it was sent.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from careloop_shared.auth import Principal
from careloop_shared.http import Commands, CurrentPrincipal, Page, Paging, needs, read_store
from referral.domain.commands import ChangeReferralStatus
from referral.domain.lifecycle import RECEIVING_ROLES, Outcome
from referral.loop import handlers
from referral.loop.schemas import HistoryEntry, ReferralDetail, ReferralOut, StatusChanged, StatusChangeIn
from referral.store import ReferralStore

router = APIRouter(prefix="/v1", tags=["referrals"])
Store = Annotated[ReferralStore, Depends(read_store)]
AgencyId = Annotated[str | None, Query(min_length=1, max_length=100)]


def sent_to_only(who: Principal) -> bool:
    """A provider is a receiving agency's staff: it sees and answers only what was sent to its agency."""
    return who.role in RECEIVING_ROLES


def _detail(referral: Any, history: list[Any]) -> ReferralDetail:
    return ReferralDetail(**dict(referral), history=[HistoryEntry(**dict(h)) for h in history])


def _status_changed(change: handlers.StatusChange) -> StatusChanged:
    return StatusChanged(referral=_detail(change.referral, change.history), rerouted_to=change.rerouted_to)


@router.get("/referrals", response_model=Page[ReferralOut], openapi_extra=needs("referral:read"))
async def list_referrals(
    who: CurrentPrincipal,
    store: Store,
    page: Paging,
    patient_id: uuid.UUID | None = None,
    receiving_agency: AgencyId = None,
    status_: Annotated[str | None, Query(alias="status", pattern=r"^[a-z-]{1,40}$")] = None,
) -> Page[ReferralOut]:
    """Referrals your agency made, and those sent to it (never another agency's waiting drafts)."""
    rows = await store.loop.list_referrals(
        who.agency_id,
        patient_id=patient_id,
        receiving_agency=receiving_agency,
        status=status_,
        limit=page.fetch_limit,
        offset=page.offset,
        sent_to_only=sent_to_only(who),
    )
    return Page.of([ReferralOut(**dict(r)) for r in rows], page)


@router.get("/referrals/{referral_id}", response_model=ReferralDetail, openapi_extra=needs("referral:read"))
async def get_referral(referral_id: uuid.UUID, who: CurrentPrincipal, store: Store) -> ReferralDetail:
    row = await store.loop.visible_referral(who.agency_id, referral_id, sent_to_only=sent_to_only(who))
    if row is None:
        raise handlers.ReferralNotFound()
    return _detail(row, await store.loop.history_of(referral_id))


@router.post(
    "/referrals/{referral_id}/status",
    response_model=StatusChanged,
    responses={
        403: {"description": "The other party sets this status"},
        409: {"description": "Not a legal move from the current status"},
    },
    openapi_extra=needs("referral:change-status"),
)
async def change_referral_status(
    referral_id: uuid.UUID, body: StatusChangeIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    outcome = Outcome(**body.outcome.model_dump()) if body.outcome else None
    command = ChangeReferralStatus(
        who.agency_id, referral_id, body.status, body.reason, outcome, body.note, sent_to_only(who)
    )
    return await commands.run(handlers.change_referral_status, command, respond=_status_changed)
