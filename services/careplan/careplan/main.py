"""Composition root of careplan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from careloop_shared.contracts import PlanUpdated
from careloop_shared.http import create_app, serve
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from careloop_shared.settings import ServiceSettings
from careplan.api import router
from careplan.consumers import handlers
from careplan.domain.planning import PlanLibrary


class CareplanSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAREPLAN_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "careplan"
    port: int = 8002
    plan_library: Path | None = None


def build_app(settings: CareplanSettings | None = None) -> FastAPI:
    settings = settings or CareplanSettings()
    spec = ServiceSpec(
        name="careplan",
        migrations=Path(__file__).parent / "migrations",
        publishes=[PlanUpdated],
        handlers=handlers(PlanLibrary.load(settings.plan_library)),
    )
    return create_app(
        ServiceRuntime(spec, settings),
        [router],
        description="Care plans. Consumes PatientAssessed; emits PlanUpdated.",
    )


def run() -> None:
    app = build_app()
    serve(app, app.state.runtime)


if __name__ == "__main__":
    run()
