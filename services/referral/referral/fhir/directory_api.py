"""The directory's FHIR R4 routes: ``Organization``, ``HealthcareService`` and ``Location``, read by id and
searched by ``_id`` (and ``organization``), for every role that may read the directory (``/v1/``'s
``directory:read``). The directory holds no patient data: nothing here is audited. They join
``referral.fhir.api``'s router, whose ``/metadata`` declares them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from careloop_shared.errors import NotFound
from careloop_shared.fhir import (
    PREFIX,
    BundleDoc,
    FhirResponse,
    Paging,
    ResourceDoc,
    SearchPage,
    searchset,
    searchset_page,
)
from careloop_shared.fhir import interaction as declares
from careloop_shared.http import CodePath, CurrentPrincipal, needs
from referral.directory.handlers import OrganizationNotFound, ServiceNotFound
from referral.fhir import directory
from referral.fhir.codes import fhir_codes
from referral.fhir.dependencies import Reads, Store

ID = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}"
router = APIRouter(prefix=PREFIX, default_response_class=FhirResponse, tags=["fhir"])
IdQuery = Annotated[str | None, Query(alias="_id", pattern=rf"^{ID}$")]
OrganizationQuery = Annotated[
    str | None,
    Query(pattern=rf"^(Organization/)?{ID}$", description="Organization/<id>, or the id alone"),
]
READ = needs("directory:read")


def _page(request: Request, page: SearchPage, fetched: list[dict[str, Any]]) -> FhirResponse:
    return searchset_page(request, page, len(fetched), fetched[: page.count])


def _one(request: Request, page: SearchPage, found: dict[str, Any] | None) -> FhirResponse:
    """A search by ``_id``: that one, or nothing (a later page is empty)."""
    shown = [found] if found is not None and page.offset == 0 else []
    return FhirResponse(searchset(request, shown, total=int(found is not None)))


def _organization_id(organization: str | None) -> str | None:
    return organization.removeprefix("Organization/") if organization else None


@router.get(
    "/Organization/{organization_id}",
    response_model=ResourceDoc,
    openapi_extra={**READ, **declares("Organization", "read")},
)
async def read_organization(organization_id: CodePath, _: CurrentPrincipal, store: Store) -> FhirResponse:
    row = await store.directory.get_organization(organization_id)
    if row is None:
        raise OrganizationNotFound()
    return FhirResponse(directory.organization(row))


@router.get(
    "/Organization",
    response_model=BundleDoc,
    openapi_extra={**READ, **declares("Organization", "search-type", _id="token")},
    summary="The directory's organizations, or the one named by _id",
)
async def search_organizations(
    request: Request, _: CurrentPrincipal, store: Store, page: Paging, id_: IdQuery = None
) -> FhirResponse:
    if id_ is not None:
        one = await store.directory.get_organization(id_)
        return _one(request, page, directory.organization(one) if one else None)
    rows = await store.directory.list_organizations(page.fetch_limit, page.offset)
    return _page(request, page, [directory.organization(r) for r in rows])


@router.get(
    "/HealthcareService/{service_id}",
    response_model=ResourceDoc,
    openapi_extra={**READ, **declares("HealthcareService", "read")},
    summary="A program: category, needs, languages, eligibility, hours and capacity",
)
async def read_healthcare_service(service_id: CodePath, _: CurrentPrincipal, store: Store) -> FhirResponse:
    row = await store.directory.get_service(service_id)
    if row is None:
        raise ServiceNotFound()
    return FhirResponse(directory.healthcare_service(row, fhir_codes()))


@router.get(
    "/HealthcareService",
    response_model=BundleDoc,
    openapi_extra={
        **READ,
        **declares("HealthcareService", "search-type", _id="token", organization="reference"),
    },
    summary="The directory's programs, an organization's, or the one named by _id",
)
async def search_healthcare_services(
    request: Request,
    _: CurrentPrincipal,
    store: Store,
    page: Paging,
    id_: IdQuery = None,
    organization: OrganizationQuery = None,
) -> FhirResponse:
    organization_id = _organization_id(organization)
    if id_ is not None:
        one = await store.directory.get_service(id_)
        fits = one is not None and organization_id in (None, one["organization_id"])
        return _one(request, page, directory.healthcare_service(one, fhir_codes()) if one and fits else None)
    rows = await store.directory.search_services(
        need=None,
        category=None,
        language=None,
        postal_area=None,
        capacity=None,
        organization_id=organization_id,
        limit=page.fetch_limit,
        offset=page.offset,
    )
    return _page(request, page, [directory.healthcare_service(r, fhir_codes()) for r in rows])


@router.get(
    "/Location/{location_id}",
    response_model=ResourceDoc,
    openapi_extra={**READ, **declares("Location", "read")},
)
async def read_location(location_id: CodePath, _: CurrentPrincipal, reads: Reads) -> FhirResponse:
    row = await reads.get_location(location_id)
    if row is None:
        raise NotFound("location not found")
    return FhirResponse(directory.location(row, row["organization_id"]))


@router.get(
    "/Location",
    response_model=BundleDoc,
    openapi_extra={**READ, **declares("Location", "search-type", _id="token", organization="reference")},
    summary="The directory's locations, an organization's, or the one named by _id",
)
async def search_locations(
    request: Request,
    _: CurrentPrincipal,
    reads: Reads,
    page: Paging,
    id_: IdQuery = None,
    organization: OrganizationQuery = None,
) -> FhirResponse:
    organization_id = _organization_id(organization)
    if id_ is not None:
        one = await reads.get_location(id_)
        fits = one is not None and organization_id in (None, one["organization_id"])
        return _one(request, page, directory.location(one, one["organization_id"]) if one and fits else None)
    rows = await reads.list_locations(organization_id, page.fetch_limit, page.offset)
    return _page(request, page, [directory.location(r, r["organization_id"]) for r in rows])
