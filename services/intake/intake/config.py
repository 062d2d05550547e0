"""intake's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from careloop_shared.clock import Clock, system_clock
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from intake.domain.scoring import RULES_FILE, ScreeningRules


class IntakeSettings(ServiceSettings):
    model_config = service_config("INTAKE_")

    service_name: str = "intake"
    port: int = 8001
    screening_rules: Path = RULES_FILE  # INTAKE_SCREENING_RULES: an organisation's own scoring rules


@dataclass(frozen=True)
class IntakeContext:
    rules: ScreeningRules
    clock: Clock = system_clock

    @classmethod
    def from_settings(cls, settings: IntakeSettings, clock: Clock = system_clock) -> IntakeContext:
        return cls(load_rules(ScreeningRules, settings.screening_rules), clock)
