"""The reads referral's FHIR routes need beyond the loop's and the directory's stores: a ServiceRequest
(the newest referral of a request the caller may see, with the same visibility as the loop's reads),
the organization running each program, and locations by id alone (FHIR reads ``Location/<id>``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from careloop_shared.db import Store
from referral.loop.store import _SENT_TO, _VISIBLE, REFERRAL_COLUMNS

LOCATION_COLUMNS = "id, organization_id, name, location_type, postal_code"


def _newest_of_each_request(sent_to_only: bool, where: str) -> str:
    """The newest referral the caller may see of each request that ``where`` selects."""
    visible = _SENT_TO if sent_to_only else _VISIBLE
    return (
        f"SELECT DISTINCT ON (service_request_id) {REFERRAL_COLUMNS} FROM referrals"
        f" WHERE {visible} AND {where} ORDER BY service_request_id, created_at DESC, id DESC"
    )


class FhirStore(Store):
    async def service_request(
        self, agency_id: str, service_request_id: uuid.UUID, *, sent_to_only: bool
    ) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            _newest_of_each_request(sent_to_only, "service_request_id = $2"), agency_id, service_request_id
        )

    async def service_requests(
        self, agency_id: str, patient_id: uuid.UUID, *, sent_to_only: bool, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        """A patient's requests the caller may see, oldest first (by their newest referral)."""
        newest = _newest_of_each_request(sent_to_only, "patient_id = $2")
        return await self.db.fetch(
            f"SELECT * FROM ({newest}) newest ORDER BY created_at, id LIMIT $3 OFFSET $4",
            agency_id,
            patient_id,
            limit,
            offset,
        )

    async def organizations_of(self, program_ids: Sequence[str]) -> dict[str, str]:
        """The directory organization running each program (a program id -> its organization's id)."""
        rows = await self.db.fetch(
            "SELECT id, organization_id FROM services WHERE id = ANY($1::text[])", list(set(program_ids))
        )
        return {r["id"]: r["organization_id"] for r in rows}

    async def get_location(self, location_id: str) -> asyncpg.Record | None:
        return await self.db.fetchrow(f"SELECT {LOCATION_COLUMNS} FROM locations WHERE id = $1", location_id)

    async def list_locations(
        self, organization_id: str | None, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        return await self.db.fetch(
            f"SELECT {LOCATION_COLUMNS} FROM locations WHERE ($1::text IS NULL OR organization_id = $1)"
            " ORDER BY id LIMIT $2 OFFSET $3",
            organization_id,
            limit,
            offset,
        )
