"""An outcome's note kept sealed with the patient's data key (``careloop_shared.patient_keys``).

The note is the one free text followup keeps about a patient. It is sealed with the key intake holds for
the patient, so erasure (intake destroys the key) makes every copy unreadable: this database, its
replicas and its backups. Notes recorded before sealing keep their plaintext until the background step
seals them (``followup.sealing``) or erasure blanks them. The key is asked of intake before a unit of
work opens, so no pooled connection waits on intake.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from careloop_shared.patient_keys import Erased, PatientKeys, open_for, seal_for
from followup.domain.commands import RecordOutcome
from followup.store import FollowupStore


def note_field(follow_up_id: uuid.UUID) -> str:
    """What a note is sealed as: of this follow-up, so a sealed note moved to another one does not open."""
    return f"follow-up/{follow_up_id}/note"


@dataclass
class NotesInTheClear:
    """This replica's walk through the notes recorded before sealing (``followup.sealing``), not shared."""

    after: tuple[uuid.UUID, int] | None = None  # (follow-up, attempt) its last full batch ended at
    remain: bool = True  # whether notes in the clear may remain, as its last walk found
    unknown: int = 0  # notes passed over in this walk: intake knows not their patient
    reported_unknown: int = 0  # as the last walk reported them
    intake_down: bool = False  # said once, while intake cannot give keys


async def seal_note(keys: PatientKeys, follow_up: Mapping[str, Any], note: str) -> dict[str, Any]:
    """The note about the follow-up's patient, sealed to store; ``Erased`` once their key is destroyed."""
    field = note_field(follow_up["id"])
    return await seal_for(keys, follow_up["agency_id"], follow_up["patient_id"], field, note)


async def seal_note_ahead(
    keys: PatientKeys, store: FollowupStore, cmd: RecordOutcome
) -> dict[str, Any] | None:
    """The command's note sealed before its unit of work opens; None when it has none, and when the
    command's handler will refuse it (no such follow-up, or the patient was erased: said there)."""
    if cmd.note is None:
        return None
    follow_up = await store.get_follow_up(cmd.agency_id, cmd.follow_up_id)
    if follow_up is None:
        return None
    try:
        return await seal_note(keys, follow_up, cmd.note)
    except Erased:
        return None


async def opened_notes(
    keys: PatientKeys, follow_up: Mapping[str, Any], outcomes: Sequence[Mapping[str, Any]]
) -> list[str | None]:
    """Each outcome's note: opened when sealed, as kept when recorded before sealing; none at all once the
    patient's key was destroyed (as erasure shows them). Intake is asked only when a note is sealed."""
    if all(o["note_sealed"] is None for o in outcomes):
        return [o["note"] for o in outcomes]
    field = note_field(follow_up["id"])
    agency_id, patient_id = follow_up["agency_id"], follow_up["patient_id"]
    try:
        return [
            o["note"]
            if o["note_sealed"] is None
            else await open_for(keys, agency_id, patient_id, field, o["note_sealed"])
            for o in outcomes
        ]
    except Erased:
        return [None] * len(outcomes)
