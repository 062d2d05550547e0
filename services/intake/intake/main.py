"""Composition root of intake."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
)
from careloop_shared.http import create_app, serve
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from careloop_shared.settings import ServiceSettings
from intake.api import router


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTAKE_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "intake"
    port: int = 8001


SPEC = ServiceSpec(
    name="intake",
    migrations=Path(__file__).parent / "migrations",
    publishes=[PatientRegistered, PatientUpdated, ConsentRecorded, ConsentRevoked, PatientAssessed],
)


def build_app(settings: IntakeSettings | None = None) -> FastAPI:
    runtime = ServiceRuntime(SPEC, settings or IntakeSettings())
    return create_app(
        runtime,
        [router],
        description=(
            "Patients, consent and assessments. The only service holding identifying details. Emits"
            " PatientRegistered, PatientUpdated, ConsentRecorded, ConsentRevoked and PatientAssessed."
        ),
    )


def run() -> None:
    app = build_app()
    serve(app, app.state.runtime)


if __name__ == "__main__":
    run()
