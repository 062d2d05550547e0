"""Patients' data keys and what they seal in intake (careloop_shared.crypto has the primitives).

A patient's data key is made at registration (or at the first assessment of a patient registered before
keys existed), kept only wrapped by the key-encryption key, and unwrapped per use. An assessment's
item-level answers are sealed with it, in intake's database and in `PatientAssessed`; the totals, needs
and risk stay in the clear for consumers and analysts.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from careloop_shared.crypto import Erased, KeyWrapper, Sealed, key_id, new_data_key, open_sealed, seal

FIELD = "assessment"  # the sealed part of an assessment: {"answers": ..., "items": [...]}


@dataclass(frozen=True)
class PatientKeys:
    wrapper: KeyWrapper

    def new(self, patient_id: uuid.UUID) -> tuple[dict[str, Any], bytes]:
        """A new data key: the row to keep (wrapped) and the key itself, for use now."""
        data_key = new_data_key()
        kek_id, wrapped = self.wrapper.wrap(data_key, patient_id.bytes)
        return {"patient_id": patient_id, "version": 1, "kek_id": kek_id, "wrapped": wrapped}, data_key

    def data_key(self, patient_id: uuid.UUID, row: Mapping[str, Any]) -> bytes:
        """The key a kept row wraps; ``Erased`` once it was destroyed."""
        if row["wrapped"] is None:
            raise Erased(f"patient {patient_id}'s data key was destroyed")
        return self.wrapper.unwrap(row["kek_id"], bytes(row["wrapped"]), patient_id.bytes)


def split(instrument_items: set[str], observations: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(item-level observations, totals) of a scored assessment."""
    items = [o for o in observations if o["code"] in instrument_items]
    return items, [o for o in observations if o["code"] not in instrument_items]


def seal_assessment(
    data_key: bytes, patient_id: uuid.UUID, version: int, answers: Mapping[str, Any], items: list[Any]
) -> Sealed:
    return seal(
        data_key, key_id(patient_id, version), patient_id, FIELD, {"answers": dict(answers), "items": items}
    )


def open_assessment(data_key: bytes, patient_id: uuid.UUID, sealed: Mapping[str, Any]) -> dict[str, Any]:
    opened: dict[str, Any] = open_sealed(data_key, Sealed.model_validate(sealed), patient_id, FIELD)
    return opened
