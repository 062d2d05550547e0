"""Medical-necessity checks of requested services against criteria held as data. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careplan.domain.planning import RISK_ORDER

DEFAULT_CRITERIA = Path(__file__).resolve().parent.parent / "library" / "necessity-criteria.v1.json"
_TRIED = frozenset({"in-progress", "on-hold", "completed", "stopped"})
_ACTIVE = frozenset({"not-started", "scheduled", "in-progress", "on-hold"})


@dataclass(frozen=True)
class NecessityCriteria:
    version: str
    services: dict[str, Any]

    @classmethod
    def load(cls, path: Path | None = None) -> NecessityCriteria:
        data = json.loads((path or DEFAULT_CRITERIA).read_text())
        return cls(data["version"], data["services"])


@dataclass(frozen=True)
class Decision:
    service_code: str
    met: bool
    failed_criteria: list[str]
    alternatives: list[str]
    criteria_version: str


class UnknownService(ValueError):
    pass


def _holds(criterion: dict[str, Any], plan: dict[str, Any], service_code: str) -> bool:
    interventions = plan.get("interventions", [])
    if "any_need" in criterion:
        return bool(set(plan.get("needs", [])) & set(criterion["any_need"]))
    if "min_risk" in criterion:
        return RISK_ORDER.index(plan.get("risk_level", "low")) >= RISK_ORDER.index(criterion["min_risk"])
    if "prior_intervention_kind" in criterion:
        return any(
            i["kind"] == criterion["prior_intervention_kind"] and i["status"] in _TRIED for i in interventions
        )
    if "max_active" in criterion:
        active = [
            i for i in interventions if i.get("service_code") == service_code and i["status"] in _ACTIVE
        ]
        return len(active) <= criterion["max_active"]
    raise ValueError(f"criterion {criterion.get('code')!r} has no rule this engine knows")


def decide(criteria: NecessityCriteria, service_code: str, plan: dict[str, Any]) -> Decision:
    """Which criteria fail for this service given the current plan, and what to offer instead."""
    spec = criteria.services.get(service_code)
    if spec is None:
        raise UnknownService(service_code)
    failed = [c["code"] for c in spec["criteria"] if not _holds(c, plan, service_code)]
    return Decision(
        service_code=service_code,
        met=not failed,
        failed_criteria=failed,
        alternatives=[] if not failed else list(spec["alternatives"]),
        criteria_version=criteria.version,
    )
