"""intake's HTTP routes: each command route builds a command and runs its handler; reads use the store."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from careloop_shared.errors import NotFound
from careloop_shared.http import (
    Audit,
    Auditor,
    CodePath,
    Commands,
    CurrentPrincipal,
    Page,
    PageParams,
    Paging,
    needs,
    read_store,
    service_context,
)
from careloop_shared.idempotency import idempotency_key
from intake import handlers
from intake.config import IntakeContext
from intake.domain.commands import AssessPatient, RecordConsent, RegisterPatient, RevokeConsent, UpdatePatient
from intake.domain.patients import normalised_name
from intake.domain.questionnaires import questionnaire
from intake.erasure.handlers import ErasePatient, kept_patient, revealed
from intake.erasure.handlers import erase_patient as erase
from intake.identity.sealed import identified
from intake.schemas import (
    AssessmentIn,
    AssessmentOut,
    ConsentIn,
    ConsentOut,
    Created,
    ErasureIn,
    ErasureOut,
    PatientIn,
    PatientOut,
    PatientPatch,
    PatientSearch,
    QuestionnaireOut,
)
from intake.store import IntakeStore

router = APIRouter(prefix="/v1")
ERASED: dict[int | str, dict[str, Any]] = {
    410: {"description": "The patient's identifying details and sealed data were erased"}
}
Store = Annotated[IntakeStore, Depends(read_store)]
Ctx = Annotated[IntakeContext, Depends(service_context)]
Language = Annotated[str, Query(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$", max_length=35)]


def _created(new_id: uuid.UUID) -> Created:
    return Created(id=new_id)


@router.post(
    "/patients",
    tags=["patients"],
    status_code=201,
    response_model=Created,
    responses={409: {"description": "Likely duplicate; body names existing_id"}},
    openapi_extra=needs("patient:register"),
)
async def register_patient(body: PatientIn, who: CurrentPrincipal, commands: Commands) -> Any:
    command = RegisterPatient(agency_id=who.agency_id, by=who.subject, by_role=who.role, **body.model_dump())
    return await commands.run(handlers.register_patient, command, status_code=201, respond=_created)


@router.get(
    "/patients", tags=["patients"], response_model=Page[PatientOut], openapi_extra=needs("patient:read")
)
async def list_patients(
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    page: Paging,
    ctx: Ctx,
    ids: Annotated[
        list[uuid.UUID] | None,
        Query(
            alias="id",
            max_length=200,
            description="Only these patients (the parameter repeated, at most 200): a page that lists "
            "patients by id shows their names. One not of your agency, erased or unknown is left out.",
        ),
    ] = None,
) -> Page[PatientOut]:
    """The agency's patients in the order they were registered; erased patients are left out."""
    rows = await store.list_patients(who.agency_id, page.fetch_limit, page.offset, only=ids)
    return await _shown(rows, page, ctx, audit)


async def _shown(rows: list[Any], page: PageParams, ctx: IntakeContext, audit: Auditor) -> Page[PatientOut]:
    """A page of the patients as kept, their details opened, each recorded as read."""
    shown = Page.of([PatientOut(**p) for p in identified(ctx.keys, rows)], page)
    await audit.read_many([(p.id, p.id) for p in shown.items], "patient")
    return shown


@router.post(
    "/patients/search",
    tags=["patients"],
    response_model=Page[PatientOut],
    openapi_extra=needs("patient:read"),
)
async def search_patients(
    body: PatientSearch,
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    page: Paging,
    ctx: Ctx,
) -> Page[PatientOut]:
    """The agency's patients with this name and birth date (erased ones left out): found by the blind index
    registration keeps for likely duplicates, so the details are never searched in the clear. A POST, so
    the name and birth date travel in the body, never in a URL or an access log. It changes nothing (an
    ``Idempotency-Key`` is checked, not needed); each patient found is recorded as read, and a search that
    finds nobody as one entry naming no patient."""
    idempotency_key(request)
    name_key = normalised_name(body.given_name, body.family_name)
    blind = ctx.blind_index.likely_duplicate(who.agency_id, name_key, body.birth_date)
    rows = await store.find_patients(
        who.agency_id, blind, name_key, body.birth_date, page.fetch_limit, page.offset
    )
    if not rows and page.offset == 0:
        await audit.found_nobody("patient")
    return await _shown(rows, page, ctx, audit)


@router.get(
    "/patients/{patient_id}",
    tags=["patients"],
    response_model=PatientOut,
    responses=ERASED,
    openapi_extra=needs("patient:read"),
)
async def get_patient(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
) -> PatientOut:
    [opened] = identified(ctx.keys, [await kept_patient(store, who.agency_id, patient_id)])
    patient = PatientOut(**opened)
    await audit.read(patient_id, "patient")
    return patient


@router.patch(
    "/patients/{patient_id}",
    tags=["patients"],
    response_model=PatientOut,
    responses=ERASED,
    openapi_extra=needs("patient:update"),
)
async def update_patient(
    patient_id: uuid.UUID, body: PatientPatch, who: CurrentPrincipal, commands: Commands, audit: Audit
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    command = UpdatePatient(who.agency_id, patient_id, changes, by=who.subject, by_role=who.role)
    answer = await commands.run(handlers.update_patient, command, respond=lambda p: PatientOut(**p))
    await audit.read(patient_id, "patient")  # the answer shows the patient's details
    return answer


@router.post(
    "/patients/{patient_id}/consents",
    tags=["consent"],
    status_code=201,
    response_model=Created,
    openapi_extra=needs("consent:record"),
)
async def record_consent(
    patient_id: uuid.UUID, body: ConsentIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = RecordConsent(
        agency_id=who.agency_id, patient_id=patient_id, by=who.subject, by_role=who.role, **body.model_dump()
    )
    return await commands.run(handlers.record_consent, command, status_code=201, respond=_created)


@router.get(
    "/patients/{patient_id}/consents",
    tags=["consent"],
    response_model=list[ConsentOut],
    openapi_extra=needs("consent:read"),
)
async def list_consents(patient_id: uuid.UUID, who: CurrentPrincipal, store: Store) -> list[ConsentOut]:
    await kept_patient(store, who.agency_id, patient_id, erased=True)  # consents name no one
    return [ConsentOut(**dict(r)) for r in await store.list_consents(who.agency_id, patient_id)]


@router.post(
    "/patients/{patient_id}/consents/{consent_id}/revoke",
    tags=["consent"],
    response_model=ConsentOut,
    openapi_extra=needs("consent:revoke"),
)
async def revoke_consent(
    patient_id: uuid.UUID, consent_id: uuid.UUID, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = RevokeConsent(who.agency_id, patient_id, consent_id, by=who.subject, by_role=who.role)
    return await commands.run(handlers.revoke_consent, command, respond=lambda c: ConsentOut(**c))


@router.post(
    "/patients/{patient_id}/assessments",
    tags=["assessments"],
    status_code=202,
    response_model=Created,
    responses={404: {"description": "No such patient in your agency"}, **ERASED},
    openapi_extra=needs("assessment:record"),
)
async def assess_patient(
    patient_id: uuid.UUID, body: AssessmentIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = AssessPatient(
        who.agency_id, patient_id, body.instrument, body.answers, by=who.subject, by_role=who.role
    )
    return await commands.run(handlers.assess_patient, command, status_code=202, respond=_created)


@router.get(
    "/patients/{patient_id}/assessments",
    tags=["assessments"],
    response_model=Page[AssessmentOut],
    openapi_extra=needs("assessment:read"),
)
async def list_assessments(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, page: Paging, ctx: Ctx
) -> Page[AssessmentOut]:
    await kept_patient(store, who.agency_id, patient_id, erased=True)  # needs and scores stay; answers do not
    rows = await store.list_assessments(who.agency_id, patient_id, page.fetch_limit, page.offset)
    shown = Page.of([AssessmentOut(**r) for r in await revealed(ctx, store, who.agency_id, rows)], page)
    await audit.read_many([(a.patient_id, a.id) for a in shown.items], "assessment")
    return shown


@router.get(
    "/assessments/{assessment_id}",
    tags=["assessments"],
    response_model=AssessmentOut,
    openapi_extra=needs("assessment:read"),
)
async def get_assessment(
    assessment_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
) -> AssessmentOut:
    row = await store.get_assessment(who.agency_id, assessment_id)
    if row is None:
        raise NotFound("assessment not found")
    [shown] = await revealed(ctx, store, who.agency_id, [row])
    await audit.read(row["patient_id"], "assessment", entity_id=assessment_id)
    return AssessmentOut(**shown)


@router.post(
    "/patients/{patient_id}/erasure",
    tags=["patients"],
    response_model=ErasureOut,
    responses={410: {"description": "Erased already; body names erased_at"}},
    openapi_extra=needs("patient:erase"),
)
async def erase_patient(
    patient_id: uuid.UUID, body: ErasureIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    """Erase the patient's identifying details and every sealed copy of their sensitive data (their
    data key is destroyed; nothing can undo it), with the reason, recorded. The pseudonymous case, the
    case record's chain and the analytics counts stay."""
    command = ErasePatient(who.agency_id, patient_id, body.reason, by=who.subject, by_role=who.role)
    return await commands.run(
        erase, command, respond=lambda at: ErasureOut(patient_id=patient_id, erased_at=at)
    )


@router.get(
    "/instruments",
    tags=["assessments"],
    response_model=list[QuestionnaireOut],
    openapi_extra=needs("assessment:record"),
)
async def instruments(ctx: Ctx, language: Language = "en") -> list[QuestionnaireOut]:
    """Every screening instrument as a form asks it: items, their text, the answers to choose from."""
    return [
        QuestionnaireOut(**q)
        for name in ctx.rules.instruments
        if (q := questionnaire(ctx.rules, name, language)) is not None
    ]


@router.get(
    "/instruments/{instrument_id}",
    tags=["assessments"],
    response_model=QuestionnaireOut,
    openapi_extra=needs("assessment:record"),
)
async def instrument(instrument_id: CodePath, ctx: Ctx, language: Language = "en") -> QuestionnaireOut:
    asked = questionnaire(ctx.rules, instrument_id, language)
    if asked is None:
        raise NotFound("no such instrument")
    return QuestionnaireOut(**asked)
