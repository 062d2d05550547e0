"""A care plan's diff (careplan's ``/care-plan/diff``) as lines people read: what was added, changed and
removed, each goal and intervention named as the plan names it. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workspace.web import words

_CODE = re.compile(r"[a-z][a-z0-9-]*")
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T")  # a due time: its day is what changed
_PARTS = (("goals", "Goal"), ("interventions", "Intervention"))
_PLAN_FIELDS = {
    "status": "Plan status",
    "risk_level": "Risk level",
    "preferred_language": "Preferred language",
    "contact_preference": "Contact preference",
}


@dataclass(frozen=True)
class DiffLine:
    kind: str  # added, changed or removed
    text: str


def diff_lines(diff: Mapping[str, Any], named: Mapping[str, str]) -> list[DiffLine]:
    """``named``: goal and intervention ids -> how the page names them (for a change, which names
    only the id). Plan-wide changes first, then goals, then interventions."""
    lines = [
        DiffLine(
            "changed", f"{label} changed from {_value(change.get('from'))} to {_value(change.get('to'))}."
        )
        for key, label in _PLAN_FIELDS.items()
        if isinstance(change := diff.get("plan", {}).get(key), Mapping)
    ]
    for part, noun in _PARTS:
        changes = diff.get(part) or {}
        lines += [
            DiffLine("added", f"{noun} added: {_describe(part, item, named)}.")
            for item in changes.get("added", [])
        ]
        for change in changes.get("changed", []):
            name = named.get(str(change.get("id")), f"{noun.lower()} {str(change.get('id'))[:8]}")
            fields = "; ".join(
                f"{_field(key)} from {_value(move.get('from'))} to {_value(move.get('to'))}"
                for key, move in (change.get("fields") or {}).items()
            )
            lines.append(DiffLine("changed", f"{noun} {name} changed: {fields}."))
        lines += [
            DiffLine("removed", f"{noun} removed: {_describe(part, item, named)}.")
            for item in changes.get("removed", [])
        ]
    return lines


def goal_name(goal: Mapping[str, Any]) -> str:
    return f"“{words(goal.get('description', 'goal'))}”"


def intervention_name(intervention: Mapping[str, Any]) -> str:
    """``referral for transportation insecurity (transportation)``."""
    what = f"{intervention.get('kind', 'intervention')} for {_code(intervention.get('need'))}"
    detail = intervention.get("program_category") or intervention.get("service_code")
    return f"“{what}{f' ({_code(detail)})' if detail else ''}”"


def names_in(document: Mapping[str, Any]) -> dict[str, str]:
    """The goals and interventions of a plan document by id, named for the diff."""
    named = {str(g["id"]): goal_name(g) for g in document.get("goals", [])}
    named |= {str(i["id"]): intervention_name(i) for i in document.get("interventions", [])}
    return named


def _describe(part: str, item: Mapping[str, Any], named: Mapping[str, str]) -> str:
    if part == "goals":
        target = item.get("target")
        name = named.get(str(item.get("id"))) or goal_name(item)  # a goal in the patient's words: them
        return f"{name}{f', target: {target}' if target else ''}"
    priority = item.get("priority")
    extra = f", {priority} priority" if priority and priority != "routine" else ""
    return f"{intervention_name(item)}{extra}"


def _field(key: str) -> str:
    return words(key).lower()


def _code(value: Any) -> str:
    return words(value).lower() if value else "—"


def _value(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "none"
    if isinstance(value, list):
        return ", ".join(_code(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if _CODE.fullmatch(text):
        return _code(text)
    return text[:10] if _MOMENT.match(text) else text
