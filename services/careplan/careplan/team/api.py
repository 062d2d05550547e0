"""The care team wing's HTTP routes: members and their contributions to the plan."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from careloop_shared.http import Commands, CurrentPrincipal, needs, read_store
from careplan.domain.commands import (
    AddCareTeamMember,
    ChangeCareTeamMember,
    ContributeToPlan,
    RemoveCareTeamMember,
)
from careplan.plans.revision import PlanNotFound
from careplan.schemas import ContributionIn, MemberIn, MemberOut, MemberPatch, VersionRef
from careplan.store import CareplanStore
from careplan.team import handlers

router = APIRouter(prefix="/v1/patients/{patient_id}")
Store = Annotated[CareplanStore, Depends(read_store)]


def _member(row: dict[str, Any]) -> MemberOut:
    return MemberOut(**row)


@router.post(
    "/care-plan/contributions",
    tags=["care team"],
    status_code=201,
    response_model=VersionRef,
    openapi_extra=needs("plan:change"),
)
async def contribute(
    patient_id: uuid.UUID, body: ContributionIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = ContributeToPlan(
        agency_id=who.agency_id,
        role=who.role,
        patient_id=patient_id,
        member_id=body.member_id,
        kind=body.kind,
        expected_version=body.expected_version,
        note=body.note,
        goal_id=body.goal_id,
        preference=body.preference.model_dump(exclude_none=True) if body.preference else None,
    )
    return await commands.run(handlers.contribute, command, status_code=201, respond=VersionRef.of)


@router.get(
    "/care-team", tags=["care team"], response_model=list[MemberOut], openapi_extra=needs("care-team:read")
)
async def care_team(patient_id: uuid.UUID, who: CurrentPrincipal, store: Store) -> list[MemberOut]:
    if await store.plans.plan_version(who.agency_id, patient_id) is None:
        raise PlanNotFound()
    return [MemberOut(**dict(r)) for r in await store.team.care_team(who.agency_id, patient_id)]


@router.post(
    "/care-team",
    tags=["care team"],
    status_code=201,
    response_model=MemberOut,
    openapi_extra=needs("care-team:change"),
)
async def add_member(patient_id: uuid.UUID, body: MemberIn, who: CurrentPrincipal, commands: Commands) -> Any:
    command = AddCareTeamMember(agency_id=who.agency_id, patient_id=patient_id, **body.model_dump())
    return await commands.run(handlers.add_member, command, status_code=201, respond=_member)


@router.patch(
    "/care-team/{member_id}",
    tags=["care team"],
    response_model=MemberOut,
    openapi_extra=needs("care-team:change"),
)
async def change_member(
    patient_id: uuid.UUID, member_id: uuid.UUID, body: MemberPatch, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = ChangeCareTeamMember(who.agency_id, patient_id, member_id, body.model_dump(exclude_unset=True))
    return await commands.run(handlers.change_member, command, respond=_member)


@router.delete("/care-team/{member_id}", tags=["care team"], openapi_extra=needs("care-team:change"))
async def remove_member(
    patient_id: uuid.UUID, member_id: uuid.UUID, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = RemoveCareTeamMember(who.agency_id, patient_id, member_id)
    return await commands.run(handlers.remove_member, command, respond=lambda m: {"removed": str(m["id"])})
