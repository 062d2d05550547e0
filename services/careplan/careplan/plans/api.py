"""The plans wing's HTTP routes: plan versions, diffs, status changes and education given."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from careloop_shared.errors import NotFound
from careloop_shared.http import Commands, CurrentPrincipal, Page, Paging, needs, read_store
from careplan.domain.commands import ChangePlanStatus, RecordEducation
from careplan.domain.plan import PlanDocument
from careplan.domain.versions import diff
from careplan.plans import handlers
from careplan.plans.revision import PlanNotFound
from careplan.schemas import CarePlanOut, DiffOut, EducationIn, StatusIn, VersionOut, VersionRef
from careplan.store import CareplanStore

router = APIRouter(prefix="/v1/patients/{patient_id}")
Store = Annotated[CareplanStore, Depends(read_store)]


class VersionNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("care plan version not found")


def _plan_out(patient_id: uuid.UUID, row: Any) -> CarePlanOut:
    return CarePlanOut(patient_id=patient_id, **dict(row))


# The document is answered as it is stored: an older version's keys only, as that version wrote them.
@router.get(
    "/care-plan",
    tags=["care plans"],
    response_model=CarePlanOut,
    response_model_exclude_unset=True,
    openapi_extra=needs("plan:read"),
)
async def current_care_plan(patient_id: uuid.UUID, who: CurrentPrincipal, store: Store) -> CarePlanOut:
    row = await store.plans.plan_version(who.agency_id, patient_id)
    if row is None:
        raise PlanNotFound()
    return _plan_out(patient_id, row)


@router.get(
    "/care-plan/versions",
    tags=["care plans"],
    response_model=Page[VersionOut],
    openapi_extra=needs("plan:read"),
)
async def care_plan_versions(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, page: Paging
) -> Page[VersionOut]:
    rows = await store.plans.plan_versions(who.agency_id, patient_id, page.fetch_limit, page.offset)
    if not rows and page.offset == 0:
        raise PlanNotFound()
    return Page.of([VersionOut(**dict(r)) for r in rows], page)


@router.get(
    "/care-plan/versions/{version}",
    tags=["care plans"],
    response_model=CarePlanOut,
    response_model_exclude_unset=True,
    openapi_extra=needs("plan:read"),
)
async def care_plan_version(
    patient_id: uuid.UUID, version: int, who: CurrentPrincipal, store: Store
) -> CarePlanOut:
    row = await store.plans.plan_version(who.agency_id, patient_id, version)
    if row is None:
        raise VersionNotFound()
    return _plan_out(patient_id, row)


@router.get("/care-plan/diff", tags=["care plans"], response_model=DiffOut, openapi_extra=needs("plan:read"))
async def care_plan_diff(
    patient_id: uuid.UUID,
    who: CurrentPrincipal,
    store: Store,
    from_: int = Query(alias="from", ge=1),
    to: int = Query(ge=1),
) -> DiffOut:
    old = await store.plans.plan_version(who.agency_id, patient_id, from_)
    new = await store.plans.plan_version(who.agency_id, patient_id, to)
    if old is None or new is None:
        raise VersionNotFound()
    changes = diff(PlanDocument.model_validate(old["document"]), PlanDocument.model_validate(new["document"]))
    if old["status"] != new["status"]:
        changes.setdefault("plan", {})["status"] = {"from": old["status"], "to": new["status"]}
    return DiffOut(from_version=from_, to_version=to, changes=changes)


@router.post(
    "/care-plan/status", tags=["care plans"], response_model=VersionRef, openapi_extra=needs("plan:change")
)
async def change_status(
    patient_id: uuid.UUID, body: StatusIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = ChangePlanStatus(who.agency_id, who.role, patient_id, body.status, body.expected_version)
    return await commands.run(handlers.change_plan_status, command, respond=VersionRef.of)


@router.post(
    "/care-plan/interventions/{intervention_id}/education",
    tags=["care plans"],
    status_code=201,
    response_model=VersionRef,
    openapi_extra=needs("plan:change"),
)
async def record_education(
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    body: EducationIn,
    who: CurrentPrincipal,
    commands: Commands,
) -> Any:
    command = RecordEducation(who.agency_id, who.role, patient_id, intervention_id, body.materials)
    return await commands.run(handlers.record_education, command, status_code=201, respond=VersionRef.of)
