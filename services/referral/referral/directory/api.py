"""The directory's HTTP routes: organizations and services, read by everyone, changed by their owner.

Each command route builds a command (naming the person asking) and runs its handler; reads use the
store. The directory holds no patient data: nothing here is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from careloop_shared.http import CodePath, Commands, CurrentPrincipal, Page, Paging, Reply, needs, read_store
from referral.directory import handlers, hsds, hsds_export
from referral.directory.schemas import CapacityIn, OrganizationIn, OrganizationOut, ServiceIn, ServiceOut
from referral.domain.commands import SaveOrganization, SaveService, UpdateCapacity
from referral.domain.quality import with_quality
from referral.store import ReferralStore

router = APIRouter(prefix="/v1", tags=["directory"])
Store = Annotated[ReferralStore, Depends(read_store)]
Code = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


def _saved_organization(saved: handlers.Saved) -> Reply:
    return Reply(OrganizationOut(**saved.entry), 201 if saved.created else 200)


def _saved_service(saved: handlers.Saved) -> Reply:
    return Reply(ServiceOut(**saved.entry), 201 if saved.created else 200)


@router.get("/organizations", response_model=Page[OrganizationOut], openapi_extra=needs("directory:read"))
async def list_organizations(_: CurrentPrincipal, store: Store, page: Paging) -> Page[OrganizationOut]:
    rows = await store.directory.list_organizations(page.fetch_limit, page.offset)
    return Page.of([OrganizationOut(**r) for r in rows], page)


@router.get(
    "/organizations/{organization_id}", response_model=OrganizationOut, openapi_extra=needs("directory:read")
)
async def get_organization(organization_id: CodePath, _: CurrentPrincipal, store: Store) -> OrganizationOut:
    row = await store.directory.get_organization(organization_id)
    if row is None:
        raise handlers.OrganizationNotFound()
    return OrganizationOut(**row)


@router.post(
    "/organizations",
    status_code=201,
    response_model=OrganizationOut,
    responses={200: {"description": "Updated an existing organization"}},
    openapi_extra=needs("directory:change"),
)
async def save_organization(body: OrganizationIn, who: CurrentPrincipal, commands: Commands) -> Any:
    """Add an organization, or update it (same id): a directory administrator or the organization itself."""
    command = SaveOrganization(who.agency_id, who.role, who.subject, body)
    return await commands.run(handlers.save_organization, command, respond=_saved_organization)


@router.get("/services", response_model=Page[ServiceOut], openapi_extra=needs("directory:read"))
async def search_services(
    _: CurrentPrincipal,
    store: Store,
    page: Paging,
    need: Code = None,
    program_category: Code = None,
    language: Annotated[str | None, Query(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")] = None,
    postal_code: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,11}$")] = None,
    capacity: Annotated[
        str | None, Query(pattern=r"^(capacity|no-capacity|waitlist|additional-assessment-required)$")
    ] = None,
    organization_id: Code = None,
    receiving_agency_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")] = None,
) -> Page[ServiceOut]:
    """Search by need, category, language (spoken or interpreted), postal code (service area), capacity,
    organization, or the agency that answers the program's referrals (an agency's own programs)."""
    rows = await store.directory.search_services(
        need=need,
        category=program_category,
        language=language.split("-")[0].lower() if language else None,
        postal_area=postal_code.replace(" ", "").replace("-", "").upper() if postal_code else None,
        capacity=capacity,
        organization_id=organization_id,
        receiving_agency_id=receiving_agency_id,
        limit=page.fetch_limit,
        offset=page.offset,
    )
    shown = with_quality(rows, await store.directory.histories([r["id"] for r in rows]))
    return Page.of([ServiceOut(**s) for s in shown], page)


@router.get("/services/{service_id}", response_model=ServiceOut, openapi_extra=needs("directory:read"))
async def get_service(service_id: CodePath, _: CurrentPrincipal, store: Store) -> ServiceOut:
    row = await store.directory.get_service(service_id)
    if row is None:
        raise handlers.ServiceNotFound()
    [shown] = with_quality([row], await store.directory.histories([service_id]))
    return ServiceOut(**shown)


@router.post(
    "/services",
    status_code=201,
    response_model=ServiceOut,
    responses={200: {"description": "Updated an existing service"}},
    openapi_extra=needs("directory:change"),
)
async def save_service(body: ServiceIn, who: CurrentPrincipal, commands: Commands) -> Any:
    """Add a service (program), or update it (same id)."""
    command = SaveService(who.agency_id, who.role, who.subject, body)
    return await commands.run(handlers.save_service, command, respond=_saved_service)


@router.post(
    "/services/{service_id}/capacity", response_model=ServiceOut, openapi_extra=needs("directory:change")
)
async def update_capacity(
    service_id: CodePath, body: CapacityIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    """The organization (or an administrator) says whether it can take referrals now."""
    command = UpdateCapacity(who.agency_id, who.role, who.subject, service_id, body)
    return await commands.run(handlers.update_capacity, command, respond=lambda s: ServiceOut(**s))


@router.post("/directory/hsds", response_model=hsds.HsdsImported, openapi_extra=needs("directory:import"))
async def import_hsds(body: hsds.HsdsDataset, who: CurrentPrincipal, commands: Commands) -> Any:
    """Add or update the directory from an Open Referral HSDS 3.0 dataset (its tables as JSON arrays):
    all of it, or nothing and a 422 naming each problem's table, row and field."""
    command = hsds.ImportHsds(who.agency_id, who.role, who.subject, body)
    return await commands.run(handlers.import_hsds, command)


@router.get(
    "/directory/hsds", response_model=dict[str, list[dict[str, Any]]], openapi_extra=needs("directory:export")
)
async def export_hsds(_: CurrentPrincipal, store: Store) -> dict[str, list[dict[str, Any]]]:
    """The whole directory as an Open Referral HSDS 3.0 dataset (its tables as JSON arrays)."""
    organizations, services = await store.directory.hsds_entries()
    return hsds_export.dataset(organizations, services, await store.directory.hsds_shared())
