"""The reads followup's FHIR routes need beyond ``FollowupStore``: follow-ups searched by owner and by
several statuses at once (FHIR's ``ready`` is three of careloop's), how many match, and the last
attempt's outcome of each. Scoped to the caller's agency like every read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from careloop_shared.db import Store
from followup.store import COLUMNS

# A follow-up as /v1 shows it: with whose it is, the patient's care manager as followup knows them.
_FROM = "FROM follow_ups f LEFT JOIN patients p ON p.patient_id = f.patient_id"
_SHOWN = "SELECT " + ", ".join("f." + c.strip() for c in COLUMNS.split(","))
_SHOWN += f", p.care_manager_id AS assignee_id {_FROM}"
_MATCHING = (
    " WHERE f.agency_id = $1 AND ($2::uuid IS NULL OR f.patient_id = $2)"
    " AND ($3::text IS NULL OR p.care_manager_id = $3) AND ($4::text[] IS NULL OR f.status = ANY($4::text[]))"
)


@dataclass(frozen=True)
class Match:
    """What a follow-up search asks for: a patient's, a care manager's, in these statuses (None: any)."""

    patient_id: uuid.UUID | None = None
    owner: str | None = None
    statuses: Sequence[str] | None = None

    def args(self, agency_id: str) -> tuple[Any, ...]:
        statuses = None if self.statuses is None else list(self.statuses)
        return agency_id, self.patient_id, self.owner, statuses


class FhirStore(Store):
    async def search_follow_ups(
        self, agency_id: str, match: Match, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        """The agency's follow-ups that match, earliest due first (as ``/v1/follow-ups``)."""
        return await self.db.fetch(
            f"{_SHOWN}{_MATCHING} ORDER BY f.due_at, f.id LIMIT $5 OFFSET $6",
            *match.args(agency_id),
            limit,
            offset,
        )

    async def count_follow_ups(self, agency_id: str, match: Match) -> int:
        count: int = await self.db.fetchval(f"SELECT count(*) {_FROM}{_MATCHING}", *match.args(agency_id))
        return count

    async def last_outcomes(self, follow_up_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
        """Each follow-up's last attempt's coded outcome (never the note), by follow-up."""
        if not follow_up_ids:
            return {}
        rows = await self.db.fetch(
            "SELECT DISTINCT ON (follow_up_id) follow_up_id, attempt, reached, barriers, next_step"
            " FROM follow_up_outcomes WHERE follow_up_id = ANY($1::uuid[])"
            " ORDER BY follow_up_id, attempt DESC",
            list(follow_up_ids),
        )
        return {r["follow_up_id"]: r for r in rows}
