"""Composition root of referral: settings -> context -> spec -> runtime -> app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from careloop_shared.app import create_app, serve
from careloop_shared.clock import Clock, system_clock
from careloop_shared.contracts import (
    AppointmentStatusChanged,
    NetworkGapDetected,
    ReferralMade,
    ReferralOverdue,
    ReferralStatusChanged,
)
from careloop_shared.fhir_searches import serve_fhir
from careloop_shared.patient_keys import PatientKeys, http_patient_keys
from careloop_shared.runtime import ServiceRuntime, ServiceSpec, periodic
from referral.appointments import api as appointments_api
from referral.config import ReferralContext, ReferralSettings
from referral.consumers import HANDLERS
from referral.directory import api as directory_api
from referral.directory.handlers import load_seed_directory
from referral.erasure.handlers import seal_notes_in_the_clear
from referral.fhir import api as fhir_api
from referral.gaps import api as gaps_api
from referral.loop import api as loop_api
from referral.loop.handlers import flag_overdue_referrals
from referral.manual import api as manual_api
from referral.recruitment import api as recruitment_api
from referral.store import ReferralStore


def build_app(
    settings: ReferralSettings | None = None, clock: Clock = system_clock, keys: PatientKeys | None = None
) -> FastAPI:
    """The app; ``keys`` stands in for intake's patient data keys in tests (else they are asked of
    intake, whose client is closed at shutdown)."""
    settings = settings or ReferralSettings()
    intake_keys = None
    if keys is None:
        keys = intake_keys = http_patient_keys(settings, "referral")
    spec = ServiceSpec(
        name="referral",
        migrations=Path(__file__).parent / "migrations",
        context=ReferralContext.from_settings(settings, clock, keys=keys),
        store=ReferralStore,
        publishes=[
            ReferralMade,
            ReferralStatusChanged,
            NetworkGapDetected,
            ReferralOverdue,
            AppointmentStatusChanged,
        ],
        handlers=HANDLERS,
        background=[
            periodic(flag_overdue_referrals, every_s=settings.overdue_tick_s),
            periodic(seal_notes_in_the_clear, every_s=settings.seal_tick_s),
        ],
        startup=[load_seed_directory],
        closing=[intake_keys.aclose] if intake_keys is not None else [],
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        [
            loop_api.router,
            manual_api.router,
            appointments_api.router,
            directory_api.router,
            gaps_api.router,
            recruitment_api.router,
            fhir_api.router,
        ],
        description=(
            "Program directory (Open Referral HSDS), matching and closed-loop referrals (Gravity SDOH"
            " referral task), referrals made by hand, the network-gap report and the recruitment"
            " pipeline. Consumes PlanUpdated, PatientRegistered, PatientUpdated, ConsentRecorded"
            " and ConsentRevoked; emits ReferralMade, ReferralStatusChanged, NetworkGapDetected and"
            " ReferralOverdue, and AppointmentStatusChanged as the receiving agency books and records the"
            " patient's appointment. The notes of a referral's history are kept sealed with the patient's"
            " data key, asked of intake; those kept in the clear before are sealed in the background."
        ),
    )
    return serve_fhir(app)


def run() -> None:
    serve(build_app())


if __name__ == "__main__":
    run()
