"""No new free text about a patient whose data was erased: the use cases that take a note ask first."""

from __future__ import annotations

import uuid
from datetime import datetime

from careloop_shared.errors import Gone
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
