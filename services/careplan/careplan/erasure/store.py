"""The erasure wing's table: the patients intake erased, and when."""

from __future__ import annotations

import uuid
from datetime import datetime

from careloop_shared.db import Store


class ErasureStore(Store):
    async def record_erasure(self, patient_id: uuid.UUID, agency_id: str, at: datetime) -> None:
        """Remember the erasure; a later one changes nothing (the first time stands)."""
        await self.db.execute(
            "INSERT INTO erased_patients (patient_id, agency_id, erased_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (patient_id) DO NOTHING",
            patient_id,
            agency_id,
            at,
        )

    async def erased_at(self, patient_id: uuid.UUID) -> datetime | None:
        """When the patient was erased, or None (another agency's patient looks the same: None)."""
        at: datetime | None = await self.db.fetchval(
            "SELECT erased_at FROM erased_patients WHERE patient_id = $1", patient_id
        )
        return at
