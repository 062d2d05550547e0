"""careplan's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from functools import partial

from careloop_shared.consumer import Handler
from careloop_shared.contracts import PatientAssessed
from careloop_shared.events import Event
from careplan.domain.planning import PlanLibrary
from careplan.handlers import when_patient_assessed_revise_plan


def handlers(library: PlanLibrary) -> dict[type[Event], Handler]:
    return {PatientAssessed: partial(when_patient_assessed_revise_plan, library)}
