"""The erasure wing's use case: intake erased a patient, so careplan forgets the free text it keeps about
them (care team members' names and contact details, the team's notes, sealed or from before in the
clear, and the answers kept for Idempotency-Key replays) and the patient's data key it may hold (intake
destroyed it: copies of the sealed text in backups stay unreadable), and refuses new free text from then
on (``careplan.domain.erasure``). The pseudonymous case goes on: plans, versions, relationships and
roles, service requests and education stay as they are."""

from __future__ import annotations

from careloop_shared.contracts import PatientErased
from careloop_shared.events import ReceivedEvent
from careplan.config import CareplanContext
from careplan.store import Uow


async def when_patient_erased_forget_free_text(
    ctx: CareplanContext, uow: Uow, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, PatientErased)
    ctx.keys.forget(event.patient_id)  # a cached copy of the key intake destroyed
    # Holding the plan orders this after a member or note being added (it is blanked too) and before the
    # next one, which finds the erasure and is refused.
    await uow.store.plans.lock_plan(event.patient_id)
    await uow.store.erasure.record_erasure(event.patient_id, event.agency_id, event.erased_at)
    await uow.store.team.forget_free_text(event.agency_id, event.patient_id)
    await uow.store.erasure.forget_replies(event.patient_id)  # an added member's answer names them
