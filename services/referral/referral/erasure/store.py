"""Patients intake erased, and the one place in referral's tables holding free text about a patient:
the notes of their referrals' history (sealed with the patient's data key since 008; in the clear
before). Everything else about a patient here is a code, an id, a date.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from careloop_shared.db import Store, insert_row
from careloop_shared.idempotency import forget_patient

# A patient's erasure and a note being written about them take turns (advisory lock class; key: the
# patient's hash, a collision only making two patients' turns wait on each other).
ERASURE_LOCK = 0x65726173


class ErasureStore(Store):
    async def record_erasure(self, row: dict[str, Any]) -> None:
        """Remember that the patient was erased (the first word stands), under the patient's erasure lock
        until the transaction ends: a note being written about them commits first, then is blanked."""
        await self.db.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2::uuid::text))", ERASURE_LOCK, row["patient_id"]
        )
        await insert_row(self.db, "erased_patients", row, conflict="(patient_id) DO NOTHING")

    async def blank_notes_of(self, patient_id: uuid.UUID) -> None:
        """Every note of the patient's referrals' history, gone, sealed or not; the coded history stays."""
        await self.db.execute(
            "UPDATE referral_status_history h SET note = NULL, note_sealed = NULL FROM referrals r"
            " WHERE r.patient_id = $1 AND h.referral_id = r.id"
            " AND (h.note IS NOT NULL OR h.note_sealed IS NOT NULL)",
            patient_id,
        )
        await forget_patient(self.db, patient_id)  # answers kept for Idempotency-Key replays show notes

    async def has_sealed_notes(self, referral_id: uuid.UUID) -> bool:
        """Whether the referral's history holds a sealed note (reading it needs the patient's key)."""
        found: bool = await self.db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM referral_status_history"
            " WHERE referral_id = $1 AND note_sealed IS NOT NULL)",
            referral_id,
        )
        return found

    async def erased_at(self, patient_id: uuid.UUID) -> datetime | None:
        """When the patient was erased (None: not), taking the patient's erasure lock shared until the
        transaction ends: an erasure arriving meanwhile waits for the note written here, and blanks it."""
        await self.db.execute(
            "SELECT pg_advisory_xact_lock_shared($1, hashtext($2::uuid::text))", ERASURE_LOCK, patient_id
        )
        at: datetime | None = await self.db.fetchval(
            "SELECT erased_at FROM erased_patients WHERE patient_id = $1", patient_id
        )
        return at
