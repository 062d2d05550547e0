"""Composition root of referral."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from careloop_shared.contracts import ReferralMade
from careloop_shared.http import create_app, serve
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from careloop_shared.settings import ServiceSettings
from referral.api import router
from referral.consumers import handlers
from referral.domain.matching import Directory


class ReferralSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="REFERRAL_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "referral"
    port: int = 8003
    directory_file: Path | None = None


def build_app(settings: ReferralSettings | None = None) -> FastAPI:
    settings = settings or ReferralSettings()
    spec = ServiceSpec(
        name="referral",
        migrations=Path(__file__).parent / "migrations",
        publishes=[ReferralMade],
        handlers=handlers(Directory.load(settings.directory_file)),
    )
    return create_app(
        ServiceRuntime(spec, settings),
        [router],
        description="Program directory and referrals. Consumes PlanUpdated; emits ReferralMade.",
    )


def run() -> None:
    app = build_app()
    serve(app, app.state.runtime)


if __name__ == "__main__":
    run()
