"""How record entries read as a timeline: who acted, a readable summary, causes before effects. Pure."""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from careloop_shared.rules import RulesFile

SUMMARIES_FILE = Path(__file__).resolve().parent.parent / "rules" / "summaries.v1.json"


class Summaries(RulesFile):
    """A readable line per event type, with ``{field}`` placeholders filled from the event's body."""

    templates: dict[str, str]


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"


def _readable(value: Any) -> str:
    if isinstance(value, list):
        parts = [v.get("code", "?") if isinstance(v, dict) else _readable(v) for v in value]
        return ", ".join(parts) if parts else "none"
    if value is None:
        return "-"
    return str(value)


def summarise(summaries: Summaries, event_type: str, body: Mapping[str, Any]) -> str:
    template = summaries.templates.get(event_type)
    if template is None:
        return event_type
    return template.format_map(_Blank({k: _readable(v) for k, v in body.items()}))


def actor(source: str, body: Mapping[str, Any]) -> str:
    """Who made it happen: the person where the event names one (``care-manager cm-ana``; with their
    agency when it is not the patient's), else a role or party where it names one (events published
    before they named people), else the emitting service."""
    person = body.get("actor_id")
    if person:
        role = body.get("actor_role") or body.get("changed_by_role")
        named = f"{role} {person}" if role else str(person)
        their_agency = body.get("by_agency_id")
        if their_agency and their_agency != body.get("agency_id"):
            named += f" ({their_agency})"
        return named
    if body.get("changed_by_role") and body["changed_by_role"] != "system":
        return f"{body['changed_by_role']}"
    if body.get("by_party"):
        return f"{body['by_party']} ({body.get('by_agency_id', '?')})"
    return f"system ({source.rsplit('/', 1)[-1]})"


def causal_order(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Entries in append order, except that an effect never comes before its cause."""
    by_id = {str(e["event_id"]): e for e in entries}
    children: dict[str, list[Mapping[str, Any]]] = {}
    ready: list[tuple[int, str]] = []
    for entry in entries:
        cause = str(entry["causation_id"]) if entry["causation_id"] else None
        if cause in by_id and cause != str(entry["event_id"]):
            children.setdefault(cause, []).append(entry)
        else:
            heapq.heappush(ready, (int(entry["seq"]), str(entry["event_id"])))
    ordered: list[Mapping[str, Any]] = []
    while ready:
        _, event_id = heapq.heappop(ready)
        ordered.append(by_id[event_id])
        for child in children.pop(event_id, []):
            heapq.heappush(ready, (int(child["seq"]), str(child["event_id"])))
    return ordered


def timeline(summaries: Summaries, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A patient's entries as a timeline: causes before effects, each with its actor and summary."""
    items = []
    for entry in causal_order(entries):
        body = json.loads(bytes(entry["body"]))
        items.append(
            {
                "seq": entry["seq"],
                "event_id": entry["event_id"],
                "type": entry["event_type"],
                "time": entry["occurred_at"],
                "recorded_at": entry["recorded_at"],
                "source": entry["source"],
                "actor": actor(entry["source"], body),
                "summary": summarise(summaries, entry["event_type"], body),
                "correlation_id": entry["correlation_id"],
                "causation_id": entry["causation_id"],
                "data": body,
            }
        )
    return items
