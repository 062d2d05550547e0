"""Contacts a care manager arranges with the patient (a one-off follow-up at an agreed time, for a coded
purpose, by a channel the plan allows): arranged, changed (another way or purpose) and called off. Once
arranged, one falls due, opens a task and takes an outcome as any follow-up does (``followup.handlers``).
"""

from __future__ import annotations

from typing import Any

from followup.config import FollowupContext
from followup.domain import arranged
from followup.domain.commands import ArrangeContact, CancelContact, ChangeArrangement
from followup.domain.erasure import NoContactWithErased
from followup.domain.follow_up import FollowUp
from followup.handlers import locked_follow_up
from followup.store import Uow
from followup.tasks.handlers import (
    announce_all,
    check_new_work,
    close_tasks_of_cancelled_follow_ups,
    track_own,
)


async def arrange_contact(ctx: FollowupContext, uow: Uow, cmd: ArrangeContact) -> dict[str, Any]:
    """A contact the care manager agreed with the patient: it falls due, opens a task and takes an outcome
    as any follow-up does, at the priority of the patient's plan and by a channel it allows."""
    await check_new_work(uow, cmd.agency_id, cmd.patient_id, NoContactWithErased)
    plan = await uow.store.get_plan(cmd.patient_id)
    now = ctx.clock()
    contact = arranged.arrange_contact(
        ctx.rules,
        now,
        patient_id=cmd.patient_id,
        agency_id=cmd.agency_id,
        due_at=cmd.due_at,
        channel=cmd.channel,
        purpose=cmd.purpose,
        plan_channel=plan["channel"] if plan else None,
        plan_priority=str(plan["priority"]) if plan else None,
        by=cmd.actor,
    )
    await uow.store.insert_follow_up(contact.row)
    await track_own(ctx, uow, announce_all(uow, [contact.announcement], now), by=cmd.actor)
    shown = await uow.store.get_follow_up(cmd.agency_id, contact.row["id"])
    assert shown is not None  # inserted above, in this transaction
    return dict(shown)


async def change_arrangement(ctx: FollowupContext, uow: Uow, cmd: ChangeArrangement) -> dict[str, Any]:
    """An open arranged contact reached another way its plan allows, or for another purpose; announced
    (FollowUpScheduled, rescheduled, at the same time) only when something changed."""
    row = await locked_follow_up(uow, cmd.agency_id, cmd.follow_up_id)
    plan, now = await uow.store.get_plan(row["patient_id"]), ctx.clock()
    change = arranged.change_arrangement(
        ctx.rules,
        FollowUp.from_row(row),
        channel=cmd.channel,
        purpose=cmd.purpose,
        plan_channel=plan["channel"] if plan else None,
        by=cmd.actor,
    )
    if change is None:
        return dict(row)
    updated = await uow.store.update_follow_up(row["id"], change.changes, now)
    await track_own(ctx, uow, announce_all(uow, [change.announcement], now), by=cmd.actor)
    return dict(updated)


async def cancel_contact(ctx: FollowupContext, uow: Uow, cmd: CancelContact) -> dict[str, Any]:
    """Call off an open arranged contact; a task it opened closes with it."""
    row = await locked_follow_up(uow, cmd.agency_id, cmd.follow_up_id)
    now = ctx.clock()
    cancellation = arranged.cancel_contact(ctx.rules, FollowUp.from_row(row), cmd.reason, now, by=cmd.actor)
    updated = await uow.store.update_follow_up(row["id"], cancellation.changes, now)
    await track_own(ctx, uow, announce_all(uow, [cancellation.announcement], now), by=cmd.actor)
    await close_tasks_of_cancelled_follow_ups(ctx, uow, [row])
    return dict(updated)
