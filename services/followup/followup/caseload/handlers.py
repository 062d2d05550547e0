"""Caseloads: followup learns who is responsible for each patient, and moves their work when that changes.

The newest assignment wins (by when it was made), so a late, older event changes nothing. Follow-ups
need no moving: whose they are is read from the caseload whenever they are shown or fall due.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from careloop_shared.contracts import CareManagerAssigned, PatientRegistered
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import get_logger
from followup.config import FollowupContext
from followup.domain.task_rules import CARE_MANAGER
from followup.store import Uow

log = get_logger(__name__)


async def _learn(
    ctx: FollowupContext,
    uow: Uow,
    patient_id: uuid.UUID,
    agency_id: str,
    care_manager_id: str | None,
    assigned_at: datetime,
) -> None:
    row = {
        "patient_id": patient_id,
        "agency_id": agency_id,
        "care_manager_id": care_manager_id,
        "assigned_at": assigned_at,
    }
    if not await uow.store.caseload.learn_care_manager(row) or care_manager_id is None:
        return
    moved = await uow.store.tasks.move_to_care_manager(patient_id, care_manager_id, CARE_MANAGER, ctx.clock())
    if moved:
        log.info("open tasks moved to the patient's care manager", tasks=moved)


async def when_patient_registered_learn_care_manager(
    ctx: FollowupContext, uow: Uow, received: ReceivedEvent
) -> None:
    """A new patient, and the care manager registration made responsible (if any)."""
    patient = received.event
    assert isinstance(patient, PatientRegistered)
    await _learn(
        ctx, uow, patient.patient_id, patient.agency_id, patient.care_manager_id, patient.registered_at
    )


async def when_care_manager_assigned_move_caseload(
    ctx: FollowupContext, uow: Uow, received: ReceivedEvent
) -> None:
    """A (re)assignment newer than the one known: the patient's open care tasks go to the new care manager."""
    assigned = received.event
    assert isinstance(assigned, CareManagerAssigned)
    await _learn(
        ctx, uow, assigned.patient_id, assigned.agency_id, assigned.care_manager_id, assigned.assigned_at
    )
