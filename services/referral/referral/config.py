"""referral's settings (from the environment) and context (what its use cases are configured with)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from careloop_shared.clock import Clock, system_clock
from careloop_shared.patient_keys import PatientKeys
from careloop_shared.rules import load_rules
from careloop_shared.settings import ServiceSettings, service_config
from referral.directory.store import DirectoryStore
from referral.domain.deadlines import DEADLINES_FILE, Deadlines
from referral.domain.directory import DIRECTORY_FILE, SeedDirectory
from referral.domain.matching import RANKING_FILE, Weights
from referral.domain.quality import NO_HISTORY, Quality


class ReferralSettings(ServiceSettings):
    model_config = service_config("REFERRAL_")

    service_name: str = "referral"
    port: int = 8003
    directory_file: Path = DIRECTORY_FILE  # REFERRAL_DIRECTORY_FILE: an organisation's own seed directory
    ranking_file: Path = RANKING_FILE  # REFERRAL_RANKING_FILE: its own ranking weights
    deadlines_file: Path = DEADLINES_FILE  # REFERRAL_DEADLINES_FILE: its own response and outcome deadlines
    overdue_tick_s: float = 1.0
    seal_tick_s: float = Field(60.0, gt=0)  # how often a replica looks for history notes kept in the clear
    seal_batch_size: int = Field(500, ge=1)  # notes kept in the clear looked at and sealed per transaction


class QualityCache:
    """Programs' quality figures for ranking, recomputed at most every ``ttl_s`` seconds.

    Quality moves slowly; recomputing it from the whole referral history for every match would make
    matching slower as the history grows. The directory API always shows fresh figures.
    """

    def __init__(self, ttl_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._figures: dict[str, tuple[float, Quality]] = {}
        # One recomputation at a time: the patients matched side by side would otherwise each run
        # the same costly query the moment the figures go stale.
        self._refreshing = asyncio.Lock()

    def _stale(self, service_ids: list[str]) -> list[str]:
        now = self._monotonic()
        return [sid for sid in service_ids if self._figures.get(sid, (0.0, None))[0] <= now]

    async def get(self, directory: DirectoryStore, service_ids: list[str]) -> dict[str, Quality]:
        if self._stale(service_ids):
            async with self._refreshing:
                stale = self._stale(service_ids)  # another caller may have just refreshed them
                if stale:
                    histories = await directory.histories(stale)
                    now = self._monotonic()
                    for sid in stale:
                        history = histories.get(sid)
                        self._figures[sid] = (now + self.ttl_s, Quality(history) if history else NO_HISTORY)
        return {sid: self._figures[sid][1] for sid in service_ids}


@dataclass
class NotesInTheClear:
    """This replica's pass over the history notes kept in the clear (``erasure/handlers.py``): where it
    has reached, and what it said when the last pass ended."""

    after: int = 0  # the last position looked at in this pass
    unsealed: int = 0  # notes this pass left in the clear: intake knows not their patient
    reported: int = 0  # how many the last pass left, as logged
    remain: bool = True  # whether any note was in the clear when the last pass ended


@dataclass(frozen=True)
class ReferralContext:
    weights: Weights
    deadlines: Deadlines
    seed: SeedDirectory  # validated when the context is built: a bad file stops the service at start
    clock: Clock = system_clock
    quality: QualityCache = field(default_factory=QualityCache)
    keys: PatientKeys = field(kw_only=True)  # patients' data keys, from intake: history notes are sealed
    seal_batch_size: int = field(default=500, kw_only=True)
    notes_in_the_clear: NotesInTheClear = field(default_factory=NotesInTheClear, kw_only=True)

    @classmethod
    def from_settings(
        cls, settings: ReferralSettings, clock: Clock = system_clock, *, keys: PatientKeys
    ) -> ReferralContext:
        return cls(
            load_rules(Weights, settings.ranking_file),
            load_rules(Deadlines, settings.deadlines_file),
            load_rules(SeedDirectory, settings.directory_file),
            clock,
            keys=keys,
            seal_batch_size=settings.seal_batch_size,
        )
