"""followup's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from careloop_shared.clock import Clock, system_clock
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from followup.domain.rules import RULES_FILE, FollowUpRules


class FollowupSettings(ServiceSettings):
    model_config = service_config("FOLLOWUP_")

    service_name: str = "followup"
    port: int = 8004
    scheduler_tick_s: float = 1.0  # FOLLOWUP_SCHEDULER_TICK_S: how often to look for due follow-ups
    rules_file: Path = RULES_FILE  # FOLLOWUP_RULES_FILE: an organisation's own follow-up rules


@dataclass(frozen=True)
class FollowupContext:
    rules: FollowUpRules
    clock: Clock = system_clock
    batch_size: int = 500  # follow-ups the scheduler turns due (or overdue) per transaction

    @classmethod
    def from_settings(cls, settings: FollowupSettings, clock: Clock = system_clock) -> FollowupContext:
        return cls(load_rules(FollowUpRules, settings.rules_file), clock)
