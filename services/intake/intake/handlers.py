"""intake's use cases: one function each, ``(context, unit of work, command)``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeAlias

from careloop_shared.command_groups import shares_transactions
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
from careloop_shared.errors import Conflict, Gone, Invalid, NotFound
from careloop_shared.ids import new_id
from careloop_shared.outbox import UnitOfWork
from intake.config import IntakeContext
from intake.domain.care_manager import REGISTRATION, assignment, responsible_at_registration
from intake.domain.commands import AssessPatient, RecordConsent, RegisterPatient, RevokeConsent, UpdatePatient
from intake.domain.patients import contact_problems, normalised_name, postal_area, safe_channels
from intake.domain.scoring import score
from intake.erasure.keys import seal_assessment, split
from intake.identity.sealed import CLEAR, IDENTIFYING, identified, kept_key, seal_identity
from intake.store import IntakeStore

Uow: TypeAlias = UnitOfWork[IntakeStore]

# Changing these identifies the person differently; the rest are preferences and contact details.
_IDENTITY = ("given_name", "family_name", "birth_date")
ERASED = "this patient's identifying details and sealed data were erased"


class PatientNotFound(NotFound):
    """No such patient in the caller's agency (another agency's patient looks the same)."""

    def __init__(self) -> None:
        super().__init__("patient not found")


class LikelyDuplicate(Conflict):
    """Same normalised name and birth date as a patient the agency already has."""

    def __init__(self, existing_id: uuid.UUID) -> None:
        super().__init__("likely duplicate of an existing patient", existing_id=existing_id)


class InvalidChange(Invalid):
    """The change would leave the patient's details inconsistent."""

    def __init__(self, reason: str) -> None:
        super().__init__([{"loc": ["body"], "type": "invalid_change", "msg": reason}])


@shares_transactions  # a new patient's rows; the insert goes with the others' (store.insert_patient)
async def register_patient(ctx: IntakeContext, uow: Uow, cmd: RegisterPatient) -> uuid.UUID:
    care_manager_id = responsible_at_registration(ctx.care_manager, cmd.care_manager_id, cmd.by, cmd.by_role)
    channels = safe_channels(cmd.safe_channels)
    patient_id, at = uuid.uuid4(), ctx.clock()
    name_key = normalised_name(cmd.given_name, cmd.family_name)
    await _no_duplicate_in_the_clear(ctx, uow, cmd.agency_id, name_key, cmd.birth_date)
    key, data_key = ctx.keys.new(patient_id)  # the data key that seals the patient's details and data
    details = {f: getattr(cmd, f) for f in IDENTIFYING}
    existing = await uow.store.insert_patient(
        {
            "id": patient_id,
            "agency_id": cmd.agency_id,
            "identity": seal_identity(data_key, patient_id, key["version"], details).model_dump(),
            "duplicate_key": ctx.blind_index.likely_duplicate(cmd.agency_id, name_key, cmd.birth_date),
            "preferred_language": cmd.preferred_language,
            "contact_preference": cmd.contact_preference.value,
            "care_manager_id": care_manager_id,
            "safe_channels": channels,
            "created_at": at,
            "updated_at": at,
            "registered_by": cmd.by,
            "registered_by_role": cmd.by_role,
        }
    )
    if existing is not None:
        raise LikelyDuplicate(existing)
    await uow.store.keys.keep({**key, "agency_id": cmd.agency_id, "created_at": at})
    uow.emit(
        PatientRegistered(
            patient_id=patient_id,
            agency_id=cmd.agency_id,
            preferred_language=cmd.preferred_language,
            contact_preference=cmd.contact_preference,
            postal_area=postal_area(cmd.postal_code),
            safe_channels=channels,
            care_manager_id=care_manager_id,
            registered_at=at,
            actor_id=cmd.by,
            actor_role=cmd.by_role,
        )
    )
    assigned = assignment(
        patient_id=patient_id,
        agency_id=cmd.agency_id,
        care_manager_id=care_manager_id,
        previous_care_manager_id=None,
        reason=REGISTRATION,
        at=at,
        by=cmd.by,
        by_role=cmd.by_role,
    )
    await uow.store.care_manager.record_assignment(assigned.row)
    uow.emit(assigned.event)
    return patient_id


async def update_patient(ctx: IntakeContext, uow: Uow, cmd: UpdatePatient) -> dict[str, Any]:
    kept = await uow.store.get_patient(cmd.agency_id, cmd.patient_id, lock=True)
    if kept is None:
        raise PatientNotFound()
    if kept["erased_at"] is not None:  # nothing identifying is kept again
        raise Gone(ERASED)
    [current] = identified(ctx.keys, [kept])
    for required in (*_IDENTITY, "preferred_language", "contact_preference"):
        if required in cmd.changes and cmd.changes[required] is None:
            raise InvalidChange(f"{required} cannot be cleared")
    merged = {**current, **cmd.changes}
    if "safe_channels" in cmd.changes:
        merged["safe_channels"] = safe_channels(cmd.changes["safe_channels"])
    merged["contact_preference"] = ContactPreference(merged["contact_preference"]).value
    problems = contact_problems(merged["contact_preference"], merged["phone"], merged["email"])
    if problems:
        raise InvalidChange(problems[0])
    changes = {k: merged[k] for k in cmd.changes if merged[k] != current[k]}
    if not changes:
        return current
    at = ctx.clock()
    by = {"updated_by": cmd.by, "updated_by_role": cmd.by_role}
    writes = {k: v for k, v in changes.items() if k not in IDENTIFYING}
    unsealed = kept["identity"] is None  # written before details were sealed: sealed now
    if unsealed or set(changes) & set(IDENTIFYING):  # the details are sealed anew
        data_key, version = await _data_key(ctx, uow, cmd.agency_id, kept, at)
        sealed = seal_identity(data_key, cmd.patient_id, version, merged)
        writes.update(dict.fromkeys(CLEAR), identity=sealed.model_dump())
    if unsealed or set(changes) & set(_IDENTITY):
        birth_date = merged["birth_date"]
        name_key = normalised_name(merged["given_name"], merged["family_name"])
        if set(changes) & set(_IDENTITY):
            await _no_duplicate_in_the_clear(ctx, uow, cmd.agency_id, name_key, birth_date, cmd.patient_id)
        writes["duplicate_key"] = ctx.blind_index.likely_duplicate(cmd.agency_id, name_key, birth_date)
    other = await uow.store.update_patient(cmd.patient_id, {**writes, **by}, at)
    if other is not None:
        raise LikelyDuplicate(other)
    changed = sorted(changes)
    uow.emit(
        PatientUpdated(
            patient_id=cmd.patient_id,
            agency_id=cmd.agency_id,
            preferred_language=merged["preferred_language"],
            contact_preference=ContactPreference(merged["contact_preference"]),
            postal_area=postal_area(merged["postal_code"]),
            safe_channels=merged["safe_channels"],  # the current list, changed or not
            changed_fields=changed,
            updated_at=at,
            actor_id=cmd.by,
            actor_role=cmd.by_role,
        )
    )
    return {**merged, **by, "updated_at": at}


@shares_transactions  # one patient's rows; its lock and write go with the others' (store.get_patient)
async def record_consent(ctx: IntakeContext, uow: Uow, cmd: RecordConsent) -> uuid.UUID:
    if await uow.store.get_patient(cmd.agency_id, cmd.patient_id, lock=True) is None:
        raise PatientNotFound()
    consent_id, at = new_id(), ctx.clock()
    period_start = cmd.period_start or at
    recorded = ConsentRecorded(
        patient_id=cmd.patient_id,
        agency_id=cmd.agency_id,
        consent_id=consent_id,
        purpose=cmd.purpose,
        agencies=cmd.agencies,
        program_categories=cmd.program_categories,
        period_start=period_start,
        period_end=cmd.period_end,
        recorded_at=at,
        actor_id=cmd.by,
        actor_role=cmd.by_role,
    )
    await uow.store.insert_consent(
        {
            **recorded.model_dump(exclude={"consent_id", "actor_id", "actor_role"}),
            "id": consent_id,
            "recorded_by": cmd.by,
            "recorded_by_role": cmd.by_role,
        }
    )
    uow.emit(recorded)
    return consent_id


async def revoke_consent(ctx: IntakeContext, uow: Uow, cmd: RevokeConsent) -> dict[str, Any]:
    consent = await uow.store.get_consent(cmd.agency_id, cmd.patient_id, cmd.consent_id, lock=True)
    if consent is None:
        raise NotFound("consent not found")
    if consent["status"] == "revoked":
        return dict(consent)  # revoking twice is revoking once
    revoked = await uow.store.revoke_consent(cmd.consent_id, ctx.clock(), cmd.by, cmd.by_role)
    uow.emit(
        ConsentRevoked(
            patient_id=cmd.patient_id,
            agency_id=cmd.agency_id,
            consent_id=cmd.consent_id,
            revoked_at=revoked["revoked_at"],
            actor_id=cmd.by,
            actor_role=cmd.by_role,
        )
    )
    return dict(revoked)


@shares_transactions  # one patient's rows; its lock and write go with the others' (store.get_patient)
async def assess_patient(ctx: IntakeContext, uow: Uow, cmd: AssessPatient) -> uuid.UUID:
    result = score(ctx.rules, cmd.instrument, cmd.answers)  # raises InvalidAnswers before any write
    # Lock the patient row: one patient's assessments commit, and so publish, one after another.
    patient = await uow.store.get_patient(cmd.agency_id, cmd.patient_id, lock=True)
    if patient is None:
        raise PatientNotFound()
    if patient["erased_at"] is not None:
        raise Gone(ERASED)
    assessment_id, assessed_at = new_id(), ctx.clock()
    # The item-level answers are sealed with the patient's data key, here and in the event.
    items, totals = split(set(ctx.rules.instruments[result.instrument].items), result.observations)
    data_key, version = await _data_key(ctx, uow, cmd.agency_id, patient, assessed_at)
    sealed = seal_assessment(data_key, cmd.patient_id, version, cmd.answers, items)
    await uow.store.insert_assessment(
        {
            "id": assessment_id,
            "patient_id": cmd.patient_id,
            "agency_id": cmd.agency_id,
            "instrument": result.instrument,
            "rules_version": result.rules_version,
            "answers": {},
            "observations": totals,
            "sealed": sealed.model_dump(),
            "total_score": result.total,
            "interpretation": result.interpretation,
            "needs": result.needs,
            "risk_level": result.risk_level,
            "urgent_flags": result.urgent_flags,
            "recommended_instruments": result.recommended_instruments,
            "assessed_at": assessed_at,
            "assessed_by": cmd.by,
            "assessed_by_role": cmd.by_role,
        }
    )
    uow.emit(
        PatientAssessed(
            patient_id=cmd.patient_id,
            agency_id=cmd.agency_id,
            assessment_id=assessment_id,
            instrument=result.instrument,
            rules_version=result.rules_version,
            total_score=result.total,
            interpretation=result.interpretation,
            needs=[Need(**n) for n in result.needs],
            risk_level=RiskLevel(result.risk_level),
            urgent_flags=result.urgent_flags,
            recommended_instruments=result.recommended_instruments,
            observations=[Observation(**o) for o in totals],
            sealed=sealed,
            assessed_at=assessed_at,
            actor_id=cmd.by,
            actor_role=cmd.by_role,
        )
    )
    return assessment_id


async def _data_key(
    ctx: IntakeContext, uow: Uow, agency_id: str, patient: Mapping[str, Any], at: Any
) -> tuple[bytes, int]:
    """The patient's data key (read with their row) and its version; one is made for a patient
    registered before keys existed."""
    kept = kept_key(patient)
    if kept is not None:
        return ctx.keys.data_key(patient["id"], kept), kept["version"]
    row, data_key = ctx.keys.new(patient["id"])
    await uow.store.keys.keep({**row, "agency_id": agency_id, "created_at": at})
    return data_key, row["version"]


async def _no_duplicate_in_the_clear(
    ctx: IntakeContext, uow: Uow, agency_id: str, name_key: str, birth_date: Any, but: Any = None
) -> None:
    """While rows not sealed yet may remain, a likely duplicate among them is refused too (the blind
    index finds those sealed)."""
    if ctx.in_the_clear.remain:
        other = await uow.store.identity.clear_duplicate(agency_id, name_key, birth_date, but)
        if other is not None:
            raise LikelyDuplicate(other)
