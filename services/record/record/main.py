"""Composition root of record."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from careloop_shared import contracts  # noqa: F401 - registers every event type
from careloop_shared.events import REGISTRY
from careloop_shared.http import create_app, serve
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from careloop_shared.settings import ServiceSettings
from record.api import router
from record.domain.timeline import Summaries
from record.handlers import when_any_event_append_to_record


class RecordSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECORD_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "record"
    port: int = 8005


def build_app(settings: RecordSettings | None = None) -> FastAPI:
    settings = settings or RecordSettings()
    spec = ServiceSpec(
        name="record",
        migrations=Path(__file__).parent / "migrations",
        handlers=dict.fromkeys(REGISTRY.values(), when_any_event_append_to_record),
        context={"summaries": Summaries.load()},
    )
    return create_app(
        ServiceRuntime(spec, settings),
        [router],
        description="The case record: every careloop event, appended once to a tamper-evident chain.",
    )


def run() -> None:
    app = build_app()
    serve(app, app.state.runtime)


if __name__ == "__main__":
    run()
