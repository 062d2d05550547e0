"""The outcome notes kept in the clear since before notes were sealed, for the step that seals them
(``followup.sealing.handlers``): walked in (follow-up, attempt) order, from where a batch ended."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from careloop_shared.db import Store

# A note recorded before sealing: its plaintext kept, nothing sealed (009's follow_up_outcomes_in_the_clear).
_IN_THE_CLEAR = "o.note IS NOT NULL AND o.note_sealed IS NULL"
_AFTER = "(o.follow_up_id, o.attempt) > ($2::uuid, $3::int)"
_ORDER = "ORDER BY o.follow_up_id, o.attempt LIMIT $1"
# Before every outcome: attempts count from 1.
FROM_THE_START = (uuid.UUID(int=0), 0)


class SealingStore(Store):
    async def patients_in_the_clear(
        self, limit: int, after: tuple[uuid.UUID, int] | None
    ) -> list[asyncpg.Record]:
        """The patients (agency_id, patient_id) of the next ``limit`` notes in the clear after ``after``,
        nothing locked: whose keys to ask of intake before the rows are."""
        return await self.db.fetch(
            "SELECT DISTINCT f.agency_id, f.patient_id FROM (SELECT o.follow_up_id FROM follow_up_outcomes o"
            f" WHERE {_IN_THE_CLEAR} AND {_AFTER} {_ORDER}) o JOIN follow_ups f ON f.id = o.follow_up_id",
            limit,
            *(after or FROM_THE_START),
        )

    async def in_the_clear(self, limit: int, after: tuple[uuid.UUID, int] | None) -> list[asyncpg.Record]:
        """Up to ``limit`` notes in the clear after ``after``, in order, locked (those a request or another
        replica holds skipped), each with its follow-up's agency and patient."""
        # The batch is taken from 009's index first, then joined: joined first, a batch scans follow_ups.
        return await self.db.fetch(
            "WITH batch AS (SELECT o.follow_up_id, o.attempt, o.note FROM follow_up_outcomes o"
            f" WHERE {_IN_THE_CLEAR} AND {_AFTER} {_ORDER} FOR UPDATE SKIP LOCKED)"
            " SELECT b.follow_up_id, b.attempt, b.note, f.agency_id, f.patient_id FROM batch b"
            " JOIN follow_ups f ON f.id = b.follow_up_id ORDER BY b.follow_up_id, b.attempt",
            limit,
            *(after or FROM_THE_START),
        )

    async def left_in_the_clear(self) -> int:
        """How many notes are in the clear still, locked or not."""
        left: int = await self.db.fetchval(f"SELECT count(*) FROM follow_up_outcomes o WHERE {_IN_THE_CLEAR}")
        return left

    async def seal(self, notes: Sequence[dict[str, Any]]) -> None:
        """Each note (follow_up_id, attempt, note_sealed) kept sealed in place of its plaintext, in one
        statement; ``note_sealed`` None blanks it, as erasure does. Nothing else of the outcome changes."""
        await self.db.execute(
            "UPDATE follow_up_outcomes o SET note = NULL, note_sealed = s.sealed::jsonb"
            " FROM unnest($1::uuid[], $2::int[], $3::text[]) AS s(follow_up_id, attempt, sealed)"
            " WHERE o.follow_up_id = s.follow_up_id AND o.attempt = s.attempt",
            [n["follow_up_id"] for n in notes],
            [n["attempt"] for n in notes],
            [None if n["note_sealed"] is None else json.dumps(n["note_sealed"]) for n in notes],
        )
