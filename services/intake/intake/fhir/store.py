"""The reads intake's FHIR routes need beyond ``IntakeStore``: a consent by its id alone (FHIR reads
``Consent/<id>``, with no patient in the URL). Scoped to the caller's agency like every read."""

from __future__ import annotations

import uuid

import asyncpg

from careloop_shared.db import Store
from intake.store import CONSENT_COLUMNS


class FhirStore(Store):
    async def get_consent(self, agency_id: str, consent_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"SELECT {CONSENT_COLUMNS} FROM consents WHERE id = $1 AND agency_id = $2", consent_id, agency_id
        )
