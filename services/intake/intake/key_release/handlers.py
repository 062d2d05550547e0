"""A patient's data key released to a service the key-release rules name (careplan, referral, followup)."""

from __future__ import annotations

from typing import TypeAlias

from careloop_shared.crypto import key_id
from careloop_shared.outbox import UnitOfWork
from careloop_shared.patient_keys import DataKey
from intake.config import IntakeContext
from intake.domain.commands import ReleaseDataKey
from intake.domain.key_release import check_release
from intake.erasure.handlers import PatientErasedAlready
from intake.handlers import PatientNotFound, _data_key
from intake.store import IntakeStore

Uow: TypeAlias = UnitOfWork[IntakeStore]


async def release_data_key(ctx: IntakeContext, uow: Uow, cmd: ReleaseDataKey) -> DataKey:
    """The patient's current data key and its id; one is made for a patient registered before keys
    existed, as their first assessment would make it."""
    check_release(ctx.key_release, cmd.by_role, cmd.by)  # before anything about the patient is read
    # Locked, as erasure locks it: no key is made beside an erasure that found none to destroy.
    patient = await uow.store.get_patient(cmd.agency_id, cmd.patient_id, lock=True)
    if patient is None:
        raise PatientNotFound()
    if patient["erased_at"] is not None:
        raise PatientErasedAlready(patient["erased_at"])
    data_key, version = await _data_key(ctx, uow, cmd.agency_id, patient, ctx.clock())
    return DataKey(key_id(cmd.patient_id, version), data_key)
