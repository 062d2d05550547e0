"""Composition root of careplan."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from careloop_shared.contracts import (
    CareTeamChanged,
    EducationProvided,
    PlanAlternativesProposed,
    PlanUpdated,
)
from careloop_shared.http import create_app, serve
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from careloop_shared.settings import ServiceSettings
from careplan.api import router
from careplan.consumers import handlers
from careplan.domain.necessity import NecessityCriteria
from careplan.domain.planning import PlanLibrary
from careplan.handlers import Planning


class CareplanSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAREPLAN_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "careplan"
    port: int = 8002
    plan_library: Path | None = None
    necessity_criteria: Path | None = None


def build_app(settings: CareplanSettings | None = None) -> FastAPI:
    settings = settings or CareplanSettings()
    planning = Planning(
        PlanLibrary.load(settings.plan_library), NecessityCriteria.load(settings.necessity_criteria)
    )
    spec = ServiceSpec(
        name="careplan",
        migrations=Path(__file__).parent / "migrations",
        publishes=[PlanUpdated, PlanAlternativesProposed, EducationProvided, CareTeamChanged],
        handlers=handlers(planning),
        context={"planning": planning},
    )
    return create_app(
        ServiceRuntime(spec, settings),
        [router],
        description=(
            "Personalised, versioned care plans, care teams and medical-necessity checks. Consumes"
            " PatientAssessed, PatientRegistered, PatientUpdated, ReferralStatusChanged and"
            " FollowUpCompleted;"
            " emits PlanUpdated, PlanAlternativesProposed, EducationProvided and CareTeamChanged."
        ),
    )


def run() -> None:
    app = build_app()
    serve(app, app.state.runtime)


if __name__ == "__main__":
    run()
