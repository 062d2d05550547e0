"""Composition root of record: settings -> context -> spec -> runtime -> app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from careloop_shared.app import create_app, serve
from careloop_shared.clock import Clock, system_clock
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from record.api import router
from record.config import RecordContext, RecordSettings
from record.consumers import HANDLERS
from record.store import RecordStore


def build_app(settings: RecordSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or RecordSettings()
    spec = ServiceSpec(
        name="record",
        migrations=Path(__file__).parent / "migrations",
        context=RecordContext.from_settings(settings, clock),
        store=RecordStore,
        handlers=HANDLERS,
    )
    return create_app(
        ServiceRuntime(spec, settings),
        [router],
        description="The case record: every careloop event, appended once to a tamper-evident chain.",
    )


def run() -> None:
    serve(build_app())


if __name__ == "__main__":
    run()
