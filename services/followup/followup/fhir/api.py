"""followup's FHIR R4 routes (``/fhir/R4/``): its follow-ups and work-queue tasks as ``Task``, read by id
and searched by patient, owner and status. The same agency scoping and permissions as ``/v1/``: a route
needs ``task:read``, and follow-ups are found only by a role that also has ``follow-up:read``; the work
queue's tasks only as ``/v1/tasks`` shows them (one's own, one's role's unassigned ones, a supervisor the
agency's). Another agency's, or another person's, do not exist (404 on a read, nothing in a search).

A search lists the matching follow-ups (earliest due first), then the matching tasks (most pressing
first), paged over both with ``_count`` and ``_offset``. A follow-up shown with its outcome is a
disclosure about the patient, so it is audited; the rest are ids, codes and times, as on ``/v1/``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request

from careloop_shared.audit_api import add_audit_events
from careloop_shared.errors import NotFound
from careloop_shared.fhir import (
    BundleDoc,
    FhirResponse,
    Paging,
    PatientQuery,
    ResourceDoc,
    document_answers,
    fhir_router,
    interaction,
    patient_of,
    searchset,
)
from careloop_shared.http import Audit, CurrentPrincipal, needs, read_store, service_context
from careloop_shared.permissions import load_matrix
from followup.config import FollowupContext
from followup.domain import tasks as task
from followup.fhir import resources
from followup.fhir.resources import STAFF
from followup.fhir.store import FhirStore, Match
from followup.store import FollowupStore

router = fhir_router("careloop followup")
Store = Annotated[FollowupStore, Depends(read_store)]
Ctx = Annotated[FollowupContext, Depends(service_context)]
FOLLOW_UPS = "follow-up:read"
OwnerQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=220, description=f"A staff member's id, or {STAFF}|<id>"),
]
TaskStatus = Literal[
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress", "on-hold",
    "failed", "completed", "entered-in-error",
]  # fmt: skip
StatusQuery = Annotated[TaskStatus | None, Query(description="A FHIR Task status: ready, completed, ...")]


def _reads_follow_ups(role: str) -> bool:
    return load_matrix().allows(role, FOLLOW_UPS)


async def _shown_follow_ups(store: FollowupStore, audit: Audit, rows: list[Any]) -> list[dict[str, Any]]:
    """Follow-ups as Tasks, a completed one with its last outcome; those shown with one are audited."""
    completed = [r["id"] for r in rows if r["status"] == "completed"]
    outcomes = await FhirStore(store.db).last_outcomes(completed)
    disclosed = [(r["patient_id"], r["id"]) for r in rows if r["id"] in outcomes]
    if disclosed:
        await audit.read_many(disclosed, "follow-up")
    return [resources.follow_up(r, outcomes.get(r["id"])) for r in rows]


@router.get(
    "/Task/{task_id}",
    response_model=ResourceDoc,
    openapi_extra={**needs("task:read"), **interaction("Task", "read")},
    summary="A follow-up or a work-queue task, as the caller may see it on /v1",
)
async def read_task(
    task_id: uuid.UUID, who: CurrentPrincipal, store: Store, ctx: Ctx, audit: Audit
) -> FhirResponse:
    if _reads_follow_ups(who.role):
        row = await store.get_follow_up(who.agency_id, task_id)
        if row is not None:
            [shown] = await _shown_follow_ups(store, audit, [row])
            return FhirResponse(shown)
    work = await store.tasks.get_task(who.agency_id, task_id)
    sees_all = who.role in ctx.tasks.agency_wide_roles
    if work is None or not task.may_see(work, who.subject, who.role, who.agency_id, sees_all=sees_all):
        raise NotFound("task not found")
    return FhirResponse(resources.work_item(work))


@router.get(
    "/Task",
    response_model=BundleDoc,
    openapi_extra={
        **needs("task:read"),
        **interaction("Task", "search-type", patient="reference", owner="reference", status="token"),
    },
    summary="Follow-ups (earliest due first), then work-queue tasks (most pressing first), that match",
)
async def search_tasks(
    request: Request,
    who: CurrentPrincipal,
    store: Store,
    ctx: Ctx,
    audit: Audit,
    page: Paging,
    patient: PatientQuery = None,
    owner: OwnerQuery = None,
    status: StatusQuery = None,
) -> FhirResponse:
    patient_id = patient_of(patient) if patient else None
    owner_id = owner.removeprefix(f"{STAFF}|") if owner else None
    fhir = FhirStore(store.db)
    follow_ups: list[Any] = []
    matched = 0  # follow-ups that match, in all pages
    statuses = None if status is None else resources.statuses_of(status, resources.FOLLOW_UP_STATUS)
    if _reads_follow_ups(who.role) and statuses != []:
        match = Match(patient_id, owner_id, statuses)
        matched = await fhir.count_follow_ups(who.agency_id, match)
        if page.offset < matched:
            follow_ups = await fhir.search_follow_ups(who.agency_id, match, page.count, page.offset)
    room = page.count - len(follow_ups)
    tasks_from = max(0, page.offset - matched)
    work: list[Any] = []
    task_statuses = None if status is None else resources.statuses_of(status, resources.TASK_STATUS)
    if task_statuses != []:
        work = await store.tasks.list_tasks(
            who.agency_id,
            caller=who.subject,
            caller_role=who.role,
            sees_all=who.role in ctx.tasks.agency_wide_roles,
            mine=False,
            assignee_id=owner_id,
            statuses=task_statuses,
            patient_id=patient_id,
            limit=room + 1,  # one more: is there a further page?
            offset=tasks_from,
        )
    more = page.offset + len(follow_ups) < matched or len(work) > room
    found = await _shown_follow_ups(store, audit, follow_ups)
    found += [resources.work_item(r) for r in work[:room]]
    known = not more and (work or tasks_from == 0)
    total = matched + tasks_from + len(work) if known else None
    next_offset = page.offset + page.count if more else None
    return FhirResponse(searchset(request, found, next_offset=next_offset, total=total))


add_audit_events(router)  # the service's audit log of a patient, as AuditEvents
document_answers(router)
