"""The recruitment pipeline's routes: prospective providers, read and moved along by the people who
keep the network (supervisors, directory administrators). Prospects hold no patient data: not audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from careloop_shared.http import CodePath, Commands, CurrentPrincipal, Page, Paging, Reply, needs, read_store
from referral.domain.commands import ChangeProspectStatus, SaveProspect
from referral.recruitment import handlers
from referral.recruitment.schemas import (
    ProspectDetail,
    ProspectHistoryEntry,
    ProspectIn,
    ProspectOut,
    ProspectStatusChanged,
    ProspectStatusIn,
)
from referral.store import ReferralStore

router = APIRouter(prefix="/v1", tags=["recruitment"])
Store = Annotated[ReferralStore, Depends(read_store)]
Code = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


def _detail(shown: handlers.ProspectShown) -> ProspectDetail:
    return ProspectDetail(**shown.prospect, history=[ProspectHistoryEntry(**h) for h in shown.history])


def _saved(shown: handlers.ProspectShown) -> Reply:
    return Reply(_detail(shown), 201 if shown.created else 200)


def _moved(shown: handlers.ProspectShown) -> ProspectStatusChanged:
    return ProspectStatusChanged(
        prospect=_detail(shown), service_ids=shown.service_ids, referred=shown.referred
    )


@router.get("/prospects", response_model=Page[ProspectOut], openapi_extra=needs("prospect:read"))
async def list_prospects(
    _: CurrentPrincipal,
    store: Store,
    page: Paging,
    status: Annotated[str | None, Query(pattern=r"^(prospect|contacted|onboarding|active|declined)$")] = None,
    owner_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    program_category: Code = None,
) -> Page[ProspectOut]:
    """The pipeline, by id; filtered by status, owner or a category they would serve."""
    rows = await store.recruitment.list_prospects(
        status=status,
        owner_id=owner_id,
        category=program_category,
        limit=page.fetch_limit,
        offset=page.offset,
    )
    return Page.of([ProspectOut(**dict(r)) for r in rows], page)


@router.get("/prospects/{prospect_id}", response_model=ProspectDetail, openapi_extra=needs("prospect:read"))
async def get_prospect(prospect_id: CodePath, _: CurrentPrincipal, store: Store) -> ProspectDetail:
    row = await store.recruitment.get_prospect(prospect_id)
    if row is None:
        raise handlers.ProspectNotFound()
    history = [ProspectHistoryEntry(**dict(h)) for h in await store.recruitment.history_of(prospect_id)]
    return ProspectDetail(**dict(row), history=history)


@router.post(
    "/prospects",
    status_code=201,
    response_model=ProspectDetail,
    responses={200: {"description": "Updated an existing prospect"}},
    openapi_extra=needs("prospect:change"),
)
async def save_prospect(body: ProspectIn, who: CurrentPrincipal, commands: Commands) -> Any:
    """Add a prospective provider (status `prospect`; owned by you unless `owner_id` names someone), or
    change its details (same id) until it is active or declined."""
    command = SaveProspect(who.agency_id, who.role, who.subject, body)
    return await commands.run(handlers.save_prospect, command, respond=_saved)


@router.post(
    "/prospects/{prospect_id}/status",
    response_model=ProspectStatusChanged,
    responses={409: {"description": "Not a legal move from its status, or its directory ids are taken"}},
    openapi_extra=needs("prospect:change"),
)
async def change_prospect_status(
    prospect_id: CodePath, body: ProspectStatusIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    """`prospect -> contacted -> onboarding -> active`, or `declined` (with a reason) before it is active.
    Active, it joins the directory (an organisation, one program per category) and every patient waiting
    on a gap one of its programs can take is referred now, behind the patient's consent."""
    command = ChangeProspectStatus(
        who.agency_id, who.role, who.subject, prospect_id, body.status, reason=body.reason, note=body.note
    )
    return await commands.run(handlers.change_prospect_status, command, respond=_moved)
