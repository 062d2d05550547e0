"""intake's FHIR R4 routes (``/fhir/R4/``): read by id and search by patient for what intake owns, the
patients themselves (``patient_api``), the screening instruments as Questionnaires
(``questionnaire_api``), and the import of a QuestionnaireResponse. The same agency scoping,
permissions and audit as ``/v1/``: another agency's resources do not exist (404 on a read, nothing
found in a search).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import Response

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
    as_fhir,
    base_url,
    document_answers,
    fhir_router,
    interaction,
    searched_patient,
    searchset,
)
from careloop_shared.http import Audit, Commands, CurrentPrincipal, needs, read_store, service_context
from intake.config import IntakeContext
from intake.domain.commands import AssessPatient
from intake.erasure.handlers import revealed
from intake.fhir import assessments, patient_api, questionnaire_api, resources
from intake.fhir.codes import fhir_codes
from intake.fhir.handlers import import_assessment
from intake.fhir.imports import imported_answers, subject_patient
from intake.fhir.schemas import ID_PATTERN, QuestionnaireResponseIn
from intake.fhir.store import FhirStore
from intake.store import IntakeStore

router = fhir_router("careloop intake")
questionnaire_api.add_routes(router)  # the instruments as forms: no patient data
patient_api.add_routes(router)  # the patients: read, and searched by GET and by POST
Store = Annotated[IntakeStore, Depends(read_store)]
Ctx = Annotated[IntakeContext, Depends(service_context)]
ById = Annotated[str, Path(pattern=ID_PATTERN)]


async def fhir_store(store: Store) -> FhirStore:
    return FhirStore(store.db)


def _assessment_of(resource_id: str) -> uuid.UUID | None:
    """The assessment an Observation or Condition was made of: its id starts with the assessment's."""
    try:
        return uuid.UUID(resource_id[:36]) if len(resource_id) > 37 and resource_id[36] == "-" else None
    except ValueError:
        return None


@router.get(
    "/Consent/{consent_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("consent:read"), **interaction("Consent", "read")},
)
async def read_consent(
    consent_id: uuid.UUID, who: CurrentPrincipal, consents: Annotated[FhirStore, Depends(fhir_store)]
) -> FhirResponse:
    row = await consents.get_consent(who.agency_id, consent_id)
    if row is None:
        raise NotFound("consent not found")
    return FhirResponse(resources.consent(row, who.agency_id))


@router.get(
    "/Consent",
    response_model=BundleDoc,
    openapi_extra={**needs("consent:read"), **interaction("Consent", "search-type", patient="reference")},
)
async def search_consents(
    request: Request, who: CurrentPrincipal, store: Store, patient: PatientQuery = None
) -> FhirResponse:
    rows = await store.list_consents(who.agency_id, searched_patient(patient))
    found = [resources.consent(r, who.agency_id) for r in rows]
    return FhirResponse(searchset(request, found, total=len(found)))


async def _assessment(
    ctx: IntakeContext, store: IntakeStore, agency_id: str, assessment_id: uuid.UUID | None
) -> Any:
    """The assessment with its sealed answers opened (gone if the patient's data was erased)."""
    row = await store.get_assessment(agency_id, assessment_id) if assessment_id is not None else None
    if row is None:
        raise NotFound("not found")
    return (await revealed(ctx, store, agency_id, [row]))[0]


async def _shown(audit: Audit, row: Any, resource: dict[str, Any]) -> FhirResponse:
    """A resource made of an assessment, once its disclosure is in the audit log."""
    await audit.read(row["patient_id"], "assessment", entity_id=row["id"])
    return FhirResponse(resource)


async def _assessments_found(
    ctx: IntakeContext,
    request: Request,
    who: CurrentPrincipal,
    store: IntakeStore,
    audit: Audit,
    page: SearchPage,
    patient_id: uuid.UUID,
    made_of: Callable[[Any], list[dict[str, Any]]],
    *,
    one_each: bool = False,
) -> FhirResponse:
    """A search over a patient's assessments, a page of ``_count`` assessments at a time (``one_each``:
    an assessment makes one resource, so the total is known on the last page)."""
    fetched = await store.list_assessments(who.agency_id, patient_id, page.fetch_limit, page.offset)
    rows = await revealed(ctx, store, who.agency_id, fetched[: page.count])
    await audit.read_many([(r["patient_id"], r["id"]) for r in rows], "assessment")
    found = [resource for r in rows for resource in made_of(r)]
    last = page.next_offset(len(fetched)) is None
    total = page.total(len(fetched)) if one_each else (len(found) if last and page.offset == 0 else None)
    return FhirResponse(searchset(request, found, next_offset=page.next_offset(len(fetched)), total=total))


@router.get(
    "/QuestionnaireResponse/{assessment_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("assessment:read"), **interaction("QuestionnaireResponse", "read")},
)
async def read_questionnaire_response(
    assessment_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
) -> FhirResponse:
    row = await _assessment(ctx, store, who.agency_id, assessment_id)
    return await _shown(audit, row, assessments.questionnaire_response(row, ctx.rules))


@router.get(
    "/QuestionnaireResponse",
    response_model=BundleDoc,
    openapi_extra={
        **needs("assessment:read"),
        **interaction("QuestionnaireResponse", "search-type", **BY_PATIENT),
    },
    summary="A patient's assessments as answered; _count assessments a page",
)
async def search_questionnaire_responses(
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    ctx: Ctx,
    page: Paging,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    def made_of(row: Any) -> list[dict[str, Any]]:
        return [assessments.questionnaire_response(row, ctx.rules)]

    patient_id = searched_patient(patient, subject)
    return await _assessments_found(ctx, request, who, store, audit, page, patient_id, made_of, one_each=True)


@router.post(
    "/QuestionnaireResponse",
    status_code=201,
    response_model=ResourceDoc,
    openapi_extra={**needs("assessment:record"), **interaction("QuestionnaireResponse", "create")},
    summary="Import a completed screening: scored, stored and announced like a native assessment",
)
async def import_questionnaire_response(
    request: Request, body: QuestionnaireResponseIn, who: CurrentPrincipal, ctx: Ctx, commands: Commands
) -> Response:
    instrument, answers = imported_answers(body, ctx.rules, base_url(request))
    command = AssessPatient(
        who.agency_id, subject_patient(body), instrument, answers, by=who.subject, by_role=who.role
    )
    answer = await commands.run(import_assessment, command, status_code=201)
    created = answer.status_code == 201
    location = f"{base_url(request)}/QuestionnaireResponse/{_created_id(answer)}" if created else None
    return as_fhir(answer, **({"Location": location} if location else {}))


def _created_id(answer: Response) -> str:
    return str(json.loads(bytes(answer.body)).get("id", ""))


@router.get(
    "/Observation/{observation_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("assessment:read"), **interaction("Observation", "read")},
)
async def read_observation(
    observation_id: ById, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
) -> FhirResponse:
    row = await _assessment(ctx, store, who.agency_id, _assessment_of(observation_id))
    made = assessments.observations(row, ctx.rules, fhir_codes())
    return await _shown(audit, row, _the_one(made, observation_id))


@router.get(
    "/Observation",
    response_model=BundleDoc,
    openapi_extra={**needs("assessment:read"), **interaction("Observation", "search-type", **BY_PATIENT)},
    summary="A patient's LOINC-coded answers and totals; _count assessments a page",
)
async def search_observations(
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    ctx: Ctx,
    page: Paging,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    def made_of(row: Any) -> list[dict[str, Any]]:
        return assessments.observations(row, ctx.rules, fhir_codes())

    return await _assessments_found(
        ctx, request, who, store, audit, page, searched_patient(patient, subject), made_of
    )


@router.get(
    "/Condition/{condition_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("assessment:read"), **interaction("Condition", "read")},
)
async def read_condition(
    condition_id: ById, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
) -> FhirResponse:
    row = await _assessment(ctx, store, who.agency_id, _assessment_of(condition_id))
    made = assessments.conditions(row, ctx.rules, fhir_codes())
    return await _shown(audit, row, _the_one(made, condition_id))


@router.get(
    "/Condition",
    response_model=BundleDoc,
    openapi_extra={**needs("assessment:read"), **interaction("Condition", "search-type", **BY_PATIENT)},
    summary="The needs a patient's screenings identified, as SDOH health concerns; _count assessments a page",
)
async def search_conditions(
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    ctx: Ctx,
    page: Paging,
    patient: PatientQuery = None,
    subject: PatientQuery = None,
) -> FhirResponse:
    def made_of(row: Any) -> list[dict[str, Any]]:
        return assessments.conditions(row, ctx.rules, fhir_codes())

    return await _assessments_found(
        ctx, request, who, store, audit, page, searched_patient(patient, subject), made_of
    )


def _the_one(made: list[dict[str, Any]], resource_id: str) -> dict[str, Any]:
    found = next((r for r in made if r["id"] == resource_id), None)
    if found is None:
        raise NotFound("not found")
    return found


add_audit_events(router)  # the service's audit log of a patient, as AuditEvents
document_answers(router)
