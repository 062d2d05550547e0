"""Who is responsible for which patient: the patient's current care manager (on ``patients``) and every
assignment that made someone responsible (``care_manager_assignments``)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from careloop_shared.db import Store

ASSIGNMENT_COLUMNS = (
    "patient_id, care_manager_id, previous_care_manager_id, reason, reason_code, assigned_at, assigned_by,"
    " assigned_by_role"
)


class CareManagerStore(Store):
    async def record_assignment(self, row: dict[str, Any]) -> None:
        """Keep an assignment in the history (the patient's row already names the care manager), with the
        CareManagerAssigned that announces it."""
        await self.insert_at_commit("care_manager_assignments", row)

    async def reassign(self, row: dict[str, Any]) -> None:
        """Make the row's care manager the patient's, and keep the assignment in the history."""
        await self.db.execute(
            "UPDATE patients SET care_manager_id = $2 WHERE id = $1",
            row["patient_id"],
            row["care_manager_id"],
        )
        await self.record_assignment(row)

    async def latest_assignment(self, patient_id: uuid.UUID) -> asyncpg.Record | None:
        """The assignment that made the patient's care manager responsible; None before this was kept."""
        return await self.db.fetchrow(
            f"SELECT {ASSIGNMENT_COLUMNS} FROM care_manager_assignments WHERE patient_id = $1"
            " ORDER BY position DESC LIMIT 1",
            patient_id,
        )
