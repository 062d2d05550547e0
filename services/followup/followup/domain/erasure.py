"""Erasure in followup: once intake has erased a patient, no new free text about them is kept. Pure."""

from __future__ import annotations

from datetime import datetime

from careloop_shared.errors import Gone


class ErasedPatient(Gone):
    """The patient was erased: an outcome may still be recorded, but without a note."""

    def __init__(self, erased_at: datetime | None = None) -> None:
        when = {"erased_at": str(erased_at)} if erased_at is not None else {}  # unknown: not yet heard of
        super().__init__("this patient was erased: no new notes about them are kept", **when)


def refuse_note_if_erased(note: str | None, erased_at: datetime | None) -> None:
    """A note about an erased patient is refused, even an empty one; an outcome without one is not."""
    if note is not None and erased_at is not None:
        raise ErasedPatient(erased_at)


class NoContactWithErased(Gone):
    """The patient was erased: careloop no longer holds a way to reach them, so no contact is arranged."""

    def __init__(self, erased_at: datetime) -> None:
        super().__init__("this patient was erased: no contact can be arranged", erased_at=str(erased_at))


class NoWorkForErased(Gone):
    """The patient was erased: no new work about them is added to the task list."""

    def __init__(self, erased_at: datetime) -> None:
        super().__init__("this patient was erased: no to-do about them is added", erased_at=str(erased_at))
