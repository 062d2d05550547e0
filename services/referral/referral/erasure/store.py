"""Patients intake erased, and the one place in referral's tables holding free text about a patient:
the notes of their referrals' history (sealed with the patient's data key since 008; in the clear
before, until the background step seals them). Everything else about a patient here is a code, an id,
a date.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row
from careloop_shared.idempotency import forget_patient

# A note written before 008, in the clear (008's check: then not sealed too; 009 indexes them).
_IN_THE_CLEAR = "h.note IS NOT NULL"
_HISTORY_AND_REFERRALS = "referral_status_history h JOIN referrals r ON r.id = h.referral_id"

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

    async def notes_in_the_clear(self, after: int, limit: int) -> list[asyncpg.Record]:
        """Up to ``limit`` notes kept in the clear past position ``after``, in position order, unlocked:
        each one's position and whose patient it is (the referring agency and the patient)."""
        return await self.db.fetch(
            f"SELECT h.position, r.agency_id, r.patient_id FROM {_HISTORY_AND_REFERRALS}"
            f" WHERE {_IN_THE_CLEAR} AND h.position > $1 ORDER BY h.position LIMIT $2",
            after,
            limit,
        )

    async def lock_notes_in_the_clear(self, positions: Sequence[int]) -> list[asyncpg.Record]:
        """Those of the notes at ``positions`` still in the clear, locked until the transaction ends (those
        another transaction holds skipped), with their referral, text and patient."""
        return await self.db.fetch(
            "SELECT h.position, h.referral_id, h.note, r.agency_id, r.patient_id"
            f" FROM {_HISTORY_AND_REFERRALS} WHERE h.position = ANY($1::bigint[]) AND {_IN_THE_CLEAR}"
            " ORDER BY h.position FOR UPDATE OF h SKIP LOCKED",
            positions,
        )

    async def seal_notes(self, sealed: Sequence[dict[str, Any]]) -> None:
        """Each note (position, note_sealed) kept sealed in place of its plaintext, in one statement; a
        ``note_sealed`` of None blanks it (the patient's key was destroyed). ``changed_at`` stays."""
        await self.db.execute(
            "UPDATE referral_status_history h SET note = NULL, note_sealed = s.note_sealed"
            " FROM unnest($1::bigint[], $2::jsonb[]) AS s(position, note_sealed)"
            " WHERE h.position = s.position",
            [r["position"] for r in sealed],
            [r["note_sealed"] for r in sealed],
        )

    async def any_notes_in_the_clear(self) -> bool:
        """Whether any note is still kept in the clear, locked or not."""
        return bool(
            await self.db.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM referral_status_history h WHERE {_IN_THE_CLEAR})"
            )
        )
