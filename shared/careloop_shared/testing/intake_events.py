"""What intake says of a patient, as events, for tests of the services that keep a copy of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from careloop_shared.contracts import (
    ContactPreference,
    Need,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    RiskLevel,
)

REGISTERED_AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def registered(patient: uuid.UUID, **fields: Any) -> PatientRegistered:
    """A registration at ``REGISTERED_AT`` with agency-a, in Spanish, by text; ``fields`` change it."""
    given = {"preferred_language": "es", "contact_preference": ContactPreference.text, **fields}
    return PatientRegistered(patient_id=patient, agency_id="agency-a", registered_at=REGISTERED_AT, **given)


def updated(patient: uuid.UUID, language: str, at: datetime, **fields: Any) -> PatientUpdated:
    """The patient's language changed at ``at`` (contact by phone); ``fields`` change it."""
    return PatientUpdated(
        patient_id=patient,
        agency_id="agency-a",
        preferred_language=language,
        contact_preference=fields.pop("contact_preference", ContactPreference.phone),
        changed_fields=["preferred_language"],
        updated_at=at,
        **fields,
    )


def depression_found(
    patient: uuid.UUID, *, agency: str = "agency-a", at: datetime = REGISTERED_AT
) -> PatientAssessed:
    """A PHQ-2 at ``at`` that found depression, moderate risk."""
    return PatientAssessed(
        patient_id=patient,
        agency_id=agency,
        assessment_id=uuid.uuid4(),
        instrument="phq-2",
        rules_version="test",
        needs=[Need(code="depression")],
        risk_level=RiskLevel("moderate"),
        assessed_at=at,
    )
