"""Plan versions: status lifecycle, progress from referrals and follow-ups, and diffs. Pure: no I/O."""

from __future__ import annotations

from typing import Any

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

# Follow-up progress -> FHIR Goal.achievementStatus (and lifecycle when achieved).
PROGRESS_TO_ACHIEVEMENT = {
    "improving": "improving",
    "no-change": "no-change",
    "worsening": "worsening",
    "achieved": "achieved",
}


class IllegalPlanTransition(ValueError):
    pass


def change_status(document: dict[str, Any], current: str, new: str) -> str:
    if new not in PLAN_TRANSITIONS.get(current, frozenset()):
        raise IllegalPlanTransition(f"a {current} plan cannot become {new}")
    return new


def apply_referral_status(
    document: dict[str, Any], intervention_id: str, to_status: str
) -> dict[str, Any] | None:
    """The document with the intervention's activity status updated, or None when nothing changes."""
    activity = REFERRAL_TO_ACTIVITY.get(to_status)
    return _update(document, "interventions", intervention_id, {"status": activity} if activity else {})


def apply_goal_progress(document: dict[str, Any], goal_id: str, progress: str) -> dict[str, Any] | None:
    achievement = PROGRESS_TO_ACHIEVEMENT.get(progress)
    if achievement is None:
        return None
    changes: dict[str, Any] = {"achievement_status": achievement}
    if achievement == "achieved":
        changes["lifecycle_status"] = "completed"
    return _update(document, "goals", goal_id, changes)


def _update(
    document: dict[str, Any], part: str, item_id: str, changes: dict[str, Any]
) -> dict[str, Any] | None:
    items = document.get(part, [])
    found = next((i for i in items if i["id"] == item_id), None)
    if found is None or not changes or all(found.get(k) == v for k, v in changes.items()):
        return None
    return {**document, part: [({**i, **changes} if i["id"] == item_id else i) for i in items]}


def plan_status_after_progress(document: dict[str, Any], status: str) -> str:
    """An active plan whose goals are all completed is completed."""
    goals = document.get("goals", [])
    if status == "active" and goals and all(g["lifecycle_status"] == "completed" for g in goals):
        return "completed"
    return status


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Goals and interventions added, changed (field by field) and removed between two versions."""
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
