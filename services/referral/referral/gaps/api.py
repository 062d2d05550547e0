"""The network-gap report: where the network lacks a program, and how many patients wait on it.

Aggregates only (counts and dates per need, category, postal area and language), so an analyst or a
directory administrator may read it; it names no patient, and is not audited as a patient read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from careloop_shared.http import CurrentPrincipal, Page, Paging, needs, read_store
from referral.gaps.schemas import GapGroup
from referral.store import ReferralStore

router = APIRouter(prefix="/v1", tags=["network gaps"])
Store = Annotated[ReferralStore, Depends(read_store)]
Code = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


@router.get("/network-gaps", response_model=Page[GapGroup], openapi_extra=needs("network-gap:read"))
async def network_gaps(
    _: CurrentPrincipal, store: Store, page: Paging, need: Code = None, program_category: Code = None
) -> Page[GapGroup]:
    """Open gaps across the network, grouped by need, program category, postal area and language, with
    the patients waiting on each and since when the longest has waited; longest waiting first."""
    rows = await store.gaps.report(
        need=need, category=program_category, limit=page.fetch_limit, offset=page.offset
    )
    return Page.of([GapGroup(**dict(r)) for r in rows], page)
