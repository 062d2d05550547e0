"""The recruitment pipeline's tables: prospective providers and the history of their status.

Prospects hold no patient data. Their notes are the recruiters' free text, kept here only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row, update_by_id

PROSPECT_COLUMNS = (
    "id, name, agency_id, description, url, email, phone, program_categories, needs, languages,"
    " interpretation_services, postal_prefixes, owner_id, notes, status, status_reason, created_at,"
    " updated_at, changed_by, changed_by_role"
)
# What saving a prospect again changes: its details, never its status or when it was added.
_DETAILS = (
    *("name", "agency_id", "description", "url", "email", "phone", "program_categories", "needs"),
    *("languages", "interpretation_services", "postal_prefixes", "owner_id", "notes", "updated_at"),
    *("changed_by", "changed_by_role"),
)


class RecruitmentStore(Store):
    async def save_prospect(self, row: dict[str, Any]) -> bool:
        """Insert, or update the details of the prospect with the same id; True when created."""
        saved = await insert_row(
            self.db,
            "prospects",
            row,
            conflict="(id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in _DETAILS),
            returning="(xmax = 0) AS created",
        )
        assert saved is not None
        return bool(saved["created"])

    async def get_prospect(self, prospect_id: str, *, lock: bool = False) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"SELECT {PROSPECT_COLUMNS} FROM prospects WHERE id = $1" + (" FOR UPDATE" if lock else ""),
            prospect_id,
        )

    async def list_prospects(
        self,
        *,
        status: str | None,
        owner_id: str | None,
        category: str | None,
        limit: int,
        offset: int,
    ) -> list[asyncpg.Record]:
        return await self.db.fetch(
            f"SELECT {PROSPECT_COLUMNS} FROM prospects WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::text IS NULL OR owner_id = $2) AND ($3::text IS NULL OR program_categories ? $3)"
            " ORDER BY id LIMIT $4 OFFSET $5",
            status,
            owner_id,
            category,
            limit,
            offset,
        )

    async def set_status(
        self, prospect_id: str, *, status: str, reason: str | None, at: datetime, by: str, by_role: str
    ) -> None:
        changes = {"status": status, "status_reason": reason, "changed_by": by, "changed_by_role": by_role}
        await update_by_id(self.db, "prospects", prospect_id, changes, at=at)

    async def add_history(self, row: dict[str, Any]) -> None:
        await insert_row(self.db, "prospect_status_history", row)

    async def history_of(self, prospect_id: str) -> list[asyncpg.Record]:
        return await self.db.fetch(
            "SELECT from_status, to_status, reason, note, by_subject, by_role, by_agency_id, changed_at"
            " FROM prospect_status_history WHERE prospect_id = $1 ORDER BY position",
            prospect_id,
        )
