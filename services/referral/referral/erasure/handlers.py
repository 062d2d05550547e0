"""What referral does when intake erases a patient."""

from __future__ import annotations

from careloop_shared.contracts import PatientErased
from careloop_shared.events import ReceivedEvent
from referral.config import ReferralContext
from referral.store import Uow


async def when_patient_erased_forget_notes(ctx: ReferralContext, uow: Uow, received: ReceivedEvent) -> None:
    """The notes written about the patient are blanked, sealed or not, new ones refused from now on
    (``notes``), and the patient's key no longer kept; their referrals and the coded history go on. A
    redelivery finds nothing left to change."""
    erased = received.event
    assert isinstance(erased, PatientErased)
    row = {"patient_id": erased.patient_id, "agency_id": erased.agency_id, "erased_at": erased.erased_at}
    await uow.store.erasure.record_erasure(row)
    await uow.store.erasure.blank_notes_of(erased.patient_id)
    ctx.keys.forget(erased.patient_id)
