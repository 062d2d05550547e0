"""Sealing, in the background, the outcome notes recorded before notes were sealed.

A migration has no key to seal with, so those notes keep their plaintext, and every backup taken since
holds it, until this step seals each with the patient's data key, bound to its follow-up as a new note is
(``followup.notes.seal_note``), so reads open it like any other. A batch per transaction, in (follow-up,
attempt) order from where this replica's last batch ended, the rows locked and those a request or another
replica holds skipped. The batch's keys are asked of intake before its rows are locked.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from careloop_shared.errors import NotFound
from careloop_shared.logging import get_logger
from careloop_shared.patient_keys import Erased, KeysUnavailable, PatientKeys, keys_ahead
from followup.config import FollowupContext
from followup.notes import NotesInTheClear, seal_note
from followup.store import Uow

log = get_logger(__name__)

KEYS_AT_ONCE = 8  # requests to intake in flight while a batch's keys are asked ahead
Patient = tuple[str, uuid.UUID]  # (agency_id, patient_id)


async def seal_notes_in_the_clear(ctx: FollowupContext, uow: Uow) -> bool:
    """Periodic: seal up to a batch of outcome notes kept in the clear. An erased patient's note is
    blanked, as erasure does; one of a patient intake does not know is left, and counted. Each batch
    moves past the rows it took, so rows it cannot seal never hold the walk up: True when a full batch
    was taken (more may wait). While intake cannot give keys the round ends with nothing changed."""
    walk, store = ctx.in_the_clear, uow.store.sealing
    try:
        ahead = await store.patients_in_the_clear(ctx.seal_batch_size, walk.after)
        said = await keys_ahead(
            ctx.keys, [(p["agency_id"], p["patient_id"]) for p in ahead], at_once=KEYS_AT_ONCE
        )
        unknown = {which for which, answer in said.items() if isinstance(answer, NotFound)}
        rows = await store.in_the_clear(ctx.seal_batch_size, walk.after)
        notes = await _sealed(ctx.keys, rows, unknown)
    except KeysUnavailable:
        if not walk.intake_down:
            log.warning("intake cannot give patients' data keys: notes in the clear wait for the next round")
        walk.intake_down = True
        return False
    walk.intake_down = False
    if notes:
        await store.seal(notes)
    blanked = sum(n["note_sealed"] is None for n in notes)
    walk.unknown += len(rows) - len(notes)
    log.debug("outcome notes in the clear sealed", sealed=len(notes) - blanked, blanked=blanked)
    if len(rows) == ctx.seal_batch_size:
        walk.after = (rows[-1]["follow_up_id"], rows[-1]["attempt"])
        return True
    _walked(walk, await store.left_in_the_clear())
    return False


async def _sealed(keys: PatientKeys, rows: Sequence[Any], unknown: set[Patient]) -> list[dict[str, Any]]:
    """Each row's note sealed (None: blank it, the patient's key is destroyed); a row of a patient intake
    knows not is left out. A row whose patient was not asked ahead (a replica took those) is asked now."""
    notes = []
    for row in rows:
        if (row["agency_id"], row["patient_id"]) in unknown:
            continue
        follow_up = {
            "id": row["follow_up_id"],
            "agency_id": row["agency_id"],
            "patient_id": row["patient_id"],
        }
        try:
            sealed: dict[str, Any] | None = await seal_note(keys, follow_up, row["note"])
        except Erased:
            sealed = None
        except NotFound:
            continue
        notes.append({"follow_up_id": row["follow_up_id"], "attempt": row["attempt"], "note_sealed": sealed})
    return notes


def _walked(walk: NotesInTheClear, left: int) -> None:
    """The walk reached the end: the next starts over. Say once that every note is sealed, and how many
    wait on a patient intake knows not when that changed (counts only)."""
    walk.after = None
    if left == 0 and walk.remain:
        log.info("every outcome note is sealed")
    walk.remain = left > 0
    if walk.unknown and walk.unknown != walk.reported_unknown:
        log.warning("outcome notes left in the clear: intake knows not their patient", notes=walk.unknown)
    walk.reported_unknown, walk.unknown = walk.unknown, 0
