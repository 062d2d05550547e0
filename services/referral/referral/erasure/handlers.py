"""What referral does when intake erases a patient, and the notes written before notes were sealed."""

from __future__ import annotations

import uuid
from typing import Any

from careloop_shared.contracts import PatientErased
from careloop_shared.errors import NotFound
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import get_logger
from careloop_shared.patient_keys import Erased, KeysUnavailable, PatientKeys, keys_ahead, seal_for
from referral.config import NotesInTheClear, ReferralContext
from referral.erasure.notes import note_field
from referral.erasure.store import ErasureStore
from referral.store import Uow

log = get_logger(__name__)


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


async def seal_notes_in_the_clear(ctx: ReferralContext, uow: Uow) -> bool:
    """Periodic: seal the next batch of history notes kept in the clear (written before notes were
    sealed) as a new note is sealed, so reads open them alike; an erased patient's note is blanked, one
    whose patient intake does not know is left and counted. Each replica walks the notes in position
    order, a batch per transaction, past those it could not seal and those another transaction holds;
    True while its pass has more to look at. intake out of reach ends the round, to go on next tick."""
    state, erasure = ctx.notes_in_the_clear, uow.store.erasure
    batch = await erasure.notes_in_the_clear(state.after, ctx.seal_batch_size)
    sealed, left = [], 0
    if batch:
        try:
            # intake is asked before any row is locked; the client keeps the keys for the sealing below.
            said = await keys_ahead(ctx.keys, {_whose(row) for row in batch})
            erased = {which for which, answer in said.items() if isinstance(answer, Erased)}
            unknown = {which for which, answer in said.items() if isinstance(answer, NotFound)}
            for row in await erasure.lock_notes_in_the_clear([row["position"] for row in batch]):
                if _whose(row) in unknown:
                    left += 1
                    continue
                note_sealed = None if _whose(row) in erased else await _sealed(ctx.keys, row)
                sealed.append({"position": row["position"], "note_sealed": note_sealed})
        except KeysUnavailable:
            log.warning("intake could not be asked for patients' keys: history notes in the clear wait")
            return False
    if sealed:
        await erasure.seal_notes(sealed)
    blanked = sum(s["note_sealed"] is None for s in sealed)
    log.debug("history notes in the clear sealed", sealed=len(sealed) - blanked, blanked=blanked, left=left)
    state.unsealed += left
    if len(batch) == ctx.seal_batch_size:
        state.after = batch[-1]["position"]
        return True
    await _pass_ended(state, erasure)
    return False


def _whose(row: Any) -> tuple[str, uuid.UUID]:
    """Whose patient the note is about: the referring agency, whose key seals it, and the patient."""
    return row["agency_id"], row["patient_id"]


async def _sealed(keys: PatientKeys, row: Any) -> dict[str, Any] | None:
    """The note sealed as ``notes.seal_note`` seals a new one (the patient's key, bound to the referral);
    None, blanked as erasure leaves it, once the patient's key was destroyed."""
    try:
        return await seal_for(
            keys, row["agency_id"], row["patient_id"], note_field(row["referral_id"]), row["note"]
        )
    except Erased:
        return None


async def _pass_ended(state: NotesInTheClear, erasure: ErasureStore) -> None:
    """The next pass starts over; what is left is said once, in counts only."""
    remain = await erasure.any_notes_in_the_clear()  # those left, those a transaction holds, if any
    if state.remain and not remain:
        log.info("every note of the referrals' history is sealed")
    elif state.unsealed != state.reported:
        log.warning("history notes left in the clear: intake knows not their patient", count=state.unsealed)
    state.after, state.unsealed, state.reported, state.remain = 0, 0, state.unsealed, remain
