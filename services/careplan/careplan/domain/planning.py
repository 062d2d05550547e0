"""What a plan holds, drafted from assessed needs and a versioned plan library. Pure: no I/O.

A plan is drafted from everything known about the patient (the latest result of each instrument,
preferences, services approved or chosen, goals agreed with the care team), then carried over from the
previous version so progress on a goal or an intervention is never lost by a revision.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_LIBRARY = Path(__file__).resolve().parent.parent / "library" / "plan-library.v1.json"
RISK_ORDER = ("low", "moderate", "high", "urgent")

# Stable ids: the same patient, need and intervention slot keep their id across plan versions,
# so downstream services (referral) recognise an intervention they already acted on.
_IDS = uuid.UUID("6d1f4f4e-8d8e-4c55-9b65-3f1c2a7e0c11")


@dataclass(frozen=True)
class PlanLibrary:
    version: str
    agency_language: str
    needs: dict[str, Any]
    default_need: dict[str, Any]
    language_support: dict[str, Any]
    urgent_flags: dict[str, Any]
    follow_up_days_by_risk: dict[str, float]
    instrument_groups: dict[str, str] = field(default_factory=dict)

    def group_of(self, instrument: str) -> str:
        """Instruments in one group supersede each other (a PHQ-9 answers what a PHQ-2 asked)."""
        return self.instrument_groups.get(instrument, instrument)

    @classmethod
    def load(cls, path: Path | None = None) -> PlanLibrary:
        data = json.loads((path or DEFAULT_LIBRARY).read_text())
        return cls(
            version=data["version"],
            agency_language=data["agency_language"],
            needs=data["needs"],
            default_need=data["default_need"],
            language_support=data["language_support"],
            urgent_flags=data["urgent_flags"],
            follow_up_days_by_risk=data["follow_up_days_by_risk"],
            instrument_groups=data.get("instrument_groups", {}),
        )


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan is drafted from."""

    patient_id: uuid.UUID
    needs: list[dict[str, Any]]
    risk_level: str
    urgent_flags: list[str] = field(default_factory=list)
    preferred_language: str | None = None
    contact_preference: str | None = None
    services: list[str] = field(default_factory=list)  # approved or chosen service codes
    agreed_goals: list[str] = field(default_factory=list)  # goal ids agreed with the care team


def stable_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(_IDS, "/".join(map(str, parts)))


def highest_risk(levels: list[str]) -> str:
    return max(levels, key=RISK_ORDER.index, default="low")


def _materials(item: dict[str, Any], language: str, fallback: str) -> list[str]:
    by_language: dict[str, list[str]] = item.get("materials") or {}
    return list(by_language.get(language) or by_language.get(fallback) or [])


def _intervention(
    item: dict[str, Any], *, iid: uuid.UUID, need: str, language: str, fallback: str, urgent: bool
) -> dict[str, Any]:
    return {
        "id": str(iid),
        "need": need,
        "kind": item["kind"],
        "program_category": item.get("program_category"),
        "needs_referral": item["needs_referral"],
        "status": "not-started",
        "priority": "urgent"
        if urgent and item.get("priority", "routine") == "routine"
        else item.get("priority", "routine"),
        "language": language,
        "education_materials": _materials(item, language, fallback),
        "service_code": item.get("service_code"),
    }


def draft_plan(library: PlanLibrary, inputs: PlanInputs, *, now: datetime) -> dict[str, Any]:
    """Goals and interventions for each need, personalised, with the follow-up cadence for the risk."""
    language = inputs.preferred_language or library.agency_language
    fallback = library.agency_language
    urgent = bool(inputs.urgent_flags)
    pid = inputs.patient_id
    goals: list[dict[str, Any]] = []
    interventions: list[dict[str, Any]] = []
    needs = list(dict.fromkeys(n["code"] for n in inputs.needs))  # each need once, in assessed order
    for need in needs:
        entry = library.needs.get(need, library.default_need)
        goal = entry["goal"]
        goal_id = str(stable_id(pid, need, "goal"))
        goals.append(
            {
                "id": goal_id,
                "need": need,
                "description": goal["description"],
                "target": goal["target"],
                "due": (now + timedelta(days=goal["due_days"])).isoformat(),
                "lifecycle_status": "accepted" if goal_id in inputs.agreed_goals else "active",
                "achievement_status": None,
            }
        )
        for slot, item in enumerate(entry["interventions"]):
            interventions.append(
                _intervention(
                    item,
                    iid=stable_id(pid, need, item["kind"], slot),
                    need=need,
                    language=language,
                    fallback=fallback,
                    urgent=urgent,
                )
            )
    for flag in inputs.urgent_flags:
        item = library.urgent_flags.get(flag)
        if item is not None:
            interventions.insert(
                0,
                _intervention(
                    item,
                    iid=stable_id(pid, "urgent", flag),
                    need=flag,
                    language=language,
                    fallback=fallback,
                    urgent=True,
                ),
            )
    if language != library.agency_language:
        interventions.append(
            _intervention(
                library.language_support,
                iid=stable_id(pid, "language-access", language),
                need="language-access",
                language=language,
                fallback=fallback,
                urgent=False,
            )
        )
    for code in dict.fromkeys(inputs.services):
        interventions.append(
            {
                **_intervention(
                    {"kind": "clinical", "needs_referral": False, "service_code": code},
                    iid=stable_id(pid, "service", code),
                    need="clinical-service",
                    language=language,
                    fallback=fallback,
                    urgent=False,
                ),
            }
        )
    risk = "urgent" if urgent else inputs.risk_level
    return {
        "library_version": library.version,
        "risk_level": risk,
        "urgent_flags": list(inputs.urgent_flags),
        "needs": [n["code"] for n in inputs.needs],
        "preferred_language": language,
        "contact_preference": inputs.contact_preference,
        "goals": goals,
        "interventions": interventions,
        "follow_up": {
            "every_days": library.follow_up_days_by_risk[risk],
            "priority": risk,
            # Respect "do not contact": follow-ups happen only in person, never by phone or text.
            "channel": "in-person-only"
            if inputs.contact_preference == "do-not-contact"
            else (inputs.contact_preference or "phone"),
        },
    }


_CARRIED_GOAL = ("lifecycle_status", "achievement_status", "due")
_CARRIED_INTERVENTION = ("status",)


def carry_over(previous: dict[str, Any] | None, drafted: dict[str, Any]) -> dict[str, Any]:
    """Keep what happened to goals and interventions that stay in the plan; agreed goals stay agreed."""
    if previous is None:
        return drafted
    old_goals = {g["id"]: g for g in previous.get("goals", [])}
    old_interventions = {i["id"]: i for i in previous.get("interventions", [])}
    goals = []
    for goal in drafted["goals"]:
        old = old_goals.get(goal["id"])
        if old is not None:
            carried = {k: old[k] for k in _CARRIED_GOAL if k in old}
            if goal["lifecycle_status"] == "accepted" and carried.get("lifecycle_status") == "active":
                carried.pop("lifecycle_status")
            goal = {**goal, **carried}
        goals.append(goal)
    interventions = [
        {
            **i,
            **{
                k: old_interventions[i["id"]][k]
                for k in _CARRIED_INTERVENTION
                if i["id"] in old_interventions
            },
        }
        for i in drafted["interventions"]
    ]
    return {**drafted, "goals": goals, "interventions": interventions}
