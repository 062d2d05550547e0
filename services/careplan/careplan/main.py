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
from careloop_shared.fhir_searches import serve_fhir
from careloop_shared.patient_keys import PatientKeys, http_patient_keys
from careloop_shared.runtime import ServiceRuntime, ServiceSpec, periodic
from careplan.config import CareplanContext, CareplanSettings
from careplan.consumers import HANDLERS
from careplan.education.api import router as education_router
from careplan.fhir.api import router as fhir_router
from careplan.necessity.api import router as necessity_router
from careplan.plans.api import router as plans_router
from careplan.store import CareplanStore
from careplan.team.api import router as team_router
from careplan.team.handlers import seal_free_text_in_the_clear


def build_app(
    settings: CareplanSettings | None = None, clock: Clock = system_clock, keys: PatientKeys | None = None
) -> FastAPI:
    """The app; ``keys`` replaces intake's (tests), else careplan asks intake and closes that at shutdown."""
    settings = settings or CareplanSettings()
    from_intake = None
    if keys is None:
        keys = from_intake = http_patient_keys(settings, "careplan")
    spec = ServiceSpec(
        name="careplan",
        migrations=Path(__file__).parent / "migrations",
        context=CareplanContext.from_settings(settings, keys, clock),
        store=CareplanStore,
        publishes=[PlanUpdated, PlanAlternativesProposed, EducationProvided, CareTeamChanged],
        handlers=HANDLERS,
        background=[periodic(seal_free_text_in_the_clear, every_s=settings.seal_tick_s)],
        closing=[from_intake.aclose] if from_intake is not None else [],
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
