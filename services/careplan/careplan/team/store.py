"""The care team wing's tables: members (named here only, never in events), who changed them, and their
contributions (notes are free text about the patient, kept here only). Names, contact details and notes
are kept sealed (``careplan.team.sealed``); rows from before keep them in the clear. Every read is scoped
to the caller's agency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row, patient_row, patient_rows, update_by_id

MEMBER_COLUMNS = (
    "id, patient_id, name, relationship, role, contact, sealed_details, status, created_at, updated_at,"
    " created_by_subject, created_by_role, updated_by_subject, updated_by_role"
)


class TeamStore(Store):
    async def insert_member(self, row: dict[str, Any]) -> asyncpg.Record:
        record = await insert_row(self.db, "care_team_members", row, returning=MEMBER_COLUMNS)
        assert record is not None
        return record

    async def get_member(
        self, agency_id: str, patient_id: uuid.UUID, member_id: uuid.UUID, *, lock: bool = False
    ) -> asyncpg.Record | None:
        return await patient_row(
            self.db,
            "care_team_members",
            MEMBER_COLUMNS,
            agency_id=agency_id,
            patient_id=patient_id,
            row_id=member_id,
            lock=lock,
        )

    async def update_member(
        self, member_id: uuid.UUID, changes: dict[str, Any], at: datetime
    ) -> asyncpg.Record:
        record = await update_by_id(
            self.db, "care_team_members", member_id, changes, at=at, returning=MEMBER_COLUMNS
        )
        assert record is not None
        return record

    async def care_team(self, agency_id: str, patient_id: uuid.UUID) -> list[asyncpg.Record]:
        return await patient_rows(
            self.db,
            "care_team_members",
            MEMBER_COLUMNS,
            agency_id=agency_id,
            patient_id=patient_id,
            order_by="created_at, id",
        )

    async def insert_contribution(self, row: dict[str, Any]) -> None:
        await insert_row(self.db, "contributions", row)

    async def contributions(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        """A page of the patient's contributions, oldest first, with the member's relationship and role."""
        return await self.db.fetch(
            "SELECT c.id, c.member_id, m.relationship AS member_relationship, m.role AS member_role, c.kind,"
            " c.note, c.sealed_note, c.goal_id, c.preference, c.plan_version, c.created_at,"
            " c.recorded_by_subject, c.recorded_by_role"
            " FROM contributions c JOIN care_team_members m ON m.id = c.member_id"
            " WHERE c.patient_id = $1 AND c.agency_id = $2 ORDER BY c.created_at, c.id LIMIT $3 OFFSET $4",
            patient_id,
            agency_id,
            limit,
            offset,
        )

    async def forget_free_text(self, agency_id: str, patient_id: uuid.UUID) -> None:
        """Blank the patient's care team members' names ('': the erased marker) and contact details, and
        the team's notes, sealed or in the clear (erasure): one statement per table, every row of the
        patient. The agency (a patient's rows are all its agency's) lets both use the index by agency
        and patient."""
        await self.db.execute(
            "UPDATE care_team_members SET name = '', contact = NULL, sealed_details = NULL"
            " WHERE agency_id = $1 AND patient_id = $2",
            agency_id,
            patient_id,
        )
        await self.db.execute(
            "UPDATE contributions SET note = NULL, sealed_note = NULL"
            " WHERE agency_id = $1 AND patient_id = $2 AND (note IS NOT NULL OR sealed_note IS NOT NULL)",
            agency_id,
            patient_id,
        )

    async def insert_change(self, row: dict[str, Any]) -> None:
        """A member added, changed or removed, and by whom (append-only)."""
        await insert_row(self.db, "care_team_changes", row)
