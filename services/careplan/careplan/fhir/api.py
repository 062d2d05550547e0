"""careplan's FHIR R4 routes (``/fhir/R4/``): read by id and search by patient for ``CarePlan``,
``Goal``, ``CareTeam`` and ``ServiceRequest``. The same agency scoping, permissions and audit as
``/v1/``: another agency's resources do not exist (404 on a read, nothing found in a search).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from careloop_shared.audit_api import add_audit_events
from careloop_shared.errors import NotFound
from careloop_shared.fhir import (
    BY_PATIENT,
    BundleDoc,
    FhirResponse,
    Paging,
    PatientQuery,
    ResourceDoc,
    document_answers,
    fhir_router,
    interaction,
    searched_patient,
    searchset,
    searchset_page,
)
from careloop_shared.http import Audit, CurrentPrincipal, needs, read_store, service_context
from careplan.config import CareplanContext
from careplan.fhir import resources
from careplan.fhir.store import FhirStore
from careplan.store import CareplanStore

router = fhir_router("careloop careplan")
Store = Annotated[CareplanStore, Depends(read_store)]
Ctx = Annotated[CareplanContext, Depends(service_context)]


async def fhir_store(store: Store) -> FhirStore:
    return FhirStore(store.plans.db)


Reads = Annotated[FhirStore, Depends(fhir_store)]


def _version(plan_id: Any, version: int) -> str:
    """The audited record, as ``/v1/`` names it: one version of the plan."""
    return f"{plan_id}/v{version}"


def _care_plan(row: Any) -> dict[str, Any]:
    current = row["version"] == row["latest"]
    conditions = resources.conditions_of(row["assessments"]) if current else {}
    return resources.care_plan(row, latest=row["latest"], conditions=conditions)


def _goal(row: Any) -> dict[str, Any]:
    current = row["version"] == row["latest"]
    conditions = resources.conditions_of(row["assessments"]) if current else {}
    return resources.goal(
        row["goal"], patient_id=row["patient_id"], in_current=current, conditions=conditions
    )


@router.get(
    "/CarePlan/{care_plan_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("plan:read"), **interaction("CarePlan", "read")},
    summary="One version of a care plan (<plan id>-v<version>)",
)
async def read_care_plan(
    care_plan_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")],
    who: CurrentPrincipal,
    reads: Reads,
    audit: Audit,
) -> FhirResponse:
    named = resources.parse_care_plan_id(care_plan_id)
    row = await reads.version(who.agency_id, *named) if named is not None else None
    if row is None:
        raise NotFound("care plan not found")
    await audit.read(row["patient_id"], "plan", entity_id=_version(row["plan_id"], row["version"]))
    return FhirResponse(_care_plan(row))


@router.get(
    "/CarePlan",
    response_model=BundleDoc,
    openapi_extra={**needs("plan:read"), **interaction("CarePlan", "search-type", **BY_PATIENT)},
    summary="Every version of a patient's care plan, oldest first, each replacing the one before",
)
async def search_care_plans(
    request: Request,
    who: CurrentPrincipal,
    reads: Reads,
    audit: Audit,
    page: Paging,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    patient_id = searched_patient(patient, subject)
    fetched = await reads.versions(who.agency_id, patient_id, page.fetch_limit, page.offset)
    rows = fetched[: page.count]
    await audit.read_many([(patient_id, _version(r["plan_id"], r["version"])) for r in rows], "plan")
    return searchset_page(request, page, len(fetched), [_care_plan(r) for r in rows])


@router.get(
    "/Goal/{goal_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("plan:read"), **interaction("Goal", "read")},
)
async def read_goal(goal_id: uuid.UUID, who: CurrentPrincipal, reads: Reads, audit: Audit) -> FhirResponse:
    row = await reads.goal(who.agency_id, goal_id)
    if row is None:
        raise NotFound("goal not found")
    await audit.read(row["patient_id"], "plan", entity_id=_version(row["plan_id"], row["version"]))
    return FhirResponse(_goal(row))


@router.get(
    "/Goal",
    response_model=BundleDoc,
    openapi_extra={**needs("plan:read"), **interaction("Goal", "search-type", **BY_PATIENT)},
    summary="Every goal a patient's care plan has held, as its latest version holding it says",
)
async def search_goals(
    request: Request,
    who: CurrentPrincipal,
    reads: Reads,
    audit: Audit,
    page: Paging,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    patient_id = searched_patient(patient, subject)
    fetched = await reads.goals(who.agency_id, patient_id, page.fetch_limit, page.offset)
    rows = fetched[: page.count]
    shown = dict.fromkeys(_version(r["plan_id"], r["version"]) for r in rows)
    await audit.read_many([(patient_id, entity) for entity in shown], "plan")
    return searchset_page(request, page, len(fetched), [_goal(r) for r in rows])


async def _care_team(store: CareplanStore, audit: Audit, agency_id: str, plan: Any) -> dict[str, Any]:
    members = [dict(m) for m in await store.team.care_team(agency_id, plan["patient_id"])]
    # An empty team tells something about the patient too.
    shown: list[tuple[uuid.UUID, Any]] = [(plan["patient_id"], m["id"]) for m in members]
    await audit.read_many(shown or [(plan["patient_id"], None)], "care-team")
    return resources.care_team(plan, members, agency_id)


@router.get(
    "/CareTeam/{care_team_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("care-team:read"), **interaction("CareTeam", "read")},
    summary="A care plan's team (its id is the plan's): members by relationship and role only",
)
async def read_care_team(
    care_team_id: uuid.UUID, who: CurrentPrincipal, store: Store, reads: Reads, audit: Audit
) -> FhirResponse:
    plan = await reads.plan(who.agency_id, care_team_id)
    if plan is None:
        raise NotFound("care team not found")
    return FhirResponse(await _care_team(store, audit, who.agency_id, plan))


@router.get(
    "/CareTeam",
    response_model=BundleDoc,
    openapi_extra={**needs("care-team:read"), **interaction("CareTeam", "search-type", **BY_PATIENT)},
)
async def search_care_teams(
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    reads: Reads,
    audit: Audit,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    plan = await reads.plan_of_patient(who.agency_id, searched_patient(patient, subject))
    found = [await _care_team(store, audit, who.agency_id, plan)] if plan is not None else []
    return FhirResponse(searchset(request, found, total=len(found)))


@router.get(
    "/ServiceRequest/{request_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("service-request:read"), **interaction("ServiceRequest", "read")},
)
async def read_service_request(
    request_id: uuid.UUID, who: CurrentPrincipal, reads: Reads, audit: Audit, ctx: Ctx
) -> FhirResponse:
    row = await reads.service_request(who.agency_id, request_id)
    if row is None:
        raise NotFound("service request not found")
    await audit.read(row["patient_id"], "service-request", entity_id=row["id"])
    spec = ctx.criteria.services.get(row["service_code"])
    return FhirResponse(resources.service_request(row, spec))


@router.get(
    "/ServiceRequest",
    response_model=BundleDoc,
    openapi_extra={
        **needs("service-request:read"),
        **interaction("ServiceRequest", "search-type", **BY_PATIENT),
    },
    summary="The services requested for a patient, each with its necessity decision",
)
async def search_service_requests(
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    ctx: Ctx,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    patient_id = searched_patient(patient, subject)
    rows = await store.necessity.service_requests(who.agency_id, patient_id)
    await audit.read_many([(patient_id, r["id"]) for r in rows], "service-request")
    found = [resources.service_request(r, ctx.criteria.services.get(r["service_code"])) for r in rows]
    return FhirResponse(searchset(request, found, total=len(found)))


add_audit_events(router)  # the service's audit log of a patient, as AuditEvents
document_answers(router)
