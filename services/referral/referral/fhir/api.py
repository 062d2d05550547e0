"""referral's FHIR R4 routes (``/fhir/R4/``): its referrals as ``ServiceRequest`` and ``Task``, read by id
and searched by patient, and the directory (``directory_api``). The same scoping, permissions and audit
as ``/v1/referrals``: the referring agency sees its referrals, a provider only those sent to its agency;
another agency's referral does not exist (404 on a read, nothing found in a search). Each referral shown
discloses the patient's need: audited first, as ``/v1/`` does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request

from careloop_shared.audit_api import add_audit_events
from careloop_shared.errors import NotFound
from careloop_shared.fhir import (
    BY_PATIENT,
    BundleDoc,
    FhirResponse,
    Paging,
    PatientQuery,
    ResourceDoc,
    SearchPage,
    document_answers,
    fhir_router,
    searched_patient,
    searchset_page,
)
from careloop_shared.fhir import interaction as declares
from careloop_shared.http import Audit, Auditor, CurrentPrincipal, needs
from referral.fhir import resources
from referral.fhir.codes import fhir_codes
from referral.fhir.dependencies import Reads, Store
from referral.fhir.directory_api import router as directory_router
from referral.fhir.store import FhirStore
from referral.loop.api import audit_shown, sent_to_only
from referral.loop.handlers import ReferralNotFound

router = fhir_router("careloop referral")
Mapper = Callable[[Any, str | None], dict[str, Any]]


def _service_request(row: Any, performer: str | None) -> dict[str, Any]:
    return resources.service_request(row, performer, fhir_codes())


def _task(row: Any, owner: str | None) -> dict[str, Any]:
    return resources.task(row, owner, fhir_codes())


async def _shown(
    audit: Auditor, reads: FhirStore, rows: Sequence[Any], made_of: Mapper
) -> list[dict[str, Any]]:
    """Each referral as a resource naming the organization running its program, once its disclosure is
    in the audit log."""
    await audit_shown(audit, ((r["patient_id"], r["id"], r["referring_agency_id"]) for r in rows))
    organizations = await reads.organizations_of([r["program_id"] for r in rows]) if rows else {}
    return [made_of(r, organizations.get(r["program_id"])) for r in rows]


async def _found(
    request: Request,
    page: SearchPage,
    fetched: Sequence[Any],
    audit: Auditor,
    reads: FhirStore,
    made_of: Mapper,
) -> FhirResponse:
    """A page of referrals (one resource each, so the total is known on the last page)."""
    found = await _shown(audit, reads, fetched[: page.count], made_of)
    return searchset_page(request, page, len(fetched), found)


@router.get(
    "/ServiceRequest/{service_request_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("referral:read"), **declares("ServiceRequest", "read")},
    summary="What a referral asks for, as the newest referral of the request you may see says it",
)
async def read_service_request(
    service_request_id: uuid.UUID, who: CurrentPrincipal, reads: Reads, audit: Audit
) -> FhirResponse:
    row = await reads.service_request(who.agency_id, service_request_id, sent_to_only=sent_to_only(who))
    if row is None:
        raise NotFound("service request not found")
    [shown] = await _shown(audit, reads, [row], _service_request)
    return FhirResponse(shown)


@router.get(
    "/ServiceRequest",
    response_model=BundleDoc,
    openapi_extra={**needs("referral:read"), **declares("ServiceRequest", "search-type", **BY_PATIENT)},
    summary="A patient's referral requests you may see",
)
async def search_service_requests(
    request: Request,
    who: CurrentPrincipal,
    reads: Reads,
    audit: Audit,
    page: Paging,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    fetched = await reads.service_requests(
        who.agency_id,
        searched_patient(patient, subject),
        sent_to_only=sent_to_only(who),
        limit=page.fetch_limit,
        offset=page.offset,
    )
    return await _found(request, page, fetched, audit, reads, _service_request)


@router.get(
    "/Task/{referral_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("referral:read"), **declares("Task", "read")},
    summary="A referral: the receiving agency's progress (Gravity SDOH referral Task)",
)
async def read_task(
    referral_id: uuid.UUID, who: CurrentPrincipal, store: Store, reads: Reads, audit: Audit
) -> FhirResponse:
    row = await store.loop.visible_referral(who.agency_id, referral_id, sent_to_only=sent_to_only(who))
    if row is None:
        raise ReferralNotFound()
    [shown] = await _shown(audit, reads, [row], _task)
    return FhirResponse(shown)


@router.get(
    "/Task",
    response_model=BundleDoc,
    openapi_extra={**needs("referral:read"), **declares("Task", "search-type", **BY_PATIENT)},
    summary="A patient's referrals you may see, as referral Tasks",
)
async def search_tasks(
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    reads: Reads,
    audit: Audit,
    page: Paging,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    fetched = await store.loop.list_referrals(
        who.agency_id,
        patient_id=searched_patient(patient, subject),
        receiving_agency=None,
        status=None,
        limit=page.fetch_limit,
        offset=page.offset,
        sent_to_only=sent_to_only(who),
    )
    return await _found(request, page, fetched, audit, reads, _task)


# The directory's routes join this router, so that its ``/metadata`` declares them too.
router.routes.extend(directory_router.routes)
add_audit_events(router)  # the service's audit log of a patient, as AuditEvents
document_answers(router)
