"""What intake is asked to do: one command per use case, built by the API from a request.

Every command names the person asking (``by``: their identity provider's subject id, and ``by_role``),
so what they change is recorded as theirs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from careloop_shared.contracts import ContactChannel, ContactPreference


@dataclass(frozen=True)
class RegisterPatient:
    agency_id: str
    given_name: str
    family_name: str
    birth_date: date
    preferred_language: str
    contact_preference: ContactPreference
    by: str  # the person (token sub)
    by_role: str
    phone: str | None = None
    email: str | None = None
    postal_code: str | None = None
    care_manager_id: str | None = None  # None: the registering person, when their role works a caseload
    safe_channels: list[ContactChannel] | None = None  # None: the patient has not said


@dataclass(frozen=True)
class UpdatePatient:
    """Only the fields in ``changes`` change; ``None`` clears an optional contact detail."""

    agency_id: str
    patient_id: uuid.UUID
    changes: dict[str, Any]
    by: str
    by_role: str


@dataclass(frozen=True)
class RecordConsent:
    agency_id: str
    patient_id: uuid.UUID
    purpose: str
    agencies: list[str]
    program_categories: list[str]
    by: str
    by_role: str
    period_start: datetime | None = None  # now, when not given
    period_end: datetime | None = None


@dataclass(frozen=True)
class RevokeConsent:
    agency_id: str
    patient_id: uuid.UUID
    consent_id: uuid.UUID
    by: str
    by_role: str


@dataclass(frozen=True)
class AssessPatient:
    agency_id: str
    patient_id: uuid.UUID
    instrument: str
    answers: dict[str, Any]
    by: str
    by_role: str


@dataclass(frozen=True)
class ReassignCareManager:
    """Make another care manager responsible for the patient, for a coded reason when given."""

    agency_id: str
    patient_id: uuid.UUID
    care_manager_id: str
    by: str
    by_role: str
    reason: str | None = None


@dataclass(frozen=True)
class ReleaseDataKey:
    """A service asks for a patient's data key, acting for the patient's agency."""

    agency_id: str
    patient_id: uuid.UUID
    by: str  # the service's name (token sub)
    by_role: str
