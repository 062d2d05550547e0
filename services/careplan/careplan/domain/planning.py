"""What a plan holds, drafted from assessed needs and a versioned plan library. Pure: no I/O."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_LIBRARY = Path(__file__).resolve().parent.parent / "library" / "plan-library.v1.json"

# Stable ids: the same patient, need and intervention slot keep their id across plan versions,
# so downstream services (referral) recognise an intervention they already acted on.
_IDS = uuid.UUID("6d1f4f4e-8d8e-4c55-9b65-3f1c2a7e0c11")


@dataclass(frozen=True)
class PlanLibrary:
    version: str
    needs: dict[str, Any]
    default_need: dict[str, Any]
    follow_up_days_by_risk: dict[str, float]

    @classmethod
    def load(cls, path: Path | None = None) -> PlanLibrary:
        data = json.loads((path or DEFAULT_LIBRARY).read_text())
        return cls(data["version"], data["needs"], data["default_need"], data["follow_up_days_by_risk"])


def stable_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(_IDS, "/".join(map(str, parts)))


def draft_plan(
    library: PlanLibrary,
    *,
    patient_id: uuid.UUID,
    needs: list[str],
    risk_level: str,
    now: datetime,
) -> dict[str, Any]:
    """Goals and interventions for each need, and the follow-up cadence for the risk level."""
    goals: list[dict[str, Any]] = []
    interventions: list[dict[str, Any]] = []
    for need in dict.fromkeys(needs):  # each need once, in assessed order
        entry = library.needs.get(need, library.default_need)
        goal = entry["goal"]
        goals.append(
            {
                "id": str(stable_id(patient_id, need, "goal")),
                "need": need,
                "description": goal["description"],
                "target": goal["target"],
                "due": (now + timedelta(days=goal["due_days"])).isoformat(),
            }
        )
        for slot, item in enumerate(entry["interventions"]):
            interventions.append(
                {
                    "id": str(stable_id(patient_id, need, item["kind"], slot)),
                    "need": need,
                    "kind": item["kind"],
                    "program_category": item["program_category"],
                    "needs_referral": item["needs_referral"],
                }
            )
    return {
        "library_version": library.version,
        "risk_level": risk_level,
        "goals": goals,
        "interventions": interventions,
        "follow_up": {
            "every_days": library.follow_up_days_by_risk[risk_level],
            "priority": risk_level,
        },
    }
