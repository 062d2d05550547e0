"""Example events for the catalogue and for tests: every field of a contract filled with fixed fake values.

Pseudonymous UUIDs (the same one for the same kind of thing, so one patient's examples refer to each
other), one fixed time, and codes from the shipped rules data: never anything about a person.
"""

from __future__ import annotations

import json
import types
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from careloop_shared.events import Event, Message, new_message

_NAMESPACE = uuid.UUID("6d2b5d0e-3c1f-4f43-9a55-0c6a1e7b2f10")
_TIME = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

# Example values, looked up as "<Model>.<field>", then "<field>"; other fields get a UUID, the fixed time,
# the field's default or its first enum value. Codes and staff ids only: nothing about a person.
_VALUES: dict[str, Any] = {
    "agency_id": "agency-demo",
    "actor_id": "staff-0001",
    "actor_role": "care-manager",
    "care_manager_id": "staff-0001",
    "assignee_id": "staff-0001",
    "previous_care_manager_id": "staff-0002",
    "preferred_language": "en",
    "language": "en",
    "postal_area": "941",
    "need": "food-insecurity",
    "program_category": "food-assistance",
    "channel": "phone",
    "contact_preference": "phone",
    "risk_level": "moderate",
    "PatientUpdated.changed_fields": ["contact_preference"],
    "ConsentRecorded.purpose": "referral",
    "ConsentRecorded.agencies": ["agency-food-bank"],
    "ConsentRecorded.program_categories": ["food-assistance"],
    "PatientAssessed.instrument": "ahc-hrsn",
    "PatientAssessed.rules_version": "screening-2026.11.4",
    "PatientAssessed.total_score": None,
    "PatientAssessed.urgent_flags": [],
    "PatientAssessed.interpretation": None,
    "PatientAssessed.recommended_instruments": ["phq-2"],
    "Need.code": "food-insecurity",
    "Need.severity": None,
    "Observation.code": "88122-7",
    "Observation.value": "LA28397-0",
    "Observation.points": None,
    "Observation.interpretation": None,
    "CareManagerAssigned.reason": "reassignment",
    "PlanUpdated.version": 2,
    "PlanUpdated.status": "active",
    "PlanUpdated.reason": "assessment",
    "PlanUpdated.changed_by_role": "system",
    "Goal.description": "reliable-food-access",
    "Goal.target": "No food insecurity on rescreen",
    "Goal.achievement_status": "in-progress",
    "Intervention.kind": "referral",
    "Intervention.needs_referral": True,
    "Intervention.education_materials": [],
    "Intervention.service_code": None,
    "FollowUpCadence.every_days": 14.0,
    "PlanAlternativesProposed.service_code": "home-health-visits",
    "PlanAlternativesProposed.failed_criteria": ["community-referral-tried-first"],
    "PlanAlternativesProposed.alternatives": ["community-health-worker-visits"],
    "EducationProvided.materials": ["food-benefits"],
    "EducationProvided.material_versions": ["1"],
    "EducationProvided.channel": "in-person",
    "CareTeamChanged.change": "added",
    "CareTeamChanged.relationship": "family",
    "CareTeamChanged.role": "primary-support",
    "FollowUpDue.reason": "plan-cadence",
    "FollowUpScheduled.reason": "plan-cadence",
    "FollowUpScheduled.purpose": None,
    "FollowUpCancelled.reason": "patient-request",
    "AppointmentStatusChanged.from_status": None,
    "AppointmentStatusChanged.status": "booked",
    "FollowUpCompleted.attempt": 1,
    "FollowUpCompleted.barriers": ["transportation"],
    "FollowUpCompleted.next_step": "continue-plan",
    "GoalProgress.progress": "improving",
    "ReassessmentRequested.reason": "not-reached",
    "TaskCause.event_type": "careloop.referral.referral_overdue.v1",
    "TaskCause.instrument": None,
    "TaskOpened.kind": "chase-referral",
    "TaskOpened.priority": "urgent",
    "TaskOpened.assignee_role": None,
    "TaskStatusChanged.from_status": "open",
    "TaskStatusChanged.to_status": "done",
    "TaskStatusChanged.reason": "resolved",
    "TaskEscalated.kind": "chase-referral",
    "TaskEscalated.to_role": "supervisor",
    "program_id": "prg-food-bank-central",
    "receiving_agency_id": "agency-food-bank",
    "ReferralMade.status": "requested",
    "ReferralMade.replaces_referral_id": None,
    "ReferralStatusChanged.from_status": "accepted",
    "ReferralStatusChanged.to_status": "completed",
    "ReferralStatusChanged.by_agency_id": "agency-food-bank",
    "ReferralStatusChanged.by_party": "target",
    "ReferralStatusChanged.reason": None,
    "ReferralOutcome.enrollment_status": "enrolled",
    "ReferralOutcome.reason": None,
    "ReferralOverdue.deadline": "response",
}


def _fake_uuid(name: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, name)


def _value(annotation: Any, owner: str, name: str) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:  # a type with its bounds (contracts.EventTime): the type's example
        return _value(args[0], owner, name)
    if origin in (Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)), owner, name)
    if origin is list:
        return [_value(args[0], owner, name)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return example_body(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return next(iter(annotation)).value
    if annotation is uuid.UUID:
        # One id per kind of thing, so the examples of one patient's events refer to each other.
        return _fake_uuid(f"{owner.lower()}_id" if name == "id" else name)
    if annotation is datetime:
        return _TIME
    if annotation is bool:
        return True
    if annotation in (int, float):
        return annotation(1)
    if annotation is str:
        return name.replace("_", "-")
    raise TypeError(f"no example value for {owner}.{name} ({annotation!r}): add one to _VALUES")


def example_body(model: type[BaseModel]) -> dict[str, Any]:
    """Every field of ``model`` filled with fake values (JSON-ready), optional ones included."""
    body: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        owned = f"{model.__name__}.{name}"
        if owned in _VALUES or name in _VALUES:
            body[name] = _VALUES[owned] if owned in _VALUES else _VALUES[name]
        elif field.default not in (None, PydanticUndefined):
            body[name] = field.default
        else:
            body[name] = _value(field.annotation, model.__name__, name)
    return json.loads(model.model_validate(body).model_dump_json())


def example_message(model: type[Event]) -> Message:
    event = model.model_validate(example_body(model))
    trace, span = _fake_uuid("trace").hex, _fake_uuid("span").hex[:16]
    return new_message(
        event,
        event_id=_fake_uuid(f"ce_id/{model.type}"),
        correlation_id=_fake_uuid("correlation"),
        causation_id=_fake_uuid("causation"),
        time=_TIME,
        traceparent=f"00-{trace}-{span}-01",
    )
