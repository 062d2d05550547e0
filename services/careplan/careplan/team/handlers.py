"""The care team wing's use cases: members join, change and leave; members contribute to the plan; the
text of rows written before sealing is sealed in the background.

Members are named in careplan's database only, sealed with the patient's data key
(``careplan.team.sealed``): CareTeamChanged carries their relationship and role. Once the patient is
erased, a name, contact detail or note is refused (``careplan.domain.erasure``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from careloop_shared.contracts import CareTeamChanged
from careloop_shared.crypto import Erased
from careloop_shared.errors import Conflict, Invalid, NotFound, problem
from careloop_shared.ids import new_id
from careloop_shared.logging import get_logger
from careloop_shared.patient_keys import KeysUnavailable, keys_ahead
from careplan.config import CareplanContext
from careplan.domain.commands import (
    AddCareTeamMember,
    ChangeCareTeamMember,
    Command,
    ContributeToPlan,
    RemoveCareTeamMember,
)
from careplan.domain.erasure import ErasedPatient, free_text_in
from careplan.domain.plan import (
    GOAL_REWORDED,
    NEED_WITHDRAWN,
    PERSONAL_GOAL,
    PERSONAL_GOAL_NEED,
    PersonalGoal,
)
from careplan.plans.revision import Change, plan_to_change, revise
from careplan.store import Uow
from careplan.team.sealed import (
    DETAIL_FIELDS,
    DETAILS,
    MEMBERS,
    NOTE,
    NOTES,
    InTheClear,
    KeysAhead,
    in_the_clear,
    member_shown,
    seal_details,
    seal_note,
)

log = get_logger(__name__)

_REQUIRED = ("name", "relationship", "role")


class MemberNotFound(NotFound):
    """No active member of this patient's care team in the caller's agency."""

    def __init__(self) -> None:
        super().__init__("care team member not found")


class GoalNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("goal not found in the current plan")


class NeedNotStated(Conflict):
    """A need withdrawn that the care team did not raise (or withdrew already): a need a screening found
    leaves the plan with a later screening."""

    def __init__(self) -> None:
        super().__init__("that need is not one the care team raised for this plan; nothing to withdraw")


class NotInTheirWords(Conflict):
    """Only a goal the patient set in their own words has words to put anew; the library's are coded."""

    def __init__(self) -> None:
        super().__init__("only a goal in the patient's own words can be reworded")


class UnknownNeed(Invalid):
    """A stated need the plan library does not name: the plan would have nothing to offer for it."""

    def __init__(self) -> None:
        super().__init__([problem(["body", "need"], "unknown_need", "not a need the plan library names")])


class CannotClear(Invalid):
    def __init__(self) -> None:
        super().__init__([problem(["body"], "cannot_clear", "name, relationship and role cannot be cleared")])


async def add_member(ctx: CareplanContext, uow: Uow, cmd: AddCareTeamMember) -> dict[str, Any]:
    await plan_to_change(uow, cmd.agency_id, cmd.patient_id)
    await _refuse_free_text_if_erased(uow, cmd.patient_id, vars(cmd))
    member_id, details = new_id(), {"name": cmd.name, "contact": cmd.contact}
    sealed = await seal_details(ctx.keys, cmd.agency_id, cmd.patient_id, member_id, details)
    at = ctx.clock()
    row = await uow.store.team.insert_member(
        {
            "id": member_id,
            "patient_id": cmd.patient_id,
            "agency_id": cmd.agency_id,
            "name": None,
            "relationship": cmd.relationship,
            "role": cmd.role,
            "contact": None,
            DETAILS: sealed,
            "status": "active",
            "created_at": at,
            "updated_at": at,
            "created_by_subject": cmd.by,
            "created_by_role": cmd.by_role,
            **_updated_by(cmd),
        }
    )
    await _announce(uow, cmd, row, "added", at)
    return in_the_clear(row, details)


async def change_member(ctx: CareplanContext, uow: Uow, cmd: ChangeCareTeamMember) -> dict[str, Any]:
    """A new name or contact detail seals both again (a row from before then keeps none in the clear);
    a new relationship or role leaves them as they are."""
    if any(cmd.changes.get(k, "") is None for k in _REQUIRED):
        raise CannotClear()
    current = await _active_member(uow, cmd.agency_id, cmd.patient_id, cmd.member_id)
    await _refuse_free_text_if_erased(uow, cmd.patient_id, cmd.changes)
    shown = await member_shown(ctx.keys, cmd.agency_id, current)
    changes = {k: v for k, v in cmd.changes.items() if shown[k] != v}
    if not changes:
        return shown
    details = {f: changes.get(f, shown[f]) for f in DETAIL_FIELDS}
    stored = {k: v for k, v in changes.items() if k not in DETAIL_FIELDS}
    if any(f in changes for f in DETAIL_FIELDS):
        sealed = await seal_details(ctx.keys, cmd.agency_id, cmd.patient_id, cmd.member_id, details)
        stored |= {"name": None, "contact": None, DETAILS: sealed}
    at = ctx.clock()
    row = await uow.store.team.update_member(cmd.member_id, {**stored, **_updated_by(cmd)}, at)
    await _announce(uow, cmd, row, "changed", at)
    return in_the_clear(row, details)


async def remove_member(ctx: CareplanContext, uow: Uow, cmd: RemoveCareTeamMember) -> dict[str, Any]:
    """The member leaves the team; their record stays, inactive."""
    await _active_member(uow, cmd.agency_id, cmd.patient_id, cmd.member_id)
    at = ctx.clock()
    row = await uow.store.team.update_member(cmd.member_id, {"status": "inactive", **_updated_by(cmd)}, at)
    await _announce(uow, cmd, row, "removed", at)
    return dict(row)


async def contribute(ctx: CareplanContext, uow: Uow, cmd: ContributeToPlan) -> int:
    """Record a care team member's note, agreed goal, preference, stated need (or its withdrawal) or a
    goal in the patient's own words (or new words for it). All but a note and new words make a new
    version: a stated need adds the library's goal and interventions for it, as an assessed one would,
    and its withdrawal takes them out again unless a screening found that need too; a personal goal joins
    the goals, its words sealed as the note, as new words for it are. Returns the plan's version after."""
    if cmd.need is not None and cmd.need not in ctx.library.needs:
        raise UnknownNeed()
    personal = cmd.kind == PERSONAL_GOAL
    due = ctx.library.personal_goal_due(cmd.due, ctx.clock()) if personal else None
    plan = await plan_to_change(uow, cmd.agency_id, cmd.patient_id, cmd.expected_version)
    await _refuse_free_text_if_erased(uow, cmd.patient_id, vars(cmd))
    member = await uow.store.team.get_member(cmd.agency_id, cmd.patient_id, cmd.member_id)
    if member is None or member["status"] != "active":
        raise MemberNotFound()
    contribution_id = new_id()
    sealed_note = await seal_note(ctx.keys, cmd.agency_id, cmd.patient_id, contribution_id, cmd.note)
    at = ctx.clock()
    await uow.store.team.insert_contribution(
        {
            "id": contribution_id,
            "patient_id": cmd.patient_id,
            "agency_id": cmd.agency_id,
            "member_id": member["id"],
            "kind": cmd.kind,
            "goal_id": contribution_id if personal else cmd.goal_id,  # a personal goal is its own
            "note": None,
            NOTE: sealed_note,
            "preference": cmd.preference,
            "need": cmd.need,
            "plan_version": plan.version,
            "created_at": at,
            "recorded_by_subject": cmd.by,
            "recorded_by_role": cmd.by_role,
        }
    )
    if cmd.kind == GOAL_REWORDED:  # the words are the note; the plan keeps only the goal's code
        if not any(g.id == cmd.goal_id for g in plan.personal_goals):
            coded = cmd.goal_id is not None and plan.drafted.goal(cmd.goal_id) is not None
            raise NotInTheirWords() if coded else GoalNotFound()
    if cmd.kind in ("note", GOAL_REWORDED):
        return plan.version
    if cmd.kind == "agreed-goal":
        if cmd.goal_id is None or plan.drafted.goal(cmd.goal_id) is None:
            raise GoalNotFound()
        plan.agreed_goals = list(dict.fromkeys([*plan.agreed_goals, cmd.goal_id]))
    elif cmd.kind == "stated-need":
        assert cmd.need is not None  # checked above
        plan.stated_needs = list(dict.fromkeys([*plan.stated_needs, cmd.need]))
    elif cmd.kind == NEED_WITHDRAWN:
        if cmd.need not in plan.stated_needs:
            raise NeedNotStated()
        plan.stated_needs = [n for n in plan.stated_needs if n != cmd.need]
    elif personal:
        assert due is not None  # set above for a personal goal
        goal = PersonalGoal(id=contribution_id, need=cmd.need or PERSONAL_GOAL_NEED, due=due)
        plan.personal_goals = [*plan.personal_goals, goal]
    else:
        plan.overrides = plan.overrides.model_copy(update=cmd.preference or {})
    return await revise(ctx, uow, plan, Change.by(cmd, "care-team-contribution", at))


async def _active_member(uow: Uow, agency_id: str, patient_id: uuid.UUID, member_id: uuid.UUID) -> Any:
    current = await uow.store.team.get_member(agency_id, patient_id, member_id, lock=True)
    if current is None or current["status"] != "active":
        raise MemberNotFound()
    return current


async def _refuse_free_text_if_erased(uow: Uow, patient_id: uuid.UUID, fields: Mapping[str, Any]) -> None:
    """Checked after the plan or the member is locked, as erasure locks them: an erasure committing
    meanwhile is seen here, or blanks what this writes."""
    if free_text_in(fields) and (erased_at := await uow.store.erasure.erased_at(patient_id)) is not None:
        raise ErasedPatient(erased_at)


def _updated_by(cmd: Command) -> dict[str, str]:
    return {"updated_by_subject": cmd.by, "updated_by_role": cmd.by_role}


async def _announce(
    uow: Uow,
    cmd: AddCareTeamMember | ChangeCareTeamMember | RemoveCareTeamMember,
    row: Any,
    change: str,
    at: datetime,
) -> None:
    """Keep who made the change, and announce it (naming the person who made it, never the member)."""
    await uow.store.team.insert_change(
        {
            "id": new_id(),
            "member_id": row["id"],
            "patient_id": cmd.patient_id,
            "agency_id": cmd.agency_id,
            "change": change,
            "changed_by_subject": cmd.by,
            "changed_by_role": cmd.by_role,
            "changed_at": at,
        }
    )
    uow.emit(
        CareTeamChanged(
            patient_id=cmd.patient_id,
            agency_id=cmd.agency_id,
            member_id=row["id"],
            change=change,
            relationship=row["relationship"],
            role=row["role"],
            actor_id=cmd.by,
            actor_role=cmd.by_role,
        )
    )


async def seal_free_text_in_the_clear(ctx: CareplanContext, uow: Uow) -> bool:
    """Periodic: seal a batch of the members' details or notes written before sealing, bound as new rows
    are (reads open them alike). The batch's keys are asked of intake before its rows are locked; an
    erased patient's text is blanked as erasure leaves it; one intake does not know is left in the clear,
    counted and passed over until the next round. True when a batch was full: more may wait now."""
    walk = ctx.in_the_clear
    try:
        for table in (MEMBERS, NOTES):
            if table not in walk.walked:
                if await _seal_a_batch(ctx, uow, table):
                    walk.intake_down = False
                    return True
                walk.walked.add(table)
    except KeysUnavailable:
        if not walk.intake_down:
            log.warning("intake cannot give patients' keys now; text in the clear is sealed on a later round")
        walk.intake_down = True
        walk.restart()
        return False
    except BaseException:
        walk.restart()
        raise
    walk.intake_down = False
    _round_ended(walk, await uow.store.team.count_in_the_clear())
    return False


async def _seal_a_batch(ctx: CareplanContext, uow: Uow, table: str) -> bool:
    """The next batch of ``table``'s rows in the clear, sealed in one statement; True when it was full."""
    walk, size = ctx.in_the_clear, ctx.seal_batch_size
    ahead = await uow.store.team.in_the_clear(table, walk.after.get(table), size)
    if not ahead:
        return False
    keys = KeysAhead(await keys_ahead(ctx.keys, {(r["agency_id"], r["patient_id"]) for r in ahead}))
    sealed: list[tuple[uuid.UUID, dict[str, Any] | None]] = []
    unknown = 0
    for row in await uow.store.team.lock_in_the_clear(table, [r["id"] for r in ahead]):
        try:
            sealed.append((row["id"], await _sealed(keys, table, row)))
        except Erased:
            sealed.append((row["id"], None))  # blanked, as erasure leaves it
        except NotFound:
            unknown += 1
    if sealed:
        await uow.store.team.seal_in_place(table, sealed)
    blanked = sum(1 for _, value in sealed if value is None)
    walk.after[table] = ahead[-1]["id"]
    walk.sealed += len(sealed) - blanked
    walk.blanked += blanked
    walk.unknown += unknown
    log.debug("a batch of text in the clear sealed", table=table, sealed=len(sealed), blanked=blanked)
    return len(ahead) == size


async def _sealed(keys: KeysAhead, table: str, row: Any) -> dict[str, Any] | None:
    agency_id, patient_id = row["agency_id"], row["patient_id"]
    if table == MEMBERS:
        return await seal_details(keys, agency_id, patient_id, row["id"], dict(row))
    return await seal_note(keys, agency_id, patient_id, row["id"], row["note"])


def _round_ended(walk: InTheClear, left: int) -> None:
    """Say once that none is left, or how many rows of patients intake does not know stay in the clear
    when that changes; then start the next round from the beginning."""
    if left == 0 and walk.remain:
        log.info("every care team member's details and every note are sealed")
    elif walk.unknown and walk.unknown != walk.unknown_told:
        log.warning("free text in the clear left as it is: intake knows no such patient", rows=walk.unknown)
    if walk.sealed or walk.blanked:
        log.info("free text in the clear sealed", sealed=walk.sealed, blanked=walk.blanked, left=left)
    walk.remain, walk.unknown_told = left > 0, walk.unknown
    walk.restart()
