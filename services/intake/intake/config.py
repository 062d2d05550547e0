"""intake's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from careloop_shared.clock import Clock, system_clock
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from intake.domain import care_manager
from intake.domain.care_manager import CareManagerRules
from intake.domain.scoring import RULES_FILE, ScreeningRules


class IntakeSettings(ServiceSettings):
    model_config = service_config("INTAKE_")

    service_name: str = "intake"
    port: int = 8001
    screening_rules: Path = RULES_FILE  # INTAKE_SCREENING_RULES: an organisation's own scoring rules
    # INTAKE_CARE_MANAGER_RULES: who becomes responsible by registering, the reassignment reason codes
    care_manager_rules: Path = care_manager.RULES_FILE


@dataclass(frozen=True)
class IntakeContext:
    rules: ScreeningRules
    care_manager: CareManagerRules
    clock: Clock = system_clock

    @classmethod
    def from_settings(cls, settings: IntakeSettings, clock: Clock = system_clock) -> IntakeContext:
        return cls(
            load_rules(ScreeningRules, settings.screening_rules),
            load_rules(CareManagerRules, settings.care_manager_rules),
            clock,
        )
