"""careplan's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from careloop_shared.clock import Clock, system_clock
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from careplan.domain.necessity import DEFAULT_CRITERIA, NecessityCriteria
from careplan.domain.planning import DEFAULT_LIBRARY, PlanLibrary


class CareplanSettings(ServiceSettings):
    model_config = service_config("CAREPLAN_")

    service_name: str = "careplan"
    port: int = 8002
    plan_library: Path = DEFAULT_LIBRARY  # CAREPLAN_PLAN_LIBRARY: an organisation's own plan library
    necessity_criteria: Path = DEFAULT_CRITERIA  # CAREPLAN_NECESSITY_CRITERIA: its own criteria


@dataclass(frozen=True)
class CareplanContext:
    library: PlanLibrary
    criteria: NecessityCriteria
    clock: Clock = system_clock

    @classmethod
    def from_settings(cls, settings: CareplanSettings, clock: Clock = system_clock) -> CareplanContext:
        return cls(
            load_rules(PlanLibrary, settings.plan_library),
            load_rules(NecessityCriteria, settings.necessity_criteria),
            clock,
        )
