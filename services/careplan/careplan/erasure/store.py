"""The erasure wing's table: the patients intake erased, and when; and the kernel's answers kept for
Idempotency-Key replays, which can hold what a request sent about the patient (a member's name)."""

from __future__ import annotations

import uuid
from datetime import datetime

from careloop_shared.db import Store
from careloop_shared.idempotency import forget_patient


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

    async def forget_replies(self, patient_id: uuid.UUID) -> None:
        """Delete the answers kept for replaying requests about the patient (``Idempotency-Key``)."""
        await forget_patient(self.db, patient_id)
