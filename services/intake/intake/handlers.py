"""intake's use cases: one function each, taking a unit of work and the caller's agency."""

from __future__ import annotations

import uuid
from typing import Any

from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    ContactPreference,
    Need,
    Observation,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    RiskLevel,
)
from careloop_shared.logging import SafeMessageError
from careloop_shared.outbox import UnitOfWork
from intake import store
from intake.domain.patients import contact_problems, normalised_name, postal_area
from intake.domain.scoring import Rules, score
from intake.schemas import AssessmentIn, ConsentIn, PatientIn, PatientPatch

# Changing these identifies the person differently; the rest are preferences and contact details.
_IDENTITY = ("given_name", "family_name", "birth_date")


class PatientNotFound(SafeMessageError):
    """No such patient in the caller's agency (another agency's patient looks the same)."""


class ConsentNotFound(SafeMessageError):
    """No such consent for this patient in the caller's agency."""


class LikelyDuplicate(SafeMessageError):
    """Same normalised name and birth date as a patient the agency already has."""

    def __init__(self, existing_id: uuid.UUID) -> None:
        super().__init__("likely duplicate of an existing patient")
        self.existing_id = existing_id


class InvalidChange(SafeMessageError):
    """The change would leave the patient's details inconsistent."""


async def register_patient(uow: UnitOfWork, agency_id: str, cmd: PatientIn) -> uuid.UUID:
    patient_id, at = uuid.uuid4(), store.now_utc()
    existing = await store.insert_patient(
        uow.conn,
        {
            **cmd.model_dump(),
            "contact_preference": cmd.contact_preference.value,
            "id": patient_id,
            "agency_id": agency_id,
            "name_key": normalised_name(cmd.given_name, cmd.family_name),
            "at": at,
        },
    )
    if existing is not None:
        raise LikelyDuplicate(existing)
    uow.emit(
        PatientRegistered(
            patient_id=patient_id,
            agency_id=agency_id,
            preferred_language=cmd.preferred_language,
            contact_preference=cmd.contact_preference,
            postal_area=postal_area(cmd.postal_code),
            registered_at=at,
        )
    )
    return patient_id


async def update_patient(
    uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID, patch: PatientPatch
) -> dict[str, Any]:
    current = await store.get_patient(uow.conn, agency_id, patient_id, lock=True)
    if current is None:
        raise PatientNotFound("patient not found")
    requested = patch.model_dump(exclude_unset=True, mode="json")
    for required in (*_IDENTITY, "preferred_language", "contact_preference"):
        if required in requested and requested[required] is None:
            raise InvalidChange(f"{required} cannot be cleared")
    merged = {**dict(current), **patch.model_dump(exclude_unset=True)}
    merged["contact_preference"] = ContactPreference(merged["contact_preference"]).value
    problems = contact_problems(merged["contact_preference"], merged["phone"], merged["email"])
    if problems:
        raise InvalidChange(problems[0])
    changes = {k: merged[k] for k in requested if merged[k] != current[k]}
    if not changes:
        return dict(current)
    if set(changes) & set(_IDENTITY):
        changes["name_key"] = normalised_name(merged["given_name"], merged["family_name"])
        changes["birth_date"] = merged["birth_date"]
    at = store.now_utc()
    other = await store.update_patient(uow.conn, patient_id, changes, at)
    if other is not None:
        raise LikelyDuplicate(other)
    changed = sorted(k for k in changes if k != "name_key" and merged[k] != current[k])
    uow.emit(
        PatientUpdated(
            patient_id=patient_id,
            agency_id=agency_id,
            preferred_language=merged["preferred_language"],
            contact_preference=ContactPreference(merged["contact_preference"]),
            postal_area=postal_area(merged["postal_code"]),
            changed_fields=changed,
            updated_at=at,
        )
    )
    return {**merged, "updated_at": at}


async def record_consent(uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID, cmd: ConsentIn) -> uuid.UUID:
    if await store.get_patient(uow.conn, agency_id, patient_id, lock=True) is None:
        raise PatientNotFound("patient not found")
    consent_id, at = uuid.uuid4(), store.now_utc()
    period_start = cmd.period_start or at
    await store.insert_consent(
        uow.conn,
        {
            "id": consent_id,
            "patient_id": patient_id,
            "agency_id": agency_id,
            "purpose": cmd.purpose,
            "agencies": cmd.agencies,
            "program_categories": cmd.program_categories,
            "period_start": period_start,
            "period_end": cmd.period_end,
            "recorded_at": at,
        },
    )
    uow.emit(
        ConsentRecorded(
            patient_id=patient_id,
            agency_id=agency_id,
            consent_id=consent_id,
            purpose=cmd.purpose,
            agencies=cmd.agencies,
            program_categories=cmd.program_categories,
            period_start=period_start,
            period_end=cmd.period_end,
            recorded_at=at,
        )
    )
    return consent_id


async def revoke_consent(
    uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID, consent_id: uuid.UUID
) -> dict[str, Any]:
    consent = await store.get_consent(uow.conn, agency_id, patient_id, consent_id, lock=True)
    if consent is None:
        raise ConsentNotFound("consent not found")
    if consent["status"] == "revoked":
        return dict(consent)  # revoking twice is revoking once
    revoked = await store.revoke_consent(uow.conn, consent_id, store.now_utc())
    uow.emit(
        ConsentRevoked(
            patient_id=patient_id,
            agency_id=agency_id,
            consent_id=consent_id,
            revoked_at=revoked["revoked_at"],
        )
    )
    return dict(revoked)


async def assess_patient(
    uow: UnitOfWork, rules: Rules, agency_id: str, patient_id: uuid.UUID, cmd: AssessmentIn
) -> uuid.UUID:
    result = score(rules, cmd.instrument, cmd.answers)  # raises InvalidAnswers before any write
    # Lock the patient row: one patient's assessments commit, and so publish, one after another.
    if await store.get_patient(uow.conn, agency_id, patient_id, lock=True) is None:
        raise PatientNotFound("patient not found")
    assessment_id, assessed_at = uuid.uuid4(), store.now_utc()
    await store.insert_assessment(
        uow.conn,
        {
            "id": assessment_id,
            "patient_id": patient_id,
            "agency_id": agency_id,
            "instrument": result.instrument,
            "rules_version": result.rules_version,
            "answers": cmd.answers,
            "observations": result.observations,
            "total_score": result.total,
            "interpretation": result.interpretation,
            "needs": result.needs,
            "risk_level": result.risk_level,
            "urgent_flags": result.urgent_flags,
            "recommended_instruments": result.recommended_instruments,
            "assessed_at": assessed_at,
        },
    )
    uow.emit(
        PatientAssessed(
            patient_id=patient_id,
            agency_id=agency_id,
            assessment_id=assessment_id,
            instrument=result.instrument,
            rules_version=result.rules_version,
            total_score=result.total,
            interpretation=result.interpretation,
            needs=[Need(**n) for n in result.needs],
            risk_level=RiskLevel(result.risk_level),
            urgent_flags=result.urgent_flags,
            recommended_instruments=result.recommended_instruments,
            observations=[Observation(**o) for o in result.observations],
            assessed_at=assessed_at,
        )
    )
    return assessment_id
