"""An in-memory ``PatientKeys`` for unit tests: a key per patient made on first use, erasure by deletion."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from careloop_shared.crypto import Erased, key_id, new_data_key
from careloop_shared.errors import NotFound
from careloop_shared.patient_keys import DataKey, KeysUnavailable


@dataclass
class FakePatientKeys:
    keys: dict[uuid.UUID, DataKey] = field(default_factory=dict)
    erased: set[uuid.UUID] = field(default_factory=set)
    unknown: set[uuid.UUID] = field(default_factory=set)  # patients intake would answer 404 for
    down: bool = False  # intake unreachable
    asked: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    forgotten: list[uuid.UUID] = field(default_factory=list)

    async def key(self, agency_id: str, patient_id: uuid.UUID) -> DataKey:
        self.asked.append((agency_id, patient_id))
        if self.down:
            raise KeysUnavailable("intake is not answering (fake)")
        if patient_id in self.unknown:
            raise NotFound("patient not found")
        if patient_id in self.erased:
            raise Erased(f"patient {patient_id}'s data key was destroyed")
        if patient_id not in self.keys:
            self.keys[patient_id] = DataKey(key_id(patient_id), new_data_key())
        return self.keys[patient_id]

    def forget(self, patient_id: uuid.UUID) -> None:
        self.forgotten.append(patient_id)

    def erase(self, patient_id: uuid.UUID) -> None:
        """What intake's erasure does to the key: gone for good."""
        self.keys.pop(patient_id, None)
        self.erased.add(patient_id)
