"""The plans wing's HTTP routes: plan versions, diffs and status changes.

Every answer that shows plan content (a version, the list of versions, a diff) is audited first, one
entry per version shown (``what`` "plan", ``entity_id`` "<plan id>/v<version>"). Commands answer with a
version number only, and are not.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from careloop_shared.errors import NotFound
from careloop_shared.http import (
    MAX_INT,
    Audit,
    Commands,
    CurrentPrincipal,
    Page,
    Paging,
    VersionPath,
    needs,
    read_store,
)
from careplan.domain.commands import ChangePlanStatus, MoveGoal, MoveIntervention
from careplan.domain.plan import PlanDocument
from careplan.domain.versions import diff
from careplan.plans import handlers
from careplan.plans.revision import PlanNotFound
from careplan.schemas import (
    CarePlanOut,
    DiffOut,
    GoalStatusIn,
    InterventionStatusIn,
    StatusIn,
    VersionOut,
    VersionRef,
)
from careplan.store import CareplanStore

router = APIRouter(prefix="/v1/patients/{patient_id}")
Store = Annotated[CareplanStore, Depends(read_store)]


class VersionNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("care plan version not found")


def _plan_out(patient_id: uuid.UUID, row: Any) -> CarePlanOut:
    return CarePlanOut(patient_id=patient_id, **dict(row))


def _version(plan_id: uuid.UUID, version: int) -> str:
    """The audited record: one version of the plan."""
    return f"{plan_id}/v{version}"


# The document is answered as it is stored: an older version's keys only, as that version wrote them.
@router.get(
    "/care-plan",
    tags=["care plans"],
    response_model=CarePlanOut,
    response_model_exclude_unset=True,
    openapi_extra=needs("plan:read"),
)
async def current_care_plan(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit
) -> CarePlanOut:
    row = await store.plans.plan_version(who.agency_id, patient_id)
    if row is None:
        raise PlanNotFound()
    await audit.read(patient_id, "plan", entity_id=_version(row["plan_id"], row["version"]))
    return _plan_out(patient_id, row)


@router.get(
    "/care-plan/versions",
    tags=["care plans"],
    response_model=Page[VersionOut],
    openapi_extra=needs("plan:read"),
)
async def care_plan_versions(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, page: Paging
) -> Page[VersionOut]:
    """Each version's status, reason, and who made it (role and person)."""
    rows = await store.plans.plan_versions(who.agency_id, patient_id, page.fetch_limit, page.offset)
    if not rows and page.offset == 0:
        raise PlanNotFound()
    shown = Page.of([VersionOut(**dict(r)) for r in rows], page)
    if rows:
        plan_id = rows[0]["plan_id"]
        await audit.read_many([(patient_id, _version(plan_id, v.version)) for v in shown.items], "plan")
    return shown


@router.get(
    "/care-plan/versions/{version}",
    tags=["care plans"],
    response_model=CarePlanOut,
    response_model_exclude_unset=True,
    openapi_extra=needs("plan:read"),
)
async def care_plan_version(
    patient_id: uuid.UUID, version: VersionPath, who: CurrentPrincipal, store: Store, audit: Audit
) -> CarePlanOut:
    row = await store.plans.plan_version(who.agency_id, patient_id, version)
    if row is None:
        raise VersionNotFound()
    await audit.read(patient_id, "plan", entity_id=_version(row["plan_id"], version))
    return _plan_out(patient_id, row)


@router.get("/care-plan/diff", tags=["care plans"], response_model=DiffOut, openapi_extra=needs("plan:read"))
async def care_plan_diff(
    patient_id: uuid.UUID,
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    from_: int = Query(alias="from", ge=1, le=MAX_INT),
    to: int = Query(ge=1, le=MAX_INT),
) -> DiffOut:
    old = await store.plans.plan_version(who.agency_id, patient_id, from_)
    new = await store.plans.plan_version(who.agency_id, patient_id, to)
    if old is None or new is None:
        raise VersionNotFound()
    changes = diff(PlanDocument.model_validate(old["document"]), PlanDocument.model_validate(new["document"]))
    if old["status"] != new["status"]:
        changes.setdefault("plan", {})["status"] = {"from": old["status"], "to": new["status"]}
    compared = dict.fromkeys(_version(old["plan_id"], v) for v in (from_, to))
    await audit.read_many([(patient_id, entity) for entity in compared], "plan")
    return DiffOut(from_version=from_, to_version=to, changes=changes)


@router.post(
    "/care-plan/status", tags=["care plans"], response_model=VersionRef, openapi_extra=needs("plan:change")
)
async def change_status(
    patient_id: uuid.UUID, body: StatusIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = ChangePlanStatus(
        who.agency_id, who.subject, who.role, patient_id, body.status, body.expected_version
    )
    return await commands.run(handlers.change_plan_status, command, respond=VersionRef.of)


_MOVED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No plan, or the item is not in its current version"},
    409: {
        "description": "A stale version, a move it cannot make, a closed plan, or a referral's intervention"
    },
}


@router.post(
    "/care-plan/interventions/{intervention_id}/status",
    tags=["care plans"],
    response_model=VersionRef,
    responses=_MOVED,
    openapi_extra=needs("plan:change"),
)
async def move_intervention(
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    body: InterventionStatusIn,
    who: CurrentPrincipal,
    commands: Commands,
) -> Any:
    """Move an intervention that no referral serves (a clinical step, education) along its activity
    status: done, on hold, stopped, reopened. A new version records it, as progress by the person."""
    command = MoveIntervention(
        who.agency_id, who.subject, who.role, patient_id, intervention_id, body.status, body.expected_version
    )
    return await commands.run(handlers.move_intervention_by_hand, command, respond=VersionRef.of)


@router.post(
    "/care-plan/goals/{goal_id}/status",
    tags=["care plans"],
    response_model=VersionRef,
    responses=_MOVED,
    openapi_extra=needs("plan:change"),
)
async def move_goal(
    patient_id: uuid.UUID, goal_id: uuid.UUID, body: GoalStatusIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    """Say where a goal stands: its lifecycle (on hold, completed, cancelled, active again) and its
    achievement. A plan whose goals are all completed is completed with them."""
    command = MoveGoal(
        who.agency_id,
        who.subject,
        who.role,
        patient_id,
        goal_id,
        body.lifecycle_status,
        body.achievement_status,
        body.expected_version,
    )
    return await commands.run(handlers.move_goal_by_hand, command, respond=VersionRef.of)
