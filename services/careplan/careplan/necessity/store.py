"""The medical-necessity wing's table: service requests with the decision on each.
Every read is scoped to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row, patient_row, patient_rows

# requested_by holds the requester's role (its name from before people were recorded).
REQUEST_COLUMNS = (
    "id, patient_id, plan_id, service_code, met, failed_criteria, alternatives, criteria_version,"
    " chosen_alternative, chosen_at, created_at, requested_by_subject, requested_by AS requested_by_role,"
    " chosen_by_subject, chosen_by_role"
)


class NecessityStore(Store):
    async def insert_service_request(self, row: dict[str, Any]) -> None:
        await insert_row(self.db, "service_requests", row)

    async def get_service_request(
        self, agency_id: str, patient_id: uuid.UUID, request_id: uuid.UUID, *, lock: bool = False
    ) -> asyncpg.Record | None:
        return await patient_row(
            self.db,
            "service_requests",
            REQUEST_COLUMNS,
            agency_id=agency_id,
            patient_id=patient_id,
            row_id=request_id,
            lock=lock,
        )

    async def choose_alternative(
        self, request_id: uuid.UUID, alternative: str, at: datetime, by: str, by_role: str
    ) -> None:
        # service_requests keeps no updated_at: when the choice was made is chosen_at.
        await self.db.execute(
            "UPDATE service_requests SET chosen_alternative = $2, chosen_at = $3, chosen_by_subject = $4,"
            " chosen_by_role = $5 WHERE id = $1",
            request_id,
            alternative,
            at,
            by,
            by_role,
        )

    async def service_requests(self, agency_id: str, patient_id: uuid.UUID) -> list[asyncpg.Record]:
        return await patient_rows(
            self.db,
            "service_requests",
            REQUEST_COLUMNS,
            agency_id=agency_id,
            patient_id=patient_id,
            order_by="created_at, id",
        )
