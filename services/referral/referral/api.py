"""referral's HTTP routes. Every POST honours Idempotency-Key; referral reads are agency-scoped."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from careloop_shared.http import CurrentPrincipal, Page, Paging, Runtime, validation_errors
from careloop_shared.idempotency import run_idempotent
from careloop_shared.outbox import UnitOfWork
from referral import handlers, store
from referral.domain.lifecycle import IllegalTransition, IncompleteChange, WrongParty
from referral.domain.quality import History, Quality
from referral.schemas import (
    CapacityIn,
    HistoryEntry,
    OrganizationIn,
    OrganizationOut,
    ReferralDetail,
    ReferralOut,
    ServiceIn,
    ServiceOut,
    StatusChanged,
    StatusChangeIn,
)

router = APIRouter(prefix="/v1")

_REFERRAL_NOT_FOUND = "referral not found"
Code = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
AgencyId = Annotated[str | None, Query(min_length=1, max_length=100)]


def _ctx(request: Request) -> handlers.Referrals:
    ctx: handlers.Referrals = request.app.state.referrals
    return ctx


def _unprocessable(field: str, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": validation_errors([{"loc": ["body", field], "type": kind, "msg": message}])},
    )


async def _idempotent(rt: Runtime, request: Request, who: CurrentPrincipal, body: Any, op: Any) -> Any:
    """Map domain refusals to HTTP answers; nothing is stored when one is raised."""
    try:
        return await run_idempotent(rt, request, who, body, op)
    except (handlers.ReferralNotFound, handlers.ServiceNotFound) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except IllegalTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except (WrongParty, handlers.NotAllowed) as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except IncompleteChange as exc:
        return _unprocessable(exc.field, "invalid_change", str(exc))
    except handlers.UnknownEntry as exc:
        return _unprocessable("organization_id", "unknown_entry", str(exc))


# --- referrals ------------------------------------------------------------------------------------


async def _detail(db: Any, row: Any) -> ReferralDetail:
    history = [HistoryEntry(**dict(h)) for h in await store.history_of(db, row["id"])]
    return ReferralDetail(**dict(row), history=history)


@router.get("/referrals", tags=["referrals"], response_model=Page[ReferralOut])
async def list_referrals(
    who: CurrentPrincipal,
    rt: Runtime,
    page: Paging,
    patient_id: uuid.UUID | None = None,
    receiving_agency: AgencyId = None,
    status_: Annotated[str | None, Query(alias="status", pattern=r"^[a-z-]{1,40}$")] = None,
) -> Page[ReferralOut]:
    """Referrals your agency made, and those sent to it (never another agency's waiting drafts)."""
    rows = await store.list_referrals(
        rt.pool,
        who.agency_id,
        patient_id=patient_id,
        receiving_agency=receiving_agency,
        status=status_,
        limit=page.fetch_limit,
        offset=page.offset,
    )
    return Page.of([ReferralOut(**dict(r)) for r in rows], page)


@router.get("/referrals/{referral_id}", tags=["referrals"], response_model=ReferralDetail)
async def get_referral(referral_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> ReferralDetail:
    row = await store.visible_referral(rt.pool, who.agency_id, referral_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _REFERRAL_NOT_FOUND)
    return await _detail(rt.pool, row)


@router.post(
    "/referrals/{referral_id}/status",
    tags=["referrals"],
    response_model=StatusChanged,
    responses={
        403: {"description": "The other party sets this status"},
        409: {"description": "Not a legal move from the current status"},
    },
)
async def change_referral_status(
    referral_id: uuid.UUID, body: StatusChangeIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    ctx = _ctx(request)

    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        rerouted = await handlers.change_status(ctx, uow, who.agency_id, referral_id, body)
        row = await store.get_referral(uow.conn, referral_id)
        return 200, StatusChanged(referral=await _detail(uow.conn, row), rerouted_to=rerouted)

    return await _idempotent(rt, request, who, body, op)


# --- the directory --------------------------------------------------------------------------------


@router.get("/organizations", tags=["directory"], response_model=Page[OrganizationOut])
async def list_organizations(_: CurrentPrincipal, rt: Runtime, page: Paging) -> Page[OrganizationOut]:
    rows = await store.list_organizations(rt.pool, page.fetch_limit, page.offset)
    return Page.of([OrganizationOut(**r) for r in rows], page)


@router.get("/organizations/{organization_id}", tags=["directory"], response_model=OrganizationOut)
async def get_organization(organization_id: str, _: CurrentPrincipal, rt: Runtime) -> OrganizationOut:
    row = await store.get_organization(rt.pool, organization_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "organization not found")
    return OrganizationOut(**row)


@router.post(
    "/organizations",
    tags=["directory"],
    status_code=201,
    response_model=OrganizationOut,
    responses={200: {"description": "Updated an existing organization"}},
)
async def save_organization(
    body: OrganizationIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    """Add an organization, or update it (same id): a directory administrator or the organization itself."""
    clock = _ctx(request).clock

    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        created = await handlers.save_organization(uow, who.role, who.agency_id, body, clock())
        return (201 if created else 200), OrganizationOut(
            **(await store.get_organization(uow.conn, body.id) or {})
        )

    return await _idempotent(rt, request, who, body, op)


async def _with_quality(db: Any, rows: list[dict[str, Any]]) -> list[ServiceOut]:
    histories = await store.histories(db, [r["id"] for r in rows])
    return [ServiceOut(**r, quality=Quality(histories.get(r["id"], History())).figures()) for r in rows]


@router.get("/services", tags=["directory"], response_model=Page[ServiceOut])
async def search_services(
    _: CurrentPrincipal,
    rt: Runtime,
    page: Paging,
    need: Code = None,
    program_category: Code = None,
    language: Annotated[str | None, Query(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")] = None,
    postal_code: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,11}$")] = None,
    capacity: Annotated[
        str | None, Query(pattern=r"^(capacity|no-capacity|waitlist|additional-assessment-required)$")
    ] = None,
    organization_id: Code = None,
) -> Page[ServiceOut]:
    """Search by need, category, language (spoken or interpreted), postal code (service area), capacity."""
    rows = await store.search_services(
        rt.pool,
        need=need,
        category=program_category,
        language=language.split("-")[0].lower() if language else None,
        postal_area=postal_code.replace(" ", "").replace("-", "").upper() if postal_code else None,
        capacity=capacity,
        organization_id=organization_id,
        limit=page.fetch_limit,
        offset=page.offset,
    )
    return Page.of(await _with_quality(rt.pool, rows), page)


@router.get("/services/{service_id}", tags=["directory"], response_model=ServiceOut)
async def get_service(service_id: str, _: CurrentPrincipal, rt: Runtime) -> ServiceOut:
    row = await store.get_service(rt.pool, service_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "service not found")
    return (await _with_quality(rt.pool, [row]))[0]


@router.post(
    "/services",
    tags=["directory"],
    status_code=201,
    response_model=ServiceOut,
    responses={200: {"description": "Updated an existing service"}},
)
async def save_service(body: ServiceIn, who: CurrentPrincipal, rt: Runtime, request: Request) -> Any:
    """Add a service (program), or update it (same id)."""
    clock = _ctx(request).clock

    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        created = await handlers.save_service(uow, who.role, who.agency_id, body, clock())
        row = await store.get_service(uow.conn, body.id)
        return (201 if created else 200), (await _with_quality(uow.conn, [row or {}]))[0]

    return await _idempotent(rt, request, who, body, op)


@router.post("/services/{service_id}/capacity", tags=["directory"], response_model=ServiceOut)
async def update_capacity(
    service_id: str, body: CapacityIn, who: CurrentPrincipal, rt: Runtime, request: Request
) -> Any:
    """The organization (or an administrator) says whether it can take referrals now."""
    clock = _ctx(request).clock

    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        await handlers.update_capacity(
            uow, who.role, who.agency_id, service_id, body.status, body.notes, clock()
        )
        row = await store.get_service(uow.conn, service_id)
        return 200, (await _with_quality(uow.conn, [row or {}]))[0]

    return await _idempotent(rt, request, who, body, op)
