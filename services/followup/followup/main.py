"""Composition root of followup."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from careloop_shared.contracts import (
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    ReassessmentRequested,
)
from careloop_shared.http import create_app, serve
from careloop_shared.runtime import ServiceRuntime, ServiceSpec
from careloop_shared.settings import ServiceSettings
from followup.api import router
from followup.consumers import handlers
from followup.domain.rules import FollowUpRules
from followup.domain.schedule import Clock, system_clock
from followup.scheduler import scheduler_loop


class FollowupSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="FOLLOWUP_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "followup"
    port: int = 8004
    scheduler_tick_s: float = 1.0
    rules_file: Path | None = None


def build_app(
    settings: FollowupSettings | None = None,
    clock: Clock = system_clock,
    rules: FollowUpRules | None = None,
) -> FastAPI:
    settings = settings or FollowupSettings()
    rules = rules or FollowUpRules.load(settings.rules_file)
    spec = ServiceSpec(
        name="followup",
        migrations=Path(__file__).parent / "migrations",
        publishes=[FollowUpScheduled, FollowUpDue, FollowUpCompleted, FollowUpOverdue, ReassessmentRequested],
        handlers=handlers(rules, clock),
        background=[scheduler_loop(clock, settings.scheduler_tick_s)],
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        [router],
        description=(
            "Follow-up scheduling, outcomes and escalation. Consumes PlanUpdated, ReferralMade and"
            " ReferralStatusChanged; emits FollowUpScheduled, FollowUpDue, FollowUpCompleted,"
            " FollowUpOverdue and ReassessmentRequested."
        ),
    )
    app.state.clock = clock
    app.state.rules = rules
    return app


def run() -> None:
    app = build_app()
    serve(app, app.state.runtime)


if __name__ == "__main__":
    run()
