"""Which receiving agency may see which patient: one grant per referral, learnt from referral's events.

A grant is opened by ReferralMade and ended by the referral's closing; the two arrive on different
topics, so in either order: an end recorded first stays, and the ReferralMade arriving later only
fills in to whom and why. Reads are scoped to the caller's (receiving) agency.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from careloop_shared.coalesce import Many
from careloop_shared.db import Db, Store, insert_rows_returning
from intake.identity.store import PATIENT_COLUMNS, PATIENTS_AND_KEYS

GRANT_COLUMNS = (
    "g.referral_id, g.patient_id, p.agency_id AS patient_agency_id, g.receiving_agency_id, g.need,"
    " g.program_category, g.ended_at"
)
CONSENT_COLUMNS = "patient_id, purpose, agencies, program_categories, period_start, period_end, status"


class ReferredStore(Store):
    async def grant(self, row: dict[str, Any]) -> bool:
        """Record the referral's grant; True unless it was known already (then nothing changes)."""
        went_in: bool = await self.one(_grants, row)
        return went_in

    async def end(self, row: dict[str, Any]) -> bool:
        """Record the grant's end (the grant itself may be unknown yet); the first end stays."""
        went_in: bool = await self.one(_ends, row)
        return went_in

    async def open_grants(
        self, receiving_agency_id: str, patient_id: uuid.UUID | None = None
    ) -> list[asyncpg.Record]:
        """The open grants to the agency (of one patient, when given), oldest first, with whose
        patient each is (from intake's own patients: the event's word is not taken for it)."""
        return await self.db.fetch(
            f"SELECT {GRANT_COLUMNS} FROM referral_grants g JOIN patients p ON p.id = g.patient_id"
            " WHERE g.receiving_agency_id = $1 AND g.ended_at IS NULL"
            " AND ($2::uuid IS NULL OR g.patient_id = $2) ORDER BY g.granted_at, g.referral_id",
            receiving_agency_id,
            patient_id,
        )

    async def patients_seen(self, patient_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
        """These patients' rows with their data keys: the code shows a receiving agency the minimum."""
        return await self.db.fetch(
            f"SELECT {PATIENT_COLUMNS} FROM {PATIENTS_AND_KEYS} WHERE p.id = ANY($1::uuid[])",
            list(patient_ids),
        )

    async def consents_of(self, patient_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
        """These patients' consents, whatever their purpose and status (the domain decides)."""
        return await self.db.fetch(
            f"SELECT {CONSENT_COLUMNS} FROM consents WHERE patient_id = ANY($1::uuid[])", list(patient_ids)
        )


def _upserts(conflict: str) -> Many:
    """Grants (or ends) given at the same moment (the consumer's handlers side by side) in one
    statement; for each, whether it changed anything."""

    async def many(db: Db, rows: list[dict[str, Any]]) -> list[bool]:
        return await insert_rows_returning(db, "referral_grants", rows, key="referral_id", conflict=conflict)

    return many


_grants = _upserts(
    "(referral_id) DO UPDATE SET receiving_agency_id = EXCLUDED.receiving_agency_id,"
    " need = EXCLUDED.need, program_category = EXCLUDED.program_category,"
    " granted_at = EXCLUDED.granted_at WHERE referral_grants.granted_at IS NULL"
)
_ends = _upserts(
    "(referral_id) DO UPDATE SET ended_at = EXCLUDED.ended_at,"
    " end_status = EXCLUDED.end_status, end_reason = EXCLUDED.end_reason"
    " WHERE referral_grants.ended_at IS NULL"
)
