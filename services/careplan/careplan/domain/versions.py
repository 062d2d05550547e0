"""Plan versions: status lifecycle, progress from referrals and follow-ups, and diffs. Pure: no I/O."""

from __future__ import annotations

import uuid
from typing import Any

from careloop_shared.errors import Conflict
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
