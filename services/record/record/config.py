"""record's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from careloop_shared.clock import Clock, system_clock
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from record.domain.timeline import SUMMARIES_FILE, Summaries


class RecordSettings(ServiceSettings):
    model_config = service_config("RECORD_")

    service_name: str = "record"
    port: int = 8005
    summaries_file: Path = SUMMARIES_FILE  # RECORD_SUMMARIES_FILE: an organisation's own wording


@dataclass(frozen=True)
class RecordContext:
    summaries: Summaries
    clock: Clock = system_clock

    @classmethod
    def from_settings(cls, settings: RecordSettings, clock: Clock = system_clock) -> RecordContext:
        return cls(load_rules(Summaries, settings.summaries_file), clock)
