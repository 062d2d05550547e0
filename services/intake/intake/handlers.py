"""intake's use cases: one function each, taking a unit of work and the caller's agency."""

from __future__ import annotations

import uuid

from careloop_shared.contracts import Need, PatientAssessed, PatientRegistered, RiskLevel
from careloop_shared.outbox import UnitOfWork
from intake import store
from intake.domain.scoring import Rules, score
from intake.schemas import AssessmentIn, PatientIn


class PatientNotFound(Exception):
    """No such patient in the caller's agency (another agency's patient looks the same)."""


async def register_patient(uow: UnitOfWork, agency_id: str, cmd: PatientIn) -> uuid.UUID:
    patient_id = uuid.uuid4()
    registered_at = store.now_utc()
    await store.insert_patient(
        uow.conn,
        patient_id=patient_id,
        agency_id=agency_id,
        given_name=cmd.given_name,
        family_name=cmd.family_name,
        birth_date=cmd.birth_date,
        preferred_language=cmd.preferred_language,
    )
    uow.emit(
        PatientRegistered(
            patient_id=patient_id,
            agency_id=agency_id,
            preferred_language=cmd.preferred_language,
            registered_at=registered_at,
        )
    )
    return patient_id


async def assess_patient(
    uow: UnitOfWork, rules: Rules, agency_id: str, patient_id: uuid.UUID, cmd: AssessmentIn
) -> uuid.UUID:
    result = score(rules, cmd.instrument, cmd.answers)  # raises InvalidAnswers before any write
    # Lock the patient row: one patient's assessments commit, and so publish, one after another.
    found = await uow.conn.fetchval(
        "SELECT 1 FROM patients WHERE id = $1 AND agency_id = $2 FOR UPDATE", patient_id, agency_id
    )
    if not found:
        raise PatientNotFound
    assessment_id = uuid.uuid4()
    assessed_at = store.now_utc()
    await store.insert_assessment(
        uow.conn,
        id=assessment_id,
        patient_id=patient_id,
        agency_id=agency_id,
        instrument=result.instrument,
        rules_version=result.rules_version,
        answers=cmd.answers,
        total_score=result.total,
        needs=result.needs,
        risk_level=result.risk_level,
        urgent_flags=result.urgent_flags,
        assessed_at=assessed_at,
    )
    uow.emit(
        PatientAssessed(
            patient_id=patient_id,
            agency_id=agency_id,
            assessment_id=assessment_id,
            instrument=result.instrument,
            rules_version=result.rules_version,
            total_score=result.total,
            needs=[Need(**n) for n in result.needs],
            risk_level=RiskLevel(result.risk_level),
            urgent_flags=result.urgent_flags,
            assessed_at=assessed_at,
        )
    )
    return assessment_id
