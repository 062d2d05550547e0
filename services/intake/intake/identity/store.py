"""How intake's patients are read with the data key that opens their details, and the rows written
before the details were sealed: found for the background step, sealed in batches, and searched for a
likely duplicate while any remain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_rows

# A patient as kept: the details sealed in ``identity`` (or, in a row not sealed yet, in the clear) and
# the patient's data key, read with the row (``identity.sealed.identified`` opens them).
PATIENT_COLUMNS = (
    "p.id, p.preferred_language, p.contact_preference, p.care_manager_id, p.safe_channels, p.created_at,"
    " p.updated_at, p.erased_at, p.identity, p.given_name, p.family_name, p.birth_date, p.phone, p.email,"
    " p.postal_code, k.version AS key_version, k.kek_id AS key_kek_id, k.wrapped AS key_wrapped"
)
PATIENTS_AND_KEYS = "patients p LEFT JOIN patient_keys k ON k.patient_id = p.id"
_IN_THE_CLEAR = "p.identity IS NULL AND p.erased_at IS NULL"  # 008's patients_in_the_clear


class IdentityStore(Store):
    async def in_the_clear(self, limit: int) -> list[asyncpg.Record]:
        """Up to ``limit`` patients not sealed yet, in id order, locked (those a request holds skipped),
        each with the agency, the name as it was normalised and the data key, if one was kept."""
        return await self.db.fetch(
            f"SELECT {PATIENT_COLUMNS}, p.agency_id, p.name_key FROM {PATIENTS_AND_KEYS}"
            f" WHERE {_IN_THE_CLEAR} ORDER BY p.id LIMIT $1 FOR UPDATE OF p SKIP LOCKED",
            limit,
        )

    async def any_in_the_clear(self) -> bool:
        """Whether any patient is not sealed yet, locked or not."""
        return bool(await self.db.fetchval(f"SELECT EXISTS (SELECT 1 FROM patients p WHERE {_IN_THE_CLEAR})"))

    async def seal(self, sealed: Sequence[dict[str, Any]], new_keys: Sequence[dict[str, Any]]) -> None:
        """Keep the new data keys, then each row's sealed details (id, identity, duplicate_key) in place
        of those in the clear; ``updated_at`` stays: the details did not change."""
        if new_keys:
            await insert_rows(self.db, "patient_keys", new_keys)  # a key kept meanwhile fails the batch
        await self.db.execute(
            "UPDATE patients p SET identity = s.identity::jsonb, duplicate_key = s.duplicate_key,"
            " given_name = NULL, family_name = NULL, name_key = NULL, birth_date = NULL, phone = NULL,"
            " email = NULL, postal_code = NULL"
            " FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS s(id, identity, duplicate_key)"
            " WHERE p.id = s.id",
            [r["id"] for r in sealed],
            [json.dumps(r["identity"]) for r in sealed],
            [r["duplicate_key"] for r in sealed],
        )

    async def clear_duplicate(
        self, agency_id: str, name_key: str, birth_date: date, but: uuid.UUID | None = None
    ) -> uuid.UUID | None:
        """A patient not sealed yet with this normalised name and birth date in the agency (not ``but``)."""
        found: uuid.UUID | None = await self.db.fetchval(
            "SELECT id FROM patients WHERE agency_id = $1 AND name_key = $2 AND birth_date = $3"
            " AND id IS DISTINCT FROM $4 LIMIT 1",
            agency_id,
            name_key,
            birth_date,
            but,
        )
        return found
