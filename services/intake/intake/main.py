"""Composition root of intake: settings -> context -> spec -> runtime -> app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from careloop_shared.app import create_app, serve
from careloop_shared.clock import Clock, system_clock
from careloop_shared.contracts import (
    CareManagerAssigned,
    ConsentRecorded,
    ConsentRevoked,
    PatientAssessed,
    PatientErased,
    PatientRegistered,
    PatientUpdated,
)
from careloop_shared.doors import document_codes
from careloop_shared.fhir_searches import serve_fhir
from careloop_shared.runtime import ServiceRuntime, ServiceSpec, periodic
from intake.api import router
from intake.care_manager.api import router as care_manager_router
from intake.config import IntakeContext, IntakeSettings, refuse_development_keks_off_loopback
from intake.consumers import HANDLERS
from intake.erasure.retention import apply_retention_rules
from intake.erasure.rotation import rewrap_data_keys
from intake.fhir.api import router as fhir_router
from intake.identity.handlers import seal_identities_in_the_clear
from intake.key_release.api import router as key_release_router
from intake.referred.api import router as referred_router
from intake.store import IntakeStore


def build_app(settings: IntakeSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or IntakeSettings()
    context = IntakeContext.from_settings(settings, clock)
    spec = ServiceSpec(
        name="intake",
        migrations=Path(__file__).parent / "migrations",
        context=context,
        store=IntakeStore,
        publishes=[
            PatientRegistered,
            PatientUpdated,
            CareManagerAssigned,
            ConsentRecorded,
            ConsentRevoked,
            PatientAssessed,
            PatientErased,
        ],
        handlers=HANDLERS,
        background=[
            periodic(rewrap_data_keys, every_s=settings.rewrap_tick_s),
            periodic(apply_retention_rules, every_s=settings.retention_tick_s),
            periodic(seal_identities_in_the_clear, every_s=settings.identity_seal_tick_s),
        ],
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        [router, care_manager_router, referred_router, key_release_router, fhir_router],
        description=(
            "Patients, their responsible care manager, consent and assessments. The only service holding"
            " identifying details; a receiving agency sees the minimum of the patients referred to it, while"
            " consent covers it. Consumes ReferralMade and ReferralStatusChanged; emits PatientRegistered,"
            " PatientUpdated, CareManagerAssigned, ConsentRecorded, ConsentRevoked, PatientAssessed and"
            " PatientErased (a patient's data erased by destroying their data key). Releases a patient's"
            " data key, audited, to the services its key-release rules name, to seal their notes with."
        ),
    )
    document_codes(
        app,
        {
            ("AssessmentIn", "instrument"): context.rules.instruments,
            ("ReassignmentIn", "reason"): context.care_manager.reassignment_reasons,
        },
    )
    return serve_fhir(app)


def run() -> None:
    settings = IntakeSettings()
    refuse_development_keks_off_loopback(settings)
    serve(build_app(settings))


if __name__ == "__main__":
    run()
