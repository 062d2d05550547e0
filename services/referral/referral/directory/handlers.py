"""The directory's use cases: loading the seed at start, and organisations keeping their entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careloop_shared.errors import Forbidden, Invalid, NotFound, problem
from referral.config import ReferralContext
from referral.directory import hsds, hsds_import
from referral.directory.store import DirectoryStore
from referral.domain.commands import SaveOrganization, SaveService, UpdateCapacity
from referral.domain.directory import DIRECTORY_ADMINS, Organization, Service, may_change
from referral.domain.quality import with_quality
from referral.store import Uow


class OrganizationNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("organization not found")


class ServiceNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("service not found")


class NotAllowed(Forbidden):
    """The caller may not change this directory entry."""


class UnknownEntry(Invalid):
    """The service names an organisation the directory does not have."""

    def __init__(self) -> None:
        super().__init__(
            [problem(["body", "organization_id"], "unknown_entry", "organization_id names no organization")]
        )


@dataclass(frozen=True)
class Saved:
    """A directory entry as it now is, and whether saving created it."""

    created: bool
    entry: dict[str, Any]


def _changed_by(by: str | None, role: str | None) -> dict[str, Any]:
    """Who changed an entry: the person and their role; None for the seed (careloop on its own)."""
    return {"changed_by": by, "changed_by_role": role}


def _organization_row(org: Organization, source: str, at: datetime, by: dict[str, Any]) -> dict[str, Any]:
    row = org.model_dump(exclude={"locations"})
    return {**row, "source": source, "updated_at": at, **by}


def _location_rows(org: Organization) -> list[dict[str, Any]]:
    return [{**loc.model_dump(), "organization_id": org.id} for loc in org.locations]


def _service_row(svc: Service, source: str, at: datetime, by: dict[str, Any]) -> dict[str, Any]:
    row = svc.model_dump(exclude={"eligibility", "hours", "capacity", "contact"})
    return {
        **row,
        "eligibility": svc.eligibility.model_dump(),
        "hours": [h.model_dump() for h in svc.hours],
        "capacity_status": svc.capacity.status,
        "capacity_notes": svc.capacity.notes,
        "capacity_updated_at": at,
        "contact": svc.contact.model_dump(exclude_none=True),
        "source": source,
        "updated_at": at,
        **by,
        "capacity_changed_by": by["changed_by"],  # kept as it was when the capacity stays the same
        "capacity_changed_by_role": by["changed_by_role"],
    }


async def _shown(directory: DirectoryStore, service_id: str) -> dict[str, Any]:
    """The service as the directory shows it; it was just saved, so it is there."""
    row = await directory.get_service(service_id)
    assert row is not None
    # Measured now from the referral history, never cached.
    [shown] = with_quality([row], await directory.histories([service_id]))
    return shown


async def load_seed_directory(ctx: ReferralContext, uow: Uow) -> None:
    """Startup: upsert the seed by id; entries an organisation changed through the API stay as they are."""
    at, seed = ctx.clock(), _changed_by(None, None)
    for org in ctx.seed.organizations:
        await uow.store.directory.upsert_organization(
            _organization_row(org, "seed", at, seed), _location_rows(org)
        )
    for svc in ctx.seed.services:
        await uow.store.directory.upsert_service(_service_row(svc, "seed", at, seed))


async def save_organization(ctx: ReferralContext, uow: Uow, cmd: SaveOrganization) -> Saved:
    org, directory = cmd.organization, uow.store.directory
    existing = await directory.get_organization(org.id)
    if not may_change(cmd.role, cmd.agency_id, existing["agency_id"] if existing else org.agency_id):
        raise NotAllowed("only a directory administrator or the organisation itself may change it")
    if existing and existing["agency_id"] != org.agency_id and cmd.role not in DIRECTORY_ADMINS:
        raise NotAllowed("only a directory administrator may move an organisation to another agency")
    created = await directory.upsert_organization(
        _organization_row(org, "api", ctx.clock(), _changed_by(cmd.by, cmd.role)), _location_rows(org)
    )
    saved = await directory.get_organization(org.id)
    assert saved is not None
    return Saved(bool(created), saved)


async def save_service(ctx: ReferralContext, uow: Uow, cmd: SaveService) -> Saved:
    svc, directory = cmd.service, uow.store.directory
    org = await directory.get_organization(svc.organization_id)
    if org is None:
        raise UnknownEntry()
    existing = await directory.get_service(svc.id, lock=True)
    owner = existing["receiving_agency_id"] if existing else org["agency_id"]
    if not may_change(cmd.role, cmd.agency_id, owner) or not may_change(
        cmd.role, cmd.agency_id, org["agency_id"]
    ):
        raise NotAllowed("only a directory administrator or the organisation itself may change it")
    created = await directory.upsert_service(
        _service_row(svc, "api", ctx.clock(), _changed_by(cmd.by, cmd.role))
    )
    return Saved(bool(created), await _shown(directory, svc.id))


async def update_capacity(ctx: ReferralContext, uow: Uow, cmd: UpdateCapacity) -> dict[str, Any]:
    directory = uow.store.directory
    existing = await directory.get_service(cmd.service_id, lock=True)
    if existing is None:
        raise ServiceNotFound()
    if not may_change(cmd.role, cmd.agency_id, existing["receiving_agency_id"]):
        raise NotAllowed("only a directory administrator or the organisation itself may change its capacity")
    await directory.update_capacity(
        cmd.service_id, cmd.capacity.status, cmd.capacity.notes, ctx.clock(), by=cmd.by, by_role=cmd.role
    )
    return await _shown(directory, cmd.service_id)


async def import_hsds(ctx: ReferralContext, uow: Uow, cmd: hsds.ImportHsds) -> hsds.HsdsImported:
    """An HSDS dataset into the directory, in the one unit of work: a problem anywhere changes nothing.
    An organization in it gets the dataset's locations (others it had are removed); entries the
    dataset does not name stay as they are."""
    imported, directory = hsds_import.read(cmd.dataset), uow.store.directory
    unknown = [
        loc for org_id, loc in imported.outside.items() if await directory.get_organization(org_id) is None
    ]
    if unknown:
        raise Invalid([problem(loc, "unknown_entry", "names no organization") for loc in unknown])
    at, by = ctx.clock(), _changed_by(cmd.by, cmd.role)
    for org, ext, location_ext in imported.organizations:
        locations = [{**row, "hsds": location_ext[row["id"]]} for row in _location_rows(org)]
        await directory.upsert_organization({**_organization_row(org, "api", at, by), "hsds": ext}, locations)
    for svc, ext in imported.services:
        await directory.upsert_service({**_service_row(svc, "api", at, by), "hsds": ext})
    await directory.save_hsds_shared(imported.shared)
    return hsds.HsdsImported(
        organizations=len(imported.organizations),
        locations=sum(len(org.locations) for org, _, _ in imported.organizations),
        services=len(imported.services),
        shared_rows=len(imported.shared),
    )
