"""Erasure in careplan: the free text a change would keep about a patient, refused once intake has erased
them. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from careloop_shared.errors import Gone

# Free text written about the patient, or naming or reaching a person of their care team (members'
# ``name`` and ``contact``, contributions' ``note``): blanked on erasure (``TeamStore.forget_free_text``),
# and refused after it. Relationships, roles, codes, ids and times stay: the case goes on pseudonymously.
FREE_TEXT = ("name", "contact", "note")


class ErasedPatient(Gone):
    """The patient was erased: careplan keeps no new name, contact detail or note about them."""

    def __init__(self, erased_at: datetime) -> None:
        super().__init__(
            "this patient was erased: no new names, contact details or notes are kept",
            erased_at=str(erased_at),
        )


def free_text_in(fields: Mapping[str, Any]) -> list[str]:
    """The free-text fields a command would write: those given a value (clearing one writes nothing)."""
    return [f for f in FREE_TEXT if fields.get(f) is not None]
