"""followup's HTTP routes. Every POST honours Idempotency-Key; every read is agency-scoped."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse

from careloop_shared.http import CurrentPrincipal, Page, Paging, Runtime, validation_errors
from careloop_shared.idempotency import run_idempotent
from careloop_shared.outbox import UnitOfWork
from followup import handlers, store
from followup.domain.rules import FollowUpRules
from followup.schemas import (
    FollowUpDetail,
    FollowUpOut,
    OutcomeIn,
    OutcomeOut,
    OutcomeResult,
    RescheduleIn,
    Status,
)

router = APIRouter(prefix="/v1", tags=["follow-ups"])


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


def _rules(request: Request) -> FollowUpRules:
    rules: FollowUpRules = request.app.state.rules
    return rules


Now = Annotated[datetime, Depends(_now)]
Rules = Annotated[FollowUpRules, Depends(_rules)]


async def _idempotent(rt: Runtime, request: Request, who: CurrentPrincipal, body: Any, op: Any) -> Any:
    """Map domain refusals to HTTP answers; nothing is stored when one is raised."""
    try:
        return await run_idempotent(rt, request, who, body, op)
    except handlers.FollowUpNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except handlers.NotOutstanding as exc:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(exc)})
    except handlers.InvalidInput as exc:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": validation_errors([{**p, "type": "invalid_value"} for p in exc.problems])},
        )


@router.get("/follow-ups", response_model=Page[FollowUpOut])
async def list_follow_ups(
    who: CurrentPrincipal,
    rt: Runtime,
    page: Paging,
    patient_id: uuid.UUID | None = None,
    status: Status | None = None,
) -> Page[FollowUpOut]:
    rows = await store.list_follow_ups(
        rt.pool, who.agency_id, patient_id, status, page.fetch_limit, page.offset
    )
    return Page.of([FollowUpOut.of(r) for r in rows], page)


@router.get("/work-queue", response_model=Page[FollowUpOut])
async def work_queue(who: CurrentPrincipal, rt: Runtime, page: Paging) -> Page[FollowUpOut]:
    """The agency's due and overdue follow-ups, most urgent priority first, then the longest waiting."""
    rows = await store.work_queue(rt.pool, who.agency_id, page.fetch_limit, page.offset)
    return Page.of([FollowUpOut.of(r) for r in rows], page)


@router.get("/follow-ups/{follow_up_id}", response_model=FollowUpDetail)
async def get_follow_up(follow_up_id: uuid.UUID, who: CurrentPrincipal, rt: Runtime) -> FollowUpDetail:
    row = await store.get_follow_up(rt.pool, who.agency_id, follow_up_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "follow-up not found")
    outcomes = [OutcomeOut(**dict(o)) for o in await store.list_outcomes(rt.pool, follow_up_id)]
    return FollowUpDetail(**FollowUpOut.of(row).model_dump(), outcomes=outcomes)


@router.post(
    "/follow-ups/{follow_up_id}/outcome",
    response_model=OutcomeResult,
    responses={
        404: {"description": "No such follow-up in your agency"},
        409: {"description": "The follow-up is not due or overdue; detail says why"},
    },
)
async def record_outcome(
    follow_up_id: uuid.UUID,
    body: OutcomeIn,
    who: CurrentPrincipal,
    rt: Runtime,
    rules: Rules,
    now: Now,
    request: Request,
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        result = await handlers.record_outcome(
            uow, rules, now, who.agency_id, who.subject, follow_up_id, body
        )
        return 200, OutcomeResult(**{**result, "follow_up": FollowUpOut.of(result["follow_up"])})

    return await _idempotent(rt, request, who, body, op)


@router.post(
    "/follow-ups/{follow_up_id}/reschedule",
    response_model=FollowUpOut,
    responses={
        404: {"description": "No such follow-up in your agency"},
        409: {"description": "The follow-up is completed or cancelled"},
    },
)
async def reschedule_follow_up(
    follow_up_id: uuid.UUID,
    body: RescheduleIn,
    who: CurrentPrincipal,
    rt: Runtime,
    rules: Rules,
    now: Now,
    request: Request,
) -> Any:
    async def op(uow: UnitOfWork) -> tuple[int, Any]:
        row = await handlers.reschedule_follow_up(
            uow, rules, now, who.agency_id, who.subject, follow_up_id, body
        )
        return 200, FollowUpOut.of(row)

    return await _idempotent(rt, request, who, body, op)
