"""Reading the audit log: every service answers for what it disclosed, to the patient's own agency.

``GET /v1/audit?patient_id=`` lists every entry about the patient (reads and refusals, by anyone; oldest
first, or ``&order=newest``);
``GET /v1/audit/disclosures?patient_id=`` is the accounting of disclosures: what people outside the
patient's agency were shown. Both need ``audit:read`` and answer 404 for another agency's patient.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.errors import NotFound
from careloop_shared.http import CurrentPrincipal, Page, Paging, get_runtime, needs, read_store

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_COLUMNS = (
    "id, recorded_at, action, outcome, outcome_detail, subject, role, agency_id, network_address, source,"
    " patient_id, patient_agency_id, what, entity_id, route"
)


class PatientOwner(Protocol):
    """What a service's store must answer for its audit log to be read: whose patient this is."""

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None: ...


class AuditEntryOut(BaseModel):
    """A FHIR AuditEvent in short: agent (subject, role, agency, address), source, entity, outcome."""

    id: uuid.UUID
    recorded_at: datetime
    action: str
    outcome: str
    outcome_detail: str | None
    subject: str
    role: str
    agency_id: str
    network_address: str | None
    source: str
    patient_id: uuid.UUID | None
    patient_agency_id: str | None
    what: str
    entity_id: str | None
    route: str


Store = Annotated[PatientOwner, Depends(read_store)]


Order = Annotated[
    Literal["oldest", "newest"],
    Query(description="oldest first (the default), or newest first: the latest reads on the first page"),
]


async def _entries(
    request: Request,
    store: PatientOwner,
    who: Any,
    patient_id: uuid.UUID,
    page: Any,
    where: str,
    order: str = "oldest",
) -> Any:
    if await store.agency_of_patient(patient_id) != who.agency_id:
        raise NotFound("no such patient in your agency")
    # The patient is the caller's: every attempt on them counts, a refused one by another agency's
    # caller too (its row names that agency only), so this read is deliberately wider than the
    # row-level policy (which shows rows naming the caller's agency).
    with as_agency(ALL_AGENCIES):
        rows = await get_runtime(request).pool.fetch(
            f"SELECT {_COLUMNS} FROM audit_log WHERE patient_id = $1 {where}"
            f" ORDER BY position {'DESC' if order == 'newest' else 'ASC'} LIMIT $3 OFFSET $4",
            patient_id,
            who.agency_id,
            page.fetch_limit,
            page.offset,
        )
    return Page.of([AuditEntryOut(**dict(r)) for r in rows], page)


@router.get("", response_model=Page[AuditEntryOut], openapi_extra=needs("audit:read"))
async def audit_of_patient(
    patient_id: uuid.UUID,
    request: Request,
    store: Store,
    who: CurrentPrincipal,
    page: Paging,
    order: Order = "oldest",
) -> Page[AuditEntryOut]:
    """Every read of the patient's data here, and every refused attempt, oldest first (or newest)."""
    result: Page[AuditEntryOut] = await _entries(
        request, store, who, patient_id, page, "AND $2::text IS NOT NULL", order
    )
    return result


@router.get("/disclosures", response_model=Page[AuditEntryOut], openapi_extra=needs("audit:read"))
async def disclosures_of_patient(
    patient_id: uuid.UUID,
    request: Request,
    store: Store,
    who: CurrentPrincipal,
    page: Paging,
    order: Order = "oldest",
) -> Page[AuditEntryOut]:
    """The accounting of disclosures: what people outside the patient's agency were shown here, oldest
    first (or newest)."""
    result: Page[AuditEntryOut] = await _entries(
        request, store, who, patient_id, page, "AND outcome = 'allowed' AND agency_id <> $2", order
    )
    return result
