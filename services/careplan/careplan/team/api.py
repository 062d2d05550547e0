"""The care team wing's HTTP routes: members and their contributions to the plan.

Answers that name members (names, contact details) are audited first, one entry per member shown
(``what`` "care-team"), and so are contributions read back, one entry per contribution shown
(``what`` "contribution"); a contribution or a removal answers with a version number or an id only.
Names, contact details and notes are kept sealed with the patient's data key, asked of intake before
a change opens its unit of work (503 when intake cannot answer). Once the patient is erased, a new
name, contact detail or note is refused with 410, and what was kept shows as erasure leaves it.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from careloop_shared.http import (
    Audit,
    Commands,
    CurrentPrincipal,
    Page,
    Paging,
    needs,
    read_store,
    service_context,
)
from careloop_shared.patient_keys import key_ahead
from careplan.config import CareplanContext
from careplan.domain.commands import (
    AddCareTeamMember,
    ChangeCareTeamMember,
    ContributeToPlan,
    RemoveCareTeamMember,
)
from careplan.plans.revision import PlanNotFound
from careplan.schemas import (
    ContributionIn,
    ContributionKind,
    ContributionOut,
    MemberIn,
    MemberOut,
    MemberPatch,
    VersionRef,
)
from careplan.store import CareplanStore
from careplan.team import handlers
from careplan.team.sealed import contribution_shown, member_shown

router = APIRouter(prefix="/v1/patients/{patient_id}")
Store = Annotated[CareplanStore, Depends(read_store)]
Ctx = Annotated[CareplanContext, Depends(service_context)]
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
KEYS: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "intake could not give the patient's data key just now (names, contact details and"
        " notes are sealed with it), or the database or the audit log is unavailable; retry after"
        " Retry-After seconds when it is given.",
        "headers": {"Retry-After": RETRY_AFTER},
    }
}
ERASED: dict[int | str, dict[str, Any]] = {
    **KEYS,
    410: {"description": "The patient was erased: no new names, contact details or notes are kept"},
}


def _member(row: dict[str, Any]) -> MemberOut:
    return MemberOut(**row)


def _member_id(answer: JSONResponse) -> Any:
    """The member an answer shows (a first answer or a replay of it)."""
    return json.loads(bytes(answer.body)).get("id")


@router.post(
    "/care-plan/contributions",
    tags=["care team"],
    status_code=201,
    response_model=VersionRef,
    responses=ERASED,
    openapi_extra=needs("plan:change"),
)
async def contribute(
    patient_id: uuid.UUID, body: ContributionIn, who: CurrentPrincipal, commands: Commands, ctx: Ctx
) -> Any:
    if body.note is not None:
        await key_ahead(ctx.keys, who.agency_id, patient_id)
    command = ContributeToPlan(
        agency_id=who.agency_id,
        by=who.subject,
        by_role=who.role,
        patient_id=patient_id,
        member_id=body.member_id,
        kind=body.kind,
        expected_version=body.expected_version,
        note=body.note,
        goal_id=body.goal_id,
        preference=body.preference.model_dump(exclude_none=True) if body.preference else None,
        need=body.need,
        due=body.due,
    )
    return await commands.run(handlers.contribute, command, status_code=201, respond=VersionRef.of)


@router.get(
    "/care-team",
    tags=["care team"],
    response_model=list[MemberOut],
    responses=KEYS,
    openapi_extra=needs("care-team:read"),
)
async def care_team(
    patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
) -> list[MemberOut]:
    """The members, each named as opened (an erased patient's: name '', no contact)."""
    if await store.plans.plan_version(who.agency_id, patient_id) is None:
        raise PlanNotFound()
    rows = await store.team.care_team(who.agency_id, patient_id)
    team = [MemberOut(**await member_shown(ctx.keys, who.agency_id, r)) for r in rows]
    # An empty team tells something about the patient too.
    shown: list[tuple[uuid.UUID, Any]] = [(patient_id, m.id) for m in team]
    await audit.read_many(shown or [(patient_id, None)], "care-team")
    return team


@router.get(
    "/care-team/contributions",
    tags=["care team"],
    response_model=Page[ContributionOut],
    responses=KEYS,
    openapi_extra=needs("care-team:read"),
)
async def contributions(
    patient_id: uuid.UUID,
    who: CurrentPrincipal,
    store: Store,
    audit: Audit,
    page: Paging,
    ctx: Ctx,
    kind: Annotated[list[ContributionKind] | None, Query()] = None,
) -> Page[ContributionOut]:
    """The care team's notes, agreed goals, preferences, needs raised or withdrawn and goals in the
    patient's own words and their rewordings (``kind``, repeated for several: of those kinds only), oldest
    first, each with who recorded it (an erased patient's notes and words: null)."""
    if await store.plans.plan_version(who.agency_id, patient_id) is None:
        raise PlanNotFound()
    rows = await store.team.contributions(who.agency_id, patient_id, page.fetch_limit, page.offset, kind)
    opened = [await contribution_shown(ctx.keys, who.agency_id, patient_id, r) for r in rows]
    shown = Page.of([ContributionOut(**c) for c in opened], page)
    # Notes are free text about the patient; an empty page tells something about them too.
    await audit.read_many([(patient_id, c.id) for c in shown.items] or [(patient_id, None)], "contribution")
    return shown


@router.post(
    "/care-team",
    tags=["care team"],
    status_code=201,
    response_model=MemberOut,
    responses=ERASED,
    openapi_extra=needs("care-team:change"),
)
async def add_member(
    patient_id: uuid.UUID, body: MemberIn, who: CurrentPrincipal, commands: Commands, audit: Audit, ctx: Ctx
) -> Any:
    await key_ahead(ctx.keys, who.agency_id, patient_id)
    command = AddCareTeamMember(
        agency_id=who.agency_id, by=who.subject, by_role=who.role, patient_id=patient_id, **body.model_dump()
    )
    answer = await commands.run(handlers.add_member, command, status_code=201, respond=_member)
    await audit.read(patient_id, "care-team", entity_id=_member_id(answer))  # the answer names them
    return answer


@router.patch(
    "/care-team/{member_id}",
    tags=["care team"],
    response_model=MemberOut,
    responses=ERASED,
    openapi_extra=needs("care-team:change"),
)
async def change_member(
    patient_id: uuid.UUID,
    member_id: uuid.UUID,
    body: MemberPatch,
    who: CurrentPrincipal,
    commands: Commands,
    audit: Audit,
    ctx: Ctx,
) -> Any:
    await key_ahead(ctx.keys, who.agency_id, patient_id)  # the answer names them
    changes = body.model_dump(exclude_unset=True)
    command = ChangeCareTeamMember(who.agency_id, who.subject, who.role, patient_id, member_id, changes)
    answer = await commands.run(handlers.change_member, command, respond=_member)
    await audit.read(patient_id, "care-team", entity_id=member_id)  # the answer names them
    return answer


@router.delete("/care-team/{member_id}", tags=["care team"], openapi_extra=needs("care-team:change"))
async def remove_member(
    patient_id: uuid.UUID, member_id: uuid.UUID, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = RemoveCareTeamMember(who.agency_id, who.subject, who.role, patient_id, member_id)
    return await commands.run(handlers.remove_member, command, respond=lambda m: {"removed": str(m["id"])})
