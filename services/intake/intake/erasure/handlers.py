"""Erasure of a patient's identifying details and sealed data, and reading sealed assessments.

Erasure (a supervisor, with a reason, recorded): the patient's data key is destroyed, so every sealed
copy of their identifying details and item-level answers, in intake's database, in every topic, in the
case record, in backups and replicas, is unreadable at once; what a row not sealed yet keeps in the
clear is blanked, and so is the blind index that would confirm a guessed name and birth date. What the
case needs pseudonymously stays: the patient's id, agency, needs, risk, plans, referrals, the record's
hash chain and the analytics counts. `PatientErased` says it happened (no reason: free text).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from careloop_shared.contracts import PatientErased
from careloop_shared.crypto import Erased
from careloop_shared.errors import Gone
from careloop_shared.outbox import UnitOfWork
from intake.config import IntakeContext
from intake.erasure.keys import open_assessment
from intake.handlers import PatientNotFound
from intake.identity.sealed import CLEAR
from intake.store import IntakeStore

Uow: TypeAlias = UnitOfWork[IntakeStore]

BLANK = {**dict.fromkeys(CLEAR), "duplicate_key": None}


class PatientErasedAlready(Gone):
    def __init__(self, erased_at: datetime) -> None:
        super().__init__(
            "this patient's identifying details and sealed data were erased", erased_at=str(erased_at)
        )


async def kept_patient(
    store: IntakeStore, agency_id: str, patient_id: uuid.UUID, *, erased: bool = False
) -> Any:
    """The agency's patient, for a read; one whose details were erased answers 410 unless ``erased``
    allows it (what stays of them is read by their pseudonymous id)."""
    row = await store.get_patient(agency_id, patient_id)
    if row is None:
        raise PatientNotFound()
    if row["erased_at"] is not None and not erased:
        raise PatientErasedAlready(row["erased_at"])
    return row


@dataclass(frozen=True)
class ErasePatient:
    agency_id: str
    patient_id: uuid.UUID
    reason: str
    by: str
    by_role: str


async def erase_patient(ctx: IntakeContext, uow: Uow, cmd: ErasePatient) -> datetime:
    patient = await uow.store.get_patient(cmd.agency_id, cmd.patient_id, lock=True)
    if patient is None:
        raise PatientNotFound()
    if patient["erased_at"] is not None:
        raise PatientErasedAlready(patient["erased_at"])
    at = ctx.clock()
    destroyed = await uow.store.keys.destroy(
        cmd.agency_id, cmd.patient_id, at, cmd.by, cmd.by_role, cmd.reason
    )
    if not destroyed:  # registered before keys existed: record the erasure all the same
        await uow.store.keys.keep(
            {
                "patient_id": cmd.patient_id,
                "agency_id": cmd.agency_id,
                "kek_id": None,
                "wrapped": None,
                "created_at": at,
                "erased_at": at,
                "erased_by": cmd.by,
                "erased_by_role": cmd.by_role,
                "erasure_reason": cmd.reason,
            }
        )
    await uow.store.erase_patient_details(cmd.patient_id, BLANK, at)
    uow.emit(
        PatientErased(
            patient_id=cmd.patient_id,
            agency_id=cmd.agency_id,
            erased_at=at,
            actor_id=cmd.by,
            actor_role=cmd.by_role,
        )
    )
    return at


async def revealed(
    ctx: IntakeContext, store: IntakeStore, agency_id: str, rows: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Assessment rows with their sealed item-level answers opened back into ``observations`` (items
    first, as scored), and ``erased`` true where the patient's data key was destroyed."""
    shown = [dict(r) for r in rows]
    sealed_for = sorted({r["patient_id"] for r in shown if r.get("sealed") is not None})
    keys = await store.keys.of_patients(agency_id, sealed_for) if sealed_for else {}
    for row in shown:
        sealed = row.pop("sealed", None)
        row["erased"] = False
        if sealed is None:
            continue  # written before answers were sealed: kept in the clear
        key = keys.get(row["patient_id"])
        try:
            if key is None:
                raise Erased("no key kept")
            opened = open_assessment(ctx.keys.data_key(row["patient_id"], key), row["patient_id"], sealed)
        except Erased:
            row["erased"] = True
            continue
        row["observations"] = [*opened["items"], *row["observations"]]
    return shown
