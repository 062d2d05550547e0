"""A supervisor makes another care manager responsible for a patient (registration names the first)."""

from __future__ import annotations

from typing import Any, TypeAlias

from careloop_shared.outbox import UnitOfWork
from intake.config import IntakeContext
from intake.domain.care_manager import REASSIGNMENT, assignment, check_reassignment_reason
from intake.domain.commands import ReassignCareManager
from intake.handlers import PatientNotFound
from intake.store import IntakeStore

Uow: TypeAlias = UnitOfWork[IntakeStore]


async def reassign_care_manager(ctx: IntakeContext, uow: Uow, cmd: ReassignCareManager) -> dict[str, Any]:
    """The assignment now in force: the new one, or the current one when it names the same person."""
    check_reassignment_reason(ctx.care_manager, cmd.reason)
    # Lock the patient row: reassignments of one patient happen, and announce, one after another.
    patient = await uow.store.get_patient(cmd.agency_id, cmd.patient_id, lock=True)
    if patient is None:
        raise PatientNotFound()
    previous = patient["care_manager_id"]
    if previous == cmd.care_manager_id:
        current = await uow.store.care_manager.latest_assignment(cmd.patient_id)
        return (
            dict(current)
            if current is not None
            else {"patient_id": cmd.patient_id, "care_manager_id": previous}
        )
    assigned = assignment(
        patient_id=cmd.patient_id,
        agency_id=cmd.agency_id,
        care_manager_id=cmd.care_manager_id,
        previous_care_manager_id=previous,
        reason=REASSIGNMENT,
        reason_code=cmd.reason,
        at=ctx.clock(),
        by=cmd.by,
        by_role=cmd.by_role,
    )
    await uow.store.care_manager.reassign(assigned.row)
    uow.emit(assigned.event)
    return assigned.row
