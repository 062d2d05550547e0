"""The notes of a referral's history: the free text referral keeps about a patient.

A note is kept sealed with the patient's data key (``careloop_shared.patient_keys``), asked of intake for
the referring agency, whose patient it is, whichever agency wrote or reads it. Erasure destroys the key,
so every copy (this database, its replicas and backups) becomes unreadable; a read shows then what it
shows after referral blanked the notes: none. Notes written before sealing keep their plaintext until
the background step seals them as here (``handlers.seal_notes_in_the_clear``) or erasure blanks it. A
use case that seals or opens a note finds the key asked already (``key_ahead``, before its unit of work
opens), so no pooled connection waits on intake; and no new note is written about a patient referral
knows was erased (410).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from careloop_shared.errors import Gone
from careloop_shared.patient_keys import Erased, PatientKeys, open_for, seal_for
from referral.store import Uow


class PatientErasedAlready(Gone):
    """The patient's data was erased: nothing more is written about them (HTTP 410)."""

    def __init__(self, erased_at: datetime) -> None:
        message = "the patient's data was erased: no new notes about them are kept"
        super().__init__(message, erased_at=erased_at.isoformat())


async def refuse_note_if_erased(uow: Uow, patient_id: uuid.UUID, note: str | None) -> None:
    """A note about an erased patient is refused (410); a change without one goes on, unasked."""
    if note is None:
        return
    erased_at = await uow.store.erasure.erased_at(patient_id)
    if erased_at is not None:
        raise PatientErasedAlready(erased_at)


def note_field(referral_id: uuid.UUID) -> str:
    """What a note is sealed as: of this referral, so a note moved to another referral does not open."""
    return f"referral/{referral_id}/note"


async def seal_note(keys: PatientKeys, referral: Any, note: str | None) -> dict[str, Any] | None:
    """The note about the referral's patient, sealed to store (None: no note); ``Erased`` once the
    patient's key was destroyed."""
    if note is None:
        return None
    field = note_field(referral["id"])
    return await seal_for(keys, referral["agency_id"], referral["patient_id"], field, note)


async def history_shown(keys: PatientKeys, referral: Any, history: Sequence[Any]) -> list[dict[str, Any]]:
    """The referral's history as read: each sealed note opened, one kept before sealing as it is, and
    none at all once the patient's key was destroyed. Intake is asked only when a note is sealed."""
    shown = [{k: v for k, v in h.items() if k != "note_sealed"} for h in history]
    if all(h["note_sealed"] is None for h in history):
        return shown
    field = note_field(referral["id"])
    agency_id, patient_id = referral["agency_id"], referral["patient_id"]
    try:
        for entry, h in zip(shown, history, strict=True):
            if h["note_sealed"] is not None:
                entry["note"] = await open_for(keys, agency_id, patient_id, field, h["note_sealed"])
    except Erased:
        for entry in shown:
            entry["note"] = None
    return shown
