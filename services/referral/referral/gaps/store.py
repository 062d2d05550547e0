"""Network gaps: interventions no eligible program could take, the patients waiting on them, and what
routing needs to make their referral once a program appears. Read by the report without identity."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.coalesce import rounds
from careloop_shared.db import ALL_AGENCIES, Db, Store, columns_of, insert_row, rows_from
from referral.row_security import acting_for

_REOPEN = ", ".join(
    f"{c} = EXCLUDED.{c}"
    for c in (
        *("detected_at", "need", "program_category", "postal_area", "language"),
        *("agency_id", "plan_id", "priority"),
    )
)


class GapStore(Store):
    async def record_once(self, row: dict[str, Any]) -> bool:
        """The intervention waits on a gap; True the first time (announced once). A gap that resolved and
        recurs (its referral rejected and nothing else eligible) re-opens, waiting from now."""
        recorded = await insert_row(
            self.db,
            "network_gaps",
            row,
            conflict=f"(intervention_id) DO UPDATE SET {_REOPEN}, resolved_at = NULL"
            " WHERE network_gaps.resolved_at IS NOT NULL",
            returning="(xmax = 0) AS first",
        )
        return recorded is not None and bool(recorded["first"])

    async def resolve(self, intervention_id: uuid.UUID, at: datetime) -> None:
        await self.one(_resolve, (intervention_id, at))

    async def report(
        self, *, need: str | None, category: str | None, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        """Open gaps grouped by need, category, postal area and language: how many patients wait on
        each, and since when the longest has; longest waiting first. No patient is named."""
        # The network's gaps, every agency's: counts only, so wider than the caller's agency on purpose.
        async with acting_for(self.db, ALL_AGENCIES):
            return await self.db.fetch(
                "SELECT need, program_category, postal_area, language,"
                " count(DISTINCT patient_id) AS patients_waiting, count(*) AS interventions_waiting,"
                " min(detected_at) AS oldest_waiting_since"
                " FROM network_gaps WHERE resolved_at IS NULL"
                " AND ($1::text IS NULL OR need = $1) AND ($2::text IS NULL OR program_category = $2)"
                " GROUP BY need, program_category, postal_area, language"
                " ORDER BY oldest_waiting_since, need, program_category NULLS FIRST, postal_area NULLS FIRST,"
                " language NULLS FIRST LIMIT $3 OFFSET $4",
                need,
                category,
                limit,
                offset,
            )

    async def waiting_for(self, category: str, needs: Sequence[str]) -> list[asyncpg.Record]:
        """Open gaps a program in ``category`` addressing ``needs`` might fill, longest waiting first,
        locked; with what routing needs (a gap recorded before it was kept: as known of the patient's
        plan and agency since, else null)."""
        return await self.db.fetch(
            "SELECT g.intervention_id, g.patient_id, g.need, g.program_category, g.postal_area,"
            " g.language, coalesce(g.agency_id, pl.agency_id, pt.agency_id) AS agency_id,"
            " coalesce(g.plan_id, pl.plan_id) AS plan_id,"
            " coalesce(g.priority, pi.priority, 'routine') AS priority"
            " FROM network_gaps g"
            " LEFT JOIN plan_interventions pi ON pi.intervention_id = g.intervention_id"
            " LEFT JOIN plans pl ON pl.patient_id = g.patient_id"
            " LEFT JOIN patients pt ON pt.patient_id = g.patient_id"
            " WHERE g.resolved_at IS NULL"
            " AND (g.program_category = $1 OR (g.program_category IS NULL AND g.need = ANY($2::text[])))"
            " ORDER BY g.detected_at, g.intervention_id FOR UPDATE OF g",
            category,
            list(needs),
        )


async def _resolve(db: Db, gaps: list[tuple[uuid.UUID, datetime]]) -> list[None]:
    columns = {"intervention_id": "uuid", "at": "timestamptz"}
    for round_ in rounds(gaps, key=lambda gap: gap[0]):  # a gap twice: the first resolution stays
        await db.execute(
            f"UPDATE network_gaps g SET resolved_at = r.at FROM {rows_from(columns)}"
            " WHERE g.intervention_id = r.intervention_id AND g.resolved_at IS NULL",
            *columns_of(round_, columns),
        )
    return [None] * len(gaps)
