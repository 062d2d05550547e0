"""Plan versions: status lifecycle, progress from referrals and follow-ups, and diffs. Pure: no I/O."""

from __future__ import annotations

import uuid
from typing import Any, Literal, get_args

from careloop_shared.errors import Conflict, NotFound
from careplan.domain.plan import PlanDocument

# FHIR CarePlan.status: draft -> active <-> on-hold -> completed | revoked.
PLAN_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"active", "revoked"}),
    "active": frozenset({"on-hold", "completed", "revoked"}),
    "on-hold": frozenset({"active", "completed", "revoked"}),
    "completed": frozenset(),
    "revoked": frozenset(),
}

# Referral task status -> FHIR CarePlan.activity status of the intervention it serves.
REFERRAL_TO_ACTIVITY = {
    "requested": "scheduled",
    "accepted": "scheduled",
    "in-progress": "in-progress",
    "on-hold": "on-hold",
    "completed": "completed",
    "cancelled": "cancelled",
    "failed": "stopped",
    "rejected": "not-started",  # re-routed to another program; the intervention still stands
}
# A referral cancelled for these reasons was replaced by another: the intervention still stands.
REPLACED_REASONS = frozenset({"overridden-by-care-manager"})
# A referral completed with an outcome saying the service was not delivered ended as a failed one does.
NOT_DELIVERED_ACTIVITY = REFERRAL_TO_ACTIVITY["failed"]

# FHIR CarePlan.activity.detail.status: where a person may move an intervention by hand. One served by a
# referral follows its referral instead (REFERRAL_TO_ACTIVITY). A closed one may be reopened, as in
# progress, when it was closed too soon.
ACTIVITY_TRANSITIONS: dict[str, frozenset[str]] = {
    "not-started": frozenset({"scheduled", "in-progress", "completed", "cancelled"}),
    "scheduled": frozenset({"in-progress", "on-hold", "completed", "cancelled"}),
    "in-progress": frozenset({"on-hold", "completed", "stopped", "cancelled"}),
    "on-hold": frozenset({"in-progress", "completed", "stopped", "cancelled"}),
    "completed": frozenset({"in-progress"}),
    "stopped": frozenset({"in-progress"}),
    "cancelled": frozenset({"in-progress"}),
}
# FHIR Goal.lifecycleStatus: where a person may move a goal (a drafted goal is active, or accepted once
# the care team agreed it with the patient); a closed one may be made active again.
GOAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "accepted": frozenset({"active", "on-hold", "completed", "cancelled"}),
    "active": frozenset({"on-hold", "completed", "cancelled"}),
    "on-hold": frozenset({"active", "completed", "cancelled"}),
    "completed": frozenset({"active"}),
    "cancelled": frozenset({"active"}),
}
# FHIR Goal.achievementStatus: what a person may say of a goal's progress.
GoalAchievement = Literal[
    "in-progress",
    "improving",
    "worsening",
    "no-change",
    "achieved",
    "sustaining",
    "not-achieved",
    "no-progress",
    "not-attainable",
]
ACHIEVEMENT_STATUSES: tuple[str, ...] = get_args(GoalAchievement)
# A plan in these statuses is closed: nothing in it is moved by hand.
CLOSED_PLANS = frozenset({"completed", "revoked"})

# Follow-up progress -> FHIR Goal.achievementStatus (and lifecycle when achieved).
PROGRESS_TO_ACHIEVEMENT = {
    "improving": "improving",
    "no-change": "no-change",
    "worsening": "worsening",
    "achieved": "achieved",
}


class IllegalPlanTransition(Conflict):
    """The plan's status cannot move from where it is to where it was asked to."""

    def __init__(self, current: str, new: str) -> None:
        super().__init__(f"a {current} plan cannot become {new}")


class NotInPlan(NotFound):
    """The goal or intervention is not in the plan's current version."""

    def __init__(self, part: str) -> None:
        super().__init__(f"the {part} is not in the plan's current version")


class FollowsItsReferral(Conflict):
    """An intervention served by a referral moves with the referral, not by hand."""

    def __init__(self) -> None:
        super().__init__("this intervention follows its referral: change the referral instead")


class IllegalItemMove(Conflict):
    """A goal or intervention cannot move so from where it is (the message names the statuses only)."""


class ClosedPlan(Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"a {status} plan is closed: nothing in it changes")


def move_intervention(document: PlanDocument, intervention_id: uuid.UUID, to: str) -> PlanDocument:
    """The document with the intervention moved by hand along its activity status."""
    found = document.intervention(intervention_id)
    if found is None:
        raise NotInPlan("intervention")
    if found.needs_referral:
        raise FollowsItsReferral()
    if to not in ACTIVITY_TRANSITIONS.get(found.status, frozenset()):
        raise IllegalItemMove(f"a {found.status} intervention cannot become {to}")
    return _update(document, "interventions", intervention_id, {"status": to}) or document


def move_goal(
    document: PlanDocument, goal_id: uuid.UUID, lifecycle: str | None, achievement: str | None
) -> PlanDocument:
    """The document with the goal's lifecycle and achievement as a person said them (either may be
    left as it is); a goal said achieved is not completed unless the person says so too."""
    found = document.goal(goal_id)
    if found is None:
        raise NotInPlan("goal")
    changes: dict[str, Any] = {}
    if lifecycle is not None and lifecycle != found.lifecycle_status:
        if lifecycle not in GOAL_TRANSITIONS.get(found.lifecycle_status, frozenset()):
            raise IllegalItemMove(f"a {found.lifecycle_status} goal cannot become {lifecycle}")
        changes["lifecycle_status"] = lifecycle
    if achievement is not None:
        changes["achievement_status"] = achievement
    return _update(document, "goals", goal_id, changes) or document


def change_status(current: str, new: str) -> str:
    if new not in PLAN_TRANSITIONS.get(current, frozenset()):
        raise IllegalPlanTransition(current, new)
    return new


def apply_referral_status(
    document: PlanDocument,
    intervention_id: uuid.UUID,
    to_status: str,
    reason: str | None = None,
    *,
    delivered: bool | None = None,
) -> PlanDocument | None:
    """The document with the intervention's activity status updated, or None when nothing changes.
    ``delivered`` is the outcome's ``service_delivered``: a completion without the service is not done."""
    replaced = to_status == "cancelled" and reason in REPLACED_REASONS
    if replaced:
        activity: str | None = "not-started"
    elif to_status == "completed" and delivered is False:
        activity = NOT_DELIVERED_ACTIVITY
    else:
        activity = REFERRAL_TO_ACTIVITY.get(to_status)
    return _update(document, "interventions", intervention_id, {"status": activity} if activity else {})


def apply_goal_progress(document: PlanDocument, goal_id: uuid.UUID, progress: str) -> PlanDocument | None:
    achievement = PROGRESS_TO_ACHIEVEMENT.get(progress)
    if achievement is None:
        return None
    changes: dict[str, Any] = {"achievement_status": achievement}
    if achievement == "achieved":
        changes["lifecycle_status"] = "completed"
    return _update(document, "goals", goal_id, changes)


def complete_intervention(document: PlanDocument, intervention_id: uuid.UUID) -> PlanDocument:
    return _update(document, "interventions", intervention_id, {"status": "completed"}) or document


def _update(
    document: PlanDocument, part: str, item_id: uuid.UUID, changes: dict[str, Any]
) -> PlanDocument | None:
    items = document.goals if part == "goals" else document.interventions
    found = next((i for i in items if i.id == item_id), None)
    if found is None or not changes or all(getattr(found, k) == v for k, v in changes.items()):
        return None
    changed = [i.model_copy(update=changes) if i.id == item_id else i for i in items]
    return document.model_copy(update={part: changed})


def plan_status_after_progress(document: PlanDocument, status: str) -> str:
    """An active plan whose goals are all completed is completed."""
    goals = document.goals
    if status == "active" and goals and all(g.lifecycle_status == "completed" for g in goals):
        return "completed"
    return status


def diff(old_version: PlanDocument, new_version: PlanDocument) -> dict[str, Any]:
    """Goals and interventions added, changed (field by field) and removed between two versions,
    as they are stored."""
    old, new = old_version.stored(), new_version.stored()
    out: dict[str, Any] = {}
    for part in ("goals", "interventions"):
        before = {i["id"]: i for i in old.get(part, [])}
        after = {i["id"]: i for i in new.get(part, [])}
        changed = []
        for item_id in before.keys() & after.keys():
            fields = {
                k: {"from": before[item_id].get(k), "to": after[item_id].get(k)}
                for k in sorted(before[item_id].keys() | after[item_id].keys())
                if before[item_id].get(k) != after[item_id].get(k)
            }
            if fields:
                changed.append({"id": item_id, "fields": fields})
        out[part] = {
            "added": [after[i] for i in after if i not in before],
            "changed": sorted(changed, key=lambda c: c["id"]),
            "removed": [before[i] for i in before if i not in after],
        }
    for key in ("risk_level", "preferred_language", "contact_preference"):
        if old.get(key) != new.get(key):
            out.setdefault("plan", {})[key] = {"from": old.get(key), "to": new.get(key)}
    return out
