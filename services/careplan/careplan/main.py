"""Composition root of careplan: settings -> context -> spec -> runtime -> app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from careloop_shared.app import create_app, serve
from careloop_shared.clock import Clock, system_clock
from careloop_shared.contracts import (
    CareTeamChanged,
    EducationProvided,
    PlanAlternativesProposed,
    PlanUpdated,
)
from careloop_shared.fhir import serve_fhir
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from careplan.config import CareplanContext, CareplanSettings
from careplan.consumers import HANDLERS
from careplan.education.api import router as education_router
from careplan.fhir.api import router as fhir_router
from careplan.necessity.api import router as necessity_router
from careplan.plans.api import router as plans_router
from careplan.store import CareplanStore
from careplan.team.api import router as team_router


def build_app(settings: CareplanSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or CareplanSettings()
    spec = ServiceSpec(
        name="careplan",
        migrations=Path(__file__).parent / "migrations",
        context=CareplanContext.from_settings(settings, clock),
        store=CareplanStore,
        publishes=[PlanUpdated, PlanAlternativesProposed, EducationProvided, CareTeamChanged],
        handlers=HANDLERS,
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        [plans_router, team_router, necessity_router, education_router, fhir_router],
        description=(
            "Personalised, versioned care plans, care teams, medical-necessity checks and patient"
            " education materials. Consumes"
            " PatientAssessed, PatientRegistered, PatientUpdated, ReferralStatusChanged,"
            " FollowUpCompleted and PatientErased;"
            " emits PlanUpdated, PlanAlternativesProposed, EducationProvided and CareTeamChanged."
        ),
    )
    return serve_fhir(app)


def run() -> None:
    serve(build_app())


if __name__ == "__main__":
    run()
