"""Composition root of record: settings -> context -> spec -> runtime -> app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from careloop_shared.app import create_app, serve
from careloop_shared.clock import Clock, system_clock
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from record.api import router
from record.checkpoints import TOPIC as CHECKPOINT_TOPIC
from record.checkpoints import checkpoints_every
from record.config import RecordContext, RecordSettings, refuse_development_keys_off_loopback
from record.consumers import HANDLERS
from record.store import APPLIED_IN, RecordStore


def build_app(settings: RecordSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or RecordSettings()
    spec = ServiceSpec(
        name="record",
        migrations=Path(__file__).parent / "migrations",
        context=RecordContext.from_settings(settings, clock),
        store=RecordStore,
        handlers=HANDLERS,
        background=[checkpoints_every(settings.checkpoint_every_s)],
        streams=[CHECKPOINT_TOPIC],
        applied_in=APPLIED_IN,
    )
    return create_app(
        ServiceRuntime(spec, settings),
        [router],
        description="The case record: every careloop event, appended once to a tamper-evident chain.",
    )


def run() -> None:
    settings = RecordSettings()
    refuse_development_keys_off_loopback(settings)
    serve(build_app(settings))


if __name__ == "__main__":
    run()
