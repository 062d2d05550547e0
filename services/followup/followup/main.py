"""Composition root of followup: settings -> context -> spec -> runtime -> app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from careloop_shared.app import create_app, serve
from careloop_shared.clock import Clock, system_clock
from careloop_shared.contracts import (
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    ReassessmentRequested,
    TaskEscalated,
    TaskOpened,
    TaskStatusChanged,
)
from careloop_shared.fhir_searches import serve_fhir
from careloop_shared.patient_keys import PatientKeys, http_patient_keys
from careloop_shared.runtime import ServiceRuntime, ServiceSpec, periodic
from followup.api import router
from followup.caseload import api as caseload_api
from followup.config import FollowupContext, FollowupSettings
from followup.consumers import HANDLERS
from followup.fhir.api import router as fhir_router
from followup.handlers import fire_due_and_overdue_follow_ups
from followup.sealing.handlers import seal_notes_in_the_clear
from followup.store import FollowupStore
from followup.tasks import api as tasks_api
from followup.tasks.handlers import escalate_overdue_tasks


def build_app(
    settings: FollowupSettings | None = None, clock: Clock = system_clock, keys: PatientKeys | None = None
) -> FastAPI:
    """The app; ``keys`` replaces intake's data keys in tests (else asked of intake, closed at shutdown)."""
    settings = settings or FollowupSettings()
    from_intake = None
    if keys is None:
        keys = from_intake = http_patient_keys(settings, "followup")
    spec = ServiceSpec(
        name="followup",
        migrations=Path(__file__).parent / "migrations",
        context=FollowupContext.from_settings(settings, clock, keys=keys),
        store=FollowupStore,
        publishes=[
            FollowUpScheduled,
            FollowUpDue,
            FollowUpCompleted,
            FollowUpOverdue,
            FollowUpCancelled,
            ReassessmentRequested,
            TaskOpened,
            TaskStatusChanged,
            TaskEscalated,
        ],
        handlers=HANDLERS,
        background=[
            periodic(
                fire_due_and_overdue_follow_ups,
                every_s=settings.scheduler_tick_s,
                workers=settings.scheduler_workers,
            ),
            periodic(escalate_overdue_tasks, every_s=settings.scheduler_tick_s),
            periodic(seal_notes_in_the_clear, every_s=settings.seal_tick_s),
        ],
        closing=[from_intake.aclose] if from_intake is not None else [],
    )
    app = create_app(
        ServiceRuntime(spec, settings),
        [router, tasks_api.router, caseload_api.router, fhir_router],
        description=(
            "Follow-up scheduling, outcomes and escalation; the care manager's task list and caseloads."
            " Consumes PlanUpdated, ReferralMade, ReferralStatusChanged, ReferralOverdue, NetworkGapDetected,"
            " PatientRegistered, CareManagerAssigned, PatientAssessed, PlanAlternativesProposed and"
            " PatientErased (an erased patient's notes are blanked, and no new one is kept); emits"
            " FollowUpScheduled, FollowUpDue, FollowUpCompleted, FollowUpOverdue, ReassessmentRequested,"
            " TaskOpened, TaskStatusChanged and TaskEscalated. Follow-ups and tasks as FHIR R4 Task under"
            " /fhir/R4/. An outcome's note is kept sealed with the patient's data key, asked of intake;"
            " notes recorded before are sealed in the background."
        ),
    )
    return serve_fhir(app)


def run() -> None:
    serve(build_app())


if __name__ == "__main__":
    run()
