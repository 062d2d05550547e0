"""intake's patient_keys: each patient's data key, wrapped; destroyed on erasure."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row


class KeyStore(Store):
    async def keep(self, row: dict[str, Any]) -> None:
        await insert_row(self.db, "patient_keys", row, conflict="(patient_id) DO NOTHING")

    async def get(self, agency_id: str, patient_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            "SELECT patient_id, version, kek_id, wrapped, erased_at FROM patient_keys"
            " WHERE patient_id = $1 AND agency_id = $2",
            patient_id,
            agency_id,
        )

    async def of_patients(
        self, agency_id: str, patient_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, asyncpg.Record]:
        rows = await self.db.fetch(
            "SELECT patient_id, version, kek_id, wrapped, erased_at FROM patient_keys"
            " WHERE patient_id = ANY($1::uuid[]) AND agency_id = $2",
            patient_ids,
            agency_id,
        )
        return {r["patient_id"]: r for r in rows}

    async def destroy(
        self, agency_id: str, patient_id: uuid.UUID, at: datetime, by: str, by_role: str, reason: str
    ) -> bool:
        """Destroy the wrapped key (once); whether this call destroyed it."""
        done = await self.db.fetchval(
            "UPDATE patient_keys SET wrapped = NULL, kek_id = NULL, erased_at = $3, erased_by = $4,"
            " erased_by_role = $5, erasure_reason = $6"
            " WHERE patient_id = $1 AND agency_id = $2 AND erased_at IS NULL RETURNING true",
            patient_id,
            agency_id,
            at,
            by,
            by_role,
            reason,
        )
        return bool(done)
