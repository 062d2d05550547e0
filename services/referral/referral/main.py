"""Composition root of referral."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from careloop_shared.contracts import NetworkGapDetected, ReferralMade, ReferralOverdue, ReferralStatusChanged
from careloop_shared.http import create_app, serve
from careloop_shared.runtime import BackgroundLoop, ServiceRuntime, ServiceSpec
from careloop_shared.settings import ServiceSettings
from referral.api import router
from referral.consumers import handlers
from referral.domain.deadlines import Clock, Deadlines, system_clock
from referral.domain.matching import Weights
from referral.handlers import Referrals, load_seed_directory
from referral.overdue import overdue_loop
from referral.schemas import SeedDirectory

SEED_DIRECTORY = Path(__file__).parent / "directory" / "seed.v1.json"


class ReferralSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="REFERRAL_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "referral"
    port: int = 8003
    directory_file: Path = SEED_DIRECTORY
    ranking_file: Path | None = None
    response_deadline_business_days: float = 2
    outcome_deadline_days: float = 14
    overdue_tick_s: float = 1.0


def seed_loader(path: Path, clock: Clock) -> BackgroundLoop:
    seed = SeedDirectory.model_validate(json.loads(path.read_text()))  # a bad file fails at start

    async def load_directory(runtime: ServiceRuntime) -> None:
        async with runtime.pool.acquire() as conn:
            await load_seed_directory(conn, seed, clock())

    return load_directory


def build_app(settings: ReferralSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or ReferralSettings()
    ctx = Referrals(
        weights=Weights.load(settings.ranking_file),
        deadlines=Deadlines(settings.response_deadline_business_days, settings.outcome_deadline_days),
        clock=clock,
    )
    spec = ServiceSpec(
        name="referral",
        migrations=Path(__file__).parent / "migrations",
        publishes=[ReferralMade, ReferralStatusChanged, NetworkGapDetected, ReferralOverdue],
        handlers=handlers(ctx),
        background=[overdue_loop(clock, settings.overdue_tick_s)],
        startup=[seed_loader(settings.directory_file, clock)],
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        [router],
        description=(
            "Program directory (Open Referral HSDS), matching and closed-loop referrals (Gravity SDOH"
            " referral task). Consumes PlanUpdated, PatientRegistered, PatientUpdated, ConsentRecorded"
            " and ConsentRevoked; emits ReferralMade, ReferralStatusChanged, NetworkGapDetected and"
            " ReferralOverdue."
        ),
    )
    app.state.referrals = ctx
    return app


def run() -> None:
    app = build_app()
    serve(app, app.state.runtime)


if __name__ == "__main__":
    run()
