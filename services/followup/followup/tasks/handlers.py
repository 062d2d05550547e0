"""The task list's use cases: tasks opened, resolved and escalated by events, escalated by the clock, and
moved along by people.

Every event followup consumes or emits goes through ``track_tasks``: first what it resolves (remembered
where a cause can arrive later, so that it opens nothing), then what it escalates, then what it opens.
followup's own events are tracked in the unit of work that emits them, never consumed back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from careloop_shared.coalesce import each_side_by_side
from careloop_shared.errors import Conflict, Gone, NotFound
from careloop_shared.events import Message, ReceivedEvent
from careloop_shared.ids import new_id
from careloop_shared.logging import get_logger
from followup.config import FollowupContext
from followup.domain import tasks as task
from followup.domain.announcements import Announcement
from followup.domain.commands import ChangeTaskStatus, MakeToDo
from followup.domain.erasure import NoWorkForErased
from followup.domain.follow_up import Actor
from followup.domain.task_facts import Facts, facts_of
from followup.domain.task_rules import CARE_MANAGER
from followup.domain.to_do import to_do_row
from followup.store import Uow

log = get_logger(__name__)

FOLLOW_UP_KIND_ABOUT = "follow-up"


class PatientNotFound(NotFound):
    """No such patient in the caller's agency, as followup knows them (another agency's looks the same)."""

    def __init__(self) -> None:
        super().__init__("patient not found")


async def check_new_work(
    uow: Uow, agency_id: str, patient_id: uuid.UUID, refused_if_erased: Callable[[datetime], Gone]
) -> None:
    """New work about a patient (an arranged contact, a to-do) is for one of the agency's patients
    (404 otherwise, another agency's looking the same) who was not erased (``refused_if_erased``)."""
    if await uow.store.agency_of_patient(patient_id) != agency_id:
        raise PatientNotFound()
    if (erased_at := await uow.store.erased_at(patient_id)) is not None:
        raise refused_if_erased(erased_at)


class NoCareManager(Conflict):
    """A to-do for the patient's care manager when nobody is responsible for the patient yet."""

    def __init__(self) -> None:
        super().__init__("the patient has no care manager yet: add the to-do for yourself")


async def make_to_do(ctx: FollowupContext, uow: Uow, cmd: MakeToDo) -> dict[str, Any]:
    """A to-do about one of the agency's patients, for the caller or the patient's care manager (who keeps
    it as their caseload moves), announced (TaskOpened with its purpose, naming who added it)."""
    await check_new_work(uow, cmd.agency_id, cmd.patient_id, NoWorkForErased)
    assignee = None
    if cmd.for_care_manager:
        if (care_manager := await uow.store.caseload.care_manager(cmd.patient_id)) is None:
            raise NoCareManager()
        assignee = Actor(care_manager, CARE_MANAGER)
    now = ctx.clock()
    row = to_do_row(
        ctx.tasks,
        now,
        task_id=new_id(),
        patient_id=cmd.patient_id,
        agency_id=cmd.agency_id,
        purpose=cmd.purpose,
        priority=cmd.priority,
        due_at=cmd.due_at,
        by=cmd.actor,
        assignee=assignee,
    )
    await uow.store.tasks.insert_task(row)
    announce_all(uow, [task.opened(row)], now, None)
    shown = await uow.store.tasks.get_task(cmd.agency_id, row["id"])
    assert shown is not None  # inserted above, in this transaction
    return dict(shown)


class TaskNotFound(NotFound):
    """No such task that the caller may see (another agency's, or another person's, looks the same)."""

    def __init__(self) -> None:
        super().__init__("task not found")


def announce_all(
    uow: Uow, announcements: Iterable[Announcement], now: datetime, caused_by: ReceivedEvent | None = None
) -> list[Message]:
    """Each announcement emitted at ``now`` with its own id (None: a fresh one), caused by ``caused_by``."""
    return [uow.emit(a.event, caused_by=caused_by, event_id=a.event_id, time=now) for a in announcements]


async def _close(
    uow: Uow,
    tasks: Iterable[Mapping[str, Any]],
    to: str,
    changes: dict[str, Any],
    now: Any,
    caused_by: ReceivedEvent | None,
    by: Actor | None,
) -> None:
    for t in tasks:
        await uow.store.tasks.update_task(t["id"], {**changes, "status": to}, now)
        announce_all(uow, [task.status_changed(t, to, task.RESOLVED, now, by)], now, caused_by)


async def track_tasks(
    ctx: FollowupContext,
    uow: Uow,
    facts: Facts,
    *,
    caused_by: ReceivedEvent | None = None,
    by: Actor | None = None,
    remember: bool = True,
) -> None:
    """Apply one event to the task list: resolve, escalate, open. ``remember`` keeps what it resolved
    for causes still to come, where one can come late (``TaskKind.remembers``; followup's own events
    need not: nothing of theirs arrives late)."""
    rules, now, store = ctx.tasks, ctx.clock(), uow.store.tasks
    resolutions = task.resolutions(rules, facts)
    if resolutions:  # each kind's tasks it resolves, and the resolutions kept: one statement
        kept = [remember and rules.remembers(r) for r in resolutions]
        found = await store.resolve(resolutions, remember=kept)
        for resolution, resolved in zip(resolutions, found, strict=True):
            changes = task.resolved_changes(resolution, now, by)
            await _close(uow, resolved, "done", changes, now, caused_by, by)
    for kind, subject in task.escalations(rules, facts):
        for t in await store.active_about(facts.patient_id, [kind], subject):
            if t["escalated_at"] is None:
                await store.update_task(t["id"], task.escalated_changes(rules, now), now)
                announce_all(uow, [task.escalated(t, rules.escalate_to_role, now)], now, caused_by)
    kinds = rules.opened_by(facts.event_type)
    if not kinds:
        return
    needs_manager = any(k.for_role == CARE_MANAGER for k in kinds)
    manager = await uow.store.caseload.care_manager(facts.patient_id) if needs_manager else None
    resolved_early = {k.kind for k in kinds if k.resolved_early}
    for row in task.tasks_to_open(rules, facts, now, care_manager=manager):
        earlier = (
            await store.resolution_for(
                facts.patient_id, row["kind"], row["subject"], facts.at, facts.event_id
            )
            if row["kind"] in resolved_early
            else None
        )
        if earlier is not None:
            # Resolved before its cause arrived: kept, closed, and never announced as open.
            closed = task.resolved_changes(
                {"event_id": earlier["event_id"], "event_type": earlier["event_type"]}, now, None
            )
            await store.insert_task(row | closed)
        elif await store.insert_task(row):
            announce_all(uow, [task.opened(row)], now, caused_by)


async def when_event_track_tasks(ctx: FollowupContext, uow: Uow, received: ReceivedEvent) -> None:
    """Any consumed event the task rules name: open, resolve and escalate tasks as they say."""
    facts = facts_of(received.event, received.envelope.id, received.envelope.time)
    await track_tasks(ctx, uow, facts, caused_by=received)


async def track_own(
    ctx: FollowupContext,
    uow: Uow,
    messages: Iterable[Message],
    *,
    caused_by: ReceivedEvent | None = None,
    by: Actor | None = None,
    due_base: Mapping[uuid.UUID, Any] | None = None,
) -> None:
    """followup's own events, in the unit of work that emits them. ``due_base``: per follow-up, when its
    task falls due (its grace period's end)."""

    async def track(m: Message) -> None:
        follow_up_id: uuid.UUID | None = getattr(m.event, "follow_up_id", None)
        base = (due_base or {}).get(follow_up_id) if follow_up_id else None
        facts = facts_of(m.event, m.envelope.id, m.envelope.time, due_base=base)
        await track_tasks(ctx, uow, facts, caused_by=caused_by, by=by, remember=False)

    # Many follow-ups fall due at once: each patient's in order, different patients' side by side.
    await each_side_by_side(uow.store.tasks, list(messages), track, key=lambda m: m.key)


async def close_tasks_of_cancelled_follow_ups(
    ctx: FollowupContext,
    uow: Uow,
    cancelled: Iterable[Mapping[str, Any]],
    caused_by: ReceivedEvent | None = None,
) -> None:
    """A follow-up cancelled (its plan ended, its referral was re-routed) leaves nothing to do."""
    now = ctx.clock()
    kinds = [k.kind for k in ctx.tasks.kinds if k.about == FOLLOW_UP_KIND_ABOUT]
    for follow_up in cancelled:
        moot = await uow.store.tasks.active_about(follow_up["patient_id"], kinds, str(follow_up["id"]))
        changes = {"closed_at": now, "closed_reason": task.RESOLVED}
        await _close(uow, moot, "cancelled", changes, now, caused_by, None)


async def escalate_overdue_tasks(ctx: FollowupContext, uow: Uow) -> bool:
    """Periodic: open tasks past their escalation time go to the supervisor, once each.
    True when a full batch was claimed, so more may be waiting."""
    now, to_role = ctx.clock(), ctx.tasks.escalate_to_role
    late = await uow.store.tasks.claim_escalations(now, to_role, ctx.batch_size)
    announce_all(uow, [task.escalated(t, to_role, now) for t in late], now, None)
    if late:
        log.info("tasks escalated", count=len(late))
    return len(late) >= ctx.batch_size


async def change_task_status(ctx: FollowupContext, uow: Uow, cmd: ChangeTaskStatus) -> dict[str, Any]:
    """A person starts, finishes or cancels a task they may see; closing stores who and why."""
    rules, now = ctx.tasks, ctx.clock()
    row = await uow.store.tasks.get_task(cmd.agency_id, cmd.task_id, lock=True)
    sees_all = cmd.by_role in rules.agency_wide_roles
    if row is None or not task.may_see(row, cmd.by, cmd.by_role, cmd.agency_id, sees_all=sees_all):
        raise TaskNotFound()
    changes, announcement = task.change_status(rules, row, cmd.status, cmd.reason, cmd.actor, now)
    updated = await uow.store.tasks.update_task(row["id"], changes, now)
    announce_all(uow, [announcement], now, None)
    return dict(updated)
