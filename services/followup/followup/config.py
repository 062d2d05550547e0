"""followup's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from careloop_shared.clock import Clock, system_clock
from careloop_shared.patient_keys import PatientKeys
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from followup.domain.rules import RULES_FILE, FollowUpRules
from followup.domain.task_rules import TASK_RULES_FILE, TaskRules
from followup.notes import NotesInTheClear


class FollowupSettings(ServiceSettings):
    model_config = service_config("FOLLOWUP_")

    service_name: str = "followup"
    port: int = 8004
    # FOLLOWUP_SCHEDULER_TICK_S: how often to look for due follow-ups and tasks (three indexed queries);
    # a follow-up is announced at most this long after it fell due, plus the time to process the round.
    scheduler_tick_s: float = 0.25
    # FOLLOWUP_SCHEDULER_WORKERS: rounds at once while follow-ups wait to be announced (each claims its
    # own with SKIP LOCKED, as replicas do): one round's statements run while another's Python does.
    scheduler_workers: int = Field(2, ge=1, le=8)
    rules_file: Path = RULES_FILE  # FOLLOWUP_RULES_FILE: an organisation's own follow-up rules
    task_rules_file: Path = TASK_RULES_FILE  # FOLLOWUP_TASK_RULES_FILE: an organisation's own task rules
    seal_tick_s: float = Field(60.0, gt=0)  # how often a replica looks for notes recorded before sealing
    seal_batch_size: int = Field(500, ge=1)  # those notes sealed per transaction


def _shipped_task_rules() -> TaskRules:
    return load_rules(TaskRules, TASK_RULES_FILE)


@dataclass(frozen=True)
class FollowupContext:
    rules: FollowUpRules
    clock: Clock = system_clock
    batch_size: int = 500  # follow-ups (or tasks) the periodic steps claim per transaction
    tasks: TaskRules = field(default_factory=_shipped_task_rules)
    keys: PatientKeys = field(kw_only=True)  # patients' data keys, from intake: outcome notes are sealed
    seal_batch_size: int = field(default=500, kw_only=True)  # notes in the clear sealed per transaction
    in_the_clear: NotesInTheClear = field(default_factory=NotesInTheClear, kw_only=True)  # this replica's

    @classmethod
    def from_settings(
        cls, settings: FollowupSettings, clock: Clock = system_clock, *, keys: PatientKeys
    ) -> FollowupContext:
        return cls(
            load_rules(FollowUpRules, settings.rules_file),
            clock,
            tasks=load_rules(TaskRules, settings.task_rules_file),
            keys=keys,
            seal_batch_size=settings.seal_batch_size,
        )
