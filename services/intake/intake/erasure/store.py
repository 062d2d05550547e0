"""intake's patient_keys: each patient's data key, wrapped; re-wrapped when the key-encryption key
changes; destroyed on erasure. And what the retention rules read of a case, and their runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_row


class KeyStore(Store):
    async def keep(self, row: dict[str, Any]) -> None:
        await self.insert_at_commit("patient_keys", row, conflict="(patient_id) DO NOTHING")

    async def get(self, agency_id: str, patient_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            "SELECT patient_id, version, kek_id, wrapped, erased_at FROM patient_keys"
            " WHERE patient_id = $1 AND agency_id = $2",
            patient_id,
            agency_id,
        )

    async def of_patients(
        self, agency_id: str, patient_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, asyncpg.Record]:
        rows = await self.db.fetch(
            "SELECT patient_id, version, kek_id, wrapped, erased_at FROM patient_keys"
            " WHERE patient_id = ANY($1::uuid[]) AND agency_id = $2",
            patient_ids,
            agency_id,
        )
        return {r["patient_id"]: r for r in rows}

    async def destroy(
        self, agency_id: str, patient_id: uuid.UUID, at: datetime, by: str, by_role: str, reason: str
    ) -> bool:
        """Destroy the wrapped key (once); whether this call destroyed it."""
        done = await self.db.fetchval(
            "UPDATE patient_keys SET wrapped = NULL, kek_id = NULL, erased_at = $3, erased_by = $4,"
            " erased_by_role = $5, erasure_reason = $6"
            " WHERE patient_id = $1 AND agency_id = $2 AND erased_at IS NULL RETURNING true",
            patient_id,
            agency_id,
            at,
            by,
            by_role,
            reason,
        )
        return bool(done)

    async def claim_to_rewrap(
        self, kek_ids: Sequence[str], start: uuid.UUID, limit: int
    ) -> list[asyncpg.Record]:
        """Up to ``limit`` live keys wrapped by one of ``kek_ids``, locked: from ``start`` on in id order,
        then from the first. Rows another replica holds are skipped, not waited on."""
        sql = (
            "SELECT patient_id, version, kek_id, wrapped FROM patient_keys"
            " WHERE wrapped IS NOT NULL AND kek_id = ANY($1::text[]) AND patient_id {} $2"
            " ORDER BY patient_id LIMIT $3 FOR UPDATE SKIP LOCKED"
        )
        rows: list[asyncpg.Record] = await self.db.fetch(sql.format(">="), list(kek_ids), start, limit)
        if len(rows) < limit:
            rows += await self.db.fetch(sql.format("<"), list(kek_ids), start, limit - len(rows))
        return rows

    async def rewrap(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep each key wrapped anew (rows of patient_id, kek_id, wrapped); an erased key stays erased."""
        await self.db.execute(
            "UPDATE patient_keys k SET kek_id = r.kek_id, wrapped = r.wrapped"
            " FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS r(patient_id, kek_id, wrapped)"
            " WHERE k.patient_id = r.patient_id AND k.wrapped IS NOT NULL",
            [r["patient_id"] for r in rows],
            [r["kek_id"] for r in rows],
            [r["wrapped"] for r in rows],
        )

    async def count_not_under(self, kek_id: str) -> dict[str, int]:
        """Live keys wrapped by another key-encryption key than ``kek_id``, by the one wrapping them."""
        rows = await self.db.fetch(
            "SELECT kek_id, count(*) AS n FROM patient_keys WHERE wrapped IS NOT NULL"
            " AND (kek_id < $1 OR kek_id > $1) GROUP BY kek_id",
            kek_id,
        )
        return {r["kek_id"]: r["n"] for r in rows}


_RETENTION_LOCK = 0x72657465  # advisory lock id: one replica applies the retention rules at a time

# A case as the retention rules see it (greatest() and max() pass over nulls).
_CASE = """
    SELECT p.id, p.agency_id,
        greatest(
            p.created_at, p.updated_at,
            (SELECT max(a.assessed_at) FROM assessments a WHERE a.patient_id = p.id),
            (SELECT max(greatest(c.recorded_at, c.revoked_at)) FROM consents c WHERE c.patient_id = p.id),
            (SELECT max(m.assigned_at) FROM care_manager_assignments m WHERE m.patient_id = p.id),
            (SELECT max(greatest(g.granted_at, g.ended_at)) FROM referral_grants g WHERE g.patient_id = p.id)
        ) AS last_activity_at,
        EXISTS (SELECT 1 FROM assessments a WHERE a.patient_id = p.id)
            OR EXISTS (SELECT 1 FROM consents c WHERE c.patient_id = p.id)
            OR EXISTS (SELECT 1 FROM referral_grants g WHERE g.patient_id = p.id) AS engaged,
        EXISTS (SELECT 1 FROM referral_grants g WHERE g.patient_id = p.id AND g.ended_at IS NULL)
            AS referral_open
    FROM patients p
"""


class RetentionStore(Store):
    """The retention rules' runs, and each case's last activity across intake's tables."""

    async def take_turn(self) -> bool:
        """Whether this transaction may apply the rules now (another replica's may be at it)."""
        return bool(await self.db.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RETENTION_LOCK))

    async def run_under_way(self) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            "SELECT id, rules_version, started_at, after_patient, erased FROM retention_runs"
            " WHERE finished_at IS NULL"
        )

    async def last_started_at(self) -> datetime | None:
        at: datetime | None = await self.db.fetchval("SELECT max(started_at) FROM retention_runs")
        return at

    async def start_run(self, run_id: uuid.UUID, rules_version: str, at: datetime) -> asyncpg.Record:
        await insert_row(
            self.db, "retention_runs", {"id": run_id, "rules_version": rules_version, "started_at": at}
        )
        run = await self.run_under_way()
        assert run is not None
        return run

    async def record_progress(
        self,
        run_id: uuid.UUID,
        *,
        after_patient: uuid.UUID | None,
        examined: int,
        erased: dict[str, int],
        finished_at: datetime | None,
    ) -> None:
        await self.db.execute(
            "UPDATE retention_runs SET after_patient = $2, examined = examined + $3, erased = $4,"
            " finished_at = $5 WHERE id = $1",
            run_id,
            after_patient,
            examined,
            erased,
            finished_at,
        )

    async def cases(self, quiet_since: datetime, after: uuid.UUID | None, limit: int) -> list[asyncpg.Record]:
        """The next ``limit`` patients by id after ``after`` whose details have not changed since
        ``quiet_since`` and are not erased, each with what the rules decide on."""
        return await self.db.fetch(
            _CASE + " WHERE p.erased_at IS NULL AND p.updated_at <= $1 AND ($2::uuid IS NULL OR p.id > $2)"
            " ORDER BY p.id LIMIT $3",
            quiet_since,
            after,
            limit,
        )

    async def case(self, patient_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(_CASE + " WHERE p.id = $1 AND p.erased_at IS NULL", patient_id)
