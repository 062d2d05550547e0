"""The care team wing's tables: members (named here only, never in events), who changed them, and their
contributions (notes are free text about the patient, kept here only). Names, contact details and notes
are kept sealed (``careplan.team.sealed``); rows from before keep them in the clear until the background
step seals them. Every read is scoped to the caller's agency (the background step acts for every one)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row, patient_row, patient_rows, update_by_id
from careplan.team.sealed import MEMBERS, NOTES

MEMBER_COLUMNS = (
    "id, patient_id, name, relationship, role, contact, sealed_details, status, created_at, updated_at,"
    " created_by_subject, created_by_role, updated_by_subject, updated_by_role"
)

# Rows written before sealing that keep text in the clear (007's indexes: the same predicates); an erased
# member keeps only the marker name ''. Their text, and how a row is sealed in place or blanked (NULL).
_IN_THE_CLEAR = {
    MEMBERS: "sealed_details IS NULL AND (name <> '' OR contact IS NOT NULL)",
    NOTES: "note IS NOT NULL",
}
_TEXT = {MEMBERS: "name, contact", NOTES: "note"}
_SEALED_IN_PLACE = {
    MEMBERS: "sealed_details = s.sealed::jsonb, contact = NULL,"
    " name = CASE WHEN s.sealed IS NULL THEN '' END",
    NOTES: "sealed_note = s.sealed::jsonb, note = NULL",
}
_BEFORE_ANY = uuid.UUID(int=0)


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
        self,
        agency_id: str,
        patient_id: uuid.UUID,
        limit: int,
        offset: int,
        kinds: Sequence[str] | None = None,
    ) -> list[asyncpg.Record]:
        """A page of the patient's contributions (of the ``kinds`` given, or all), oldest first, with the
        member's relationship and role."""
        return await self.db.fetch(
            "SELECT c.id, c.member_id, m.relationship AS member_relationship, m.role AS member_role, c.kind,"
            " c.note, c.sealed_note, c.goal_id, c.preference, c.need, c.plan_version, c.created_at,"
            " c.recorded_by_subject, c.recorded_by_role"
            " FROM contributions c JOIN care_team_members m ON m.id = c.member_id"
            " WHERE c.patient_id = $1 AND c.agency_id = $2"
            " AND ($5::text[] IS NULL OR c.kind = ANY($5::text[]))"
            " ORDER BY c.created_at, c.id LIMIT $3 OFFSET $4",
            patient_id,
            agency_id,
            limit,
            offset,
            kinds,
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

    async def in_the_clear(self, table: str, after: uuid.UUID | None, limit: int) -> list[asyncpg.Record]:
        """Up to ``limit`` rows of ``table`` (members or contributions) in the clear after ``after``, in id
        order, not locked: each row's id, agency and patient."""
        return await self.db.fetch(
            f"SELECT id, agency_id, patient_id FROM {table} WHERE {_IN_THE_CLEAR[table]} AND id > $1"
            " ORDER BY id LIMIT $2",
            after or _BEFORE_ANY,
            limit,
        )

    async def lock_in_the_clear(self, table: str, ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
        """Those of these rows still in the clear, locked (the ones a request holds skipped), with their
        text."""
        return await self.db.fetch(
            f"SELECT id, agency_id, patient_id, {_TEXT[table]} FROM {table}"
            f" WHERE id = ANY($1::uuid[]) AND {_IN_THE_CLEAR[table]} ORDER BY id FOR UPDATE SKIP LOCKED",
            list(ids),
        )

    async def seal_in_place(
        self, table: str, sealed: Sequence[tuple[uuid.UUID, dict[str, Any] | None]]
    ) -> None:
        """Each row's sealed text in place of the text in the clear, or, for None (the patient was
        erased), the text blanked as erasure leaves it: one statement. ``updated_at`` stays: the text
        did not change."""
        await self.db.execute(
            f"UPDATE {table} t SET {_SEALED_IN_PLACE[table]}"
            " FROM unnest($1::uuid[], $2::text[]) AS s(id, sealed) WHERE t.id = s.id",
            [row_id for row_id, _ in sealed],
            [None if value is None else json.dumps(value) for _, value in sealed],
        )

    async def count_in_the_clear(self) -> int:
        """Rows of members and contributions in the clear, locked or not."""
        counts = " + ".join(f"(SELECT count(*) FROM {t} WHERE {p})" for t, p in _IN_THE_CLEAR.items())
        found: int = await self.db.fetchval(f"SELECT {counts}")
        return found

    async def insert_change(self, row: dict[str, Any]) -> None:
        """A member added, changed or removed, and by whom (append-only)."""
        await insert_row(self.db, "care_team_changes", row)
