"""Composition root of followup: settings -> context -> spec -> runtime -> app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from careloop_shared.app import create_app, serve
from careloop_shared.clock import Clock, system_clock
from careloop_shared.contracts import (
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    ReassessmentRequested,
)
from careloop_shared.runtime import ServiceRuntime, ServiceSpec, periodic
from followup.api import router
from followup.config import FollowupContext, FollowupSettings
from followup.consumers import HANDLERS
from followup.handlers import fire_due_and_overdue_follow_ups
from followup.store import FollowupStore


def build_app(settings: FollowupSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or FollowupSettings()
    spec = ServiceSpec(
        name="followup",
        migrations=Path(__file__).parent / "migrations",
        context=FollowupContext.from_settings(settings, clock),
        store=FollowupStore,
        publishes=[FollowUpScheduled, FollowUpDue, FollowUpCompleted, FollowUpOverdue, ReassessmentRequested],
        handlers=HANDLERS,
        background=[periodic(fire_due_and_overdue_follow_ups, every_s=settings.scheduler_tick_s)],
    )
    return create_app(
        ServiceRuntime(spec, settings),
        [router],
        description=(
            "Follow-up scheduling, outcomes and escalation. Consumes PlanUpdated, ReferralMade and"
            " ReferralStatusChanged; emits FollowUpScheduled, FollowUpDue, FollowUpCompleted,"
            " FollowUpOverdue and ReassessmentRequested."
        ),
    )


def run() -> None:
    serve(build_app())


if __name__ == "__main__":
    run()
