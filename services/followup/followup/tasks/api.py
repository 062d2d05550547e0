"""The task list over HTTP: what the caller may see, a to-do the caller adds, and moving a task along.

A care manager sees their own tasks and their role's unassigned ones, a supervisor every task of the
agency, an admin the admin role's. Tasks show pseudonymous ids, codes and times only (no names, notes or
answers), so listing them is not audited; a refused move on a task's route is, by the kernel.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from careloop_shared.http import Commands, CurrentPrincipal, Page, Paging, needs, read_store, service_context
from followup.config import FollowupContext
from followup.domain.commands import ChangeTaskStatus, MakeToDo
from followup.store import FollowupStore
from followup.tasks import handlers
from followup.tasks.schemas import StatusFilter, TaskOut, TaskStatusIn, ToDoIn

router = APIRouter(prefix="/v1", tags=["tasks"])
Store = Annotated[FollowupStore, Depends(read_store)]
Ctx = Annotated[FollowupContext, Depends(service_context)]
Assignee = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="me (mine and my role's unassigned), or a person's id"),
]


@router.get("/tasks", response_model=Page[TaskOut], openapi_extra=needs("task:read"))
async def list_tasks(
    who: CurrentPrincipal,
    store: Store,
    ctx: Ctx,
    page: Paging,
    assignee: Assignee = None,
    status: StatusFilter | None = None,
    patient_id: uuid.UUID | None = None,
) -> Page[TaskOut]:
    """Most pressing priority first (stat, urgent, high, routine), then the earliest due."""
    mine = assignee == "me"
    rows = await store.tasks.list_tasks(
        who.agency_id,
        caller=who.subject,
        caller_role=who.role,
        sees_all=who.role in ctx.tasks.agency_wide_roles,
        mine=mine,
        assignee_id=None if mine else assignee,
        statuses=None if status is None else ["open", "in-progress"] if status == "active" else [status],
        patient_id=patient_id,
        limit=page.fetch_limit,
        offset=page.offset,
    )
    return Page.of([TaskOut.of(r) for r in rows], page)


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskOut,
    responses={
        404: {"description": "No such patient of your agency"},
        409: {"description": "For the patient's care manager, when the patient has none"},
        410: {"description": "The patient was erased: no new work about them"},
        422: {
            "description": "An unknown purpose or priority, or a due time not in the future within the rules'"
        },
    },
    openapi_extra=needs("task:change"),
)
async def make_to_do(body: ToDoIn, who: CurrentPrincipal, commands: Commands) -> Any:
    """A to-do about a patient for the caller, or for the patient's care manager (coded purpose, priority,
    due time); closed like any task."""
    command = MakeToDo(
        who.agency_id,
        body.patient_id,
        who.subject,
        who.role,
        body.purpose,
        body.priority,
        body.due_at,
        body.for_care_manager,
    )
    return await commands.run(handlers.make_to_do, command, status_code=201, respond=TaskOut.of)


@router.post(
    "/tasks/{task_id}/status",
    response_model=TaskOut,
    responses={
        404: {"description": "No such task that you may see"},
        409: {"description": "The task cannot move so from its status; detail says why"},
        422: {"description": "An unknown reason code"},
    },
    openapi_extra=needs("task:change"),
)
async def change_task_status(
    task_id: uuid.UUID, body: TaskStatusIn, who: CurrentPrincipal, commands: Commands
) -> Any:
    command = ChangeTaskStatus(who.agency_id, task_id, who.subject, who.role, body.status, body.reason)
    return await commands.run(handlers.change_task_status, command, respond=TaskOut.of)
