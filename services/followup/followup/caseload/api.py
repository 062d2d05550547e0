"""Caseloads over HTTP: a care manager's own patients, and a supervisor's view of every care manager.

Both answer pseudonymous patient ids, counts and due times only (no names, notes, answers or plan
content), as the follow-up lists do, so neither read is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from careloop_shared.http import CurrentPrincipal, Page, Paging, needs, read_store, service_context
from followup.caseload.schemas import CareManagerLoad, CaseloadPatient
from followup.config import FollowupContext
from followup.domain.task_rules import CARE_MANAGER
from followup.store import FollowupStore

router = APIRouter(prefix="/v1", tags=["caseloads"])
Store = Annotated[FollowupStore, Depends(read_store)]
Ctx = Annotated[FollowupContext, Depends(service_context)]


@router.get("/caseload", response_model=Page[CaseloadPatient], openapi_extra=needs("caseload:read"))
async def my_caseload(who: CurrentPrincipal, store: Store, ctx: Ctx, page: Paging) -> Page[CaseloadPatient]:
    """The caller's patients: most urgent tasks first, then most overdue, then the soonest follow-up."""
    rows = await store.caseload.caseload(
        who.agency_id,
        who.subject,
        ctx.clock(),
        sorted(ctx.tasks.urgent_priorities),
        CARE_MANAGER,
        page.fetch_limit,
        page.offset,
    )
    return Page.of([CaseloadPatient(**dict(r)) for r in rows], page)


@router.get(
    "/caseload/agency", response_model=Page[CareManagerLoad], openapi_extra=needs("caseload:read-agency")
)
async def agency_caseloads(
    who: CurrentPrincipal, store: Store, ctx: Ctx, page: Paging
) -> Page[CareManagerLoad]:
    """Per care manager of the caller's agency: patients, open, overdue and urgent tasks."""
    rows = await store.caseload.agency_caseloads(
        who.agency_id,
        ctx.clock(),
        sorted(ctx.tasks.urgent_priorities),
        CARE_MANAGER,
        page.fetch_limit,
        page.offset,
    )
    return Page.of([CareManagerLoad(**dict(r)) for r in rows], page)
