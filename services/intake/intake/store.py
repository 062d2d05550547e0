"""intake's tables: patients (the only identifying details in careloop, sealed: ``identity``), consents,
assessments; in ``referred``, which receiving agency may see which patient's contact details; in
``care_manager``, who made whom responsible for a patient.

Every read here is scoped to the caller's agency.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import asyncpg

from careloop_shared.db import Db, Store, insert_rows_returning, patient_row, patient_rows, update_by_id
from careloop_shared.idempotency import forget_patient
from intake.care_manager.store import CareManagerStore
from intake.erasure.store import KeyStore
from intake.identity.store import PATIENT_COLUMNS, PATIENTS_AND_KEYS, IdentityStore
from intake.referred.store import ReferredStore

CONSENT_COLUMNS = (
    "id, patient_id, purpose, agencies, program_categories, period_start, period_end, status,"
    " recorded_at, revoked_at, recorded_by, recorded_by_role, revoked_by, revoked_by_role"
)
ASSESSMENT_COLUMNS = (
    "id, patient_id, instrument, rules_version, observations, total_score, interpretation, needs,"
    " risk_level, urgent_flags, recommended_instruments, assessed_at, assessed_by, assessed_by_role, sealed"
)


async def _locked_patients(db: Db, keys: list[tuple[str, uuid.UUID]]) -> list[asyncpg.Record | None]:
    """Each (agency, patient)'s row locked, one statement for each agency asked, in the patients' order."""
    if len(keys) == 1:
        agency, patient = keys[0]
        return [await db.fetchrow("SELECT * FROM careloop_patient_locked($1, $2)", patient, agency)]
    found: dict[tuple[str, uuid.UUID], asyncpg.Record] = {}
    for agency in sorted({a for a, _ in keys}):
        patients = sorted({p for a, p in keys if a == agency})
        rows = await db.fetch(  # its kept plan; locks in the ids' order (migration 012)
            "SELECT * FROM careloop_patients_locked($1::uuid[], $2)", patients, agency
        )
        found.update(((agency, r["id"]), r) for r in rows)
    return [found.get(key) for key in keys]


async def _new_patients(db: Db, rows: list[dict[str, Any]]) -> list[uuid.UUID | None]:
    """Insert the rows in their order; for each one refused as a likely duplicate (of a patient kept
    before, or of a row before it here), the existing patient's id, else None."""
    went_in = await insert_rows_returning(
        db, "patients", rows, key="id", conflict="(agency_id, duplicate_key) DO NOTHING"
    )
    refused = [row for row, inserted in zip(rows, went_in, strict=True) if not inserted]
    if not refused:
        return [None] * len(rows)
    existing = {
        (r["agency_id"], r["duplicate_key"]): r["id"]
        for r in await db.fetch(
            "SELECT p.agency_id, p.duplicate_key, p.id FROM patients p"
            " JOIN unnest($1::text[], $2::bytea[]) AS q(agency_id, duplicate_key)"
            " ON p.agency_id = q.agency_id AND p.duplicate_key = q.duplicate_key",
            [row["agency_id"] for row in refused],
            [row["duplicate_key"] for row in refused],
        )
    }
    return [
        None if inserted else existing.get((row["agency_id"], row["duplicate_key"]))
        for row, inserted in zip(rows, went_in, strict=True)
    ]


class IntakeStore(Store):
    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self.referred = ReferredStore(db)
        self.care_manager = CareManagerStore(db)
        self.keys = KeyStore(db)
        self.identity = IdentityStore(db)

    async def insert_patient(self, row: dict[str, Any]) -> uuid.UUID | None:
        """Insert; on a likely duplicate (the same ``duplicate_key`` in the agency) insert nothing and
        return the existing patient's id. Registrations sharing a transaction insert in one statement."""
        existing: uuid.UUID | None = await self.one(_new_patients, row)
        return existing

    async def get_patient(
        self, agency_id: str, patient_id: uuid.UUID, *, lock: bool = False
    ) -> asyncpg.Record | None:
        """The patient's row with their data key (``identity.sealed.identified`` opens the details);
        ``lock``: locked for the rest of the transaction, through ``careloop_patient_locked`` (migration
        010), whose plan PostgreSQL keeps instead of planning the join on every command; commands sharing
        a transaction (``careloop_shared.command_groups``) lock theirs in one ``careloop_patients_locked``
        call (migration 012)."""
        if lock:
            locked: asyncpg.Record | None = await self.one(_locked_patients, (agency_id, patient_id))
            return locked
        return await self.db.fetchrow(
            f"SELECT {PATIENT_COLUMNS} FROM {PATIENTS_AND_KEYS} WHERE p.id = $1 AND p.agency_id = $2",
            patient_id,
            agency_id,
        )

    async def update_patient(
        self, patient_id: uuid.UUID, changes: dict[str, Any], at: datetime
    ) -> uuid.UUID | None:
        """Apply changes; a likely duplicate changes nothing and returns the other patient's id."""
        try:
            async with self.db.transaction():  # a savepoint: a duplicate leaves the outer transaction usable
                await update_by_id(self.db, "patients", patient_id, changes, at=at)
        except asyncpg.UniqueViolationError:
            other: uuid.UUID = await self.db.fetchval(
                "SELECT o.id FROM patients p JOIN patients o ON o.agency_id = p.agency_id"
                " AND o.duplicate_key = $2 AND o.id <> p.id WHERE p.id = $1",
                patient_id,
                changes.get("duplicate_key"),
            )
            return other
        return None

    async def erase_patient_details(
        self, patient_id: uuid.UUID, blanks: dict[str, Any], at: datetime
    ) -> None:
        await update_by_id(self.db, "patients", patient_id, {**blanks, "erased_at": at}, at=at)
        await forget_patient(self.db, patient_id)  # responses kept for Idempotency-Key replays

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        agency: str | None = await self.db.fetchval(
            "SELECT agency_id FROM patients WHERE id = $1", patient_id
        )
        return agency

    async def list_patients(
        self, agency_id: str, limit: int, offset: int, *, only: list[uuid.UUID] | None = None
    ) -> list[asyncpg.Record]:
        """The agency's patients not erased, in the order they were registered; ``only`` these, if given
        (found by their ids, not by walking the agency's list)."""
        chosen, args = ("", ()) if only is None else (" AND p.id = ANY($4::uuid[])", (only,))
        return await self.db.fetch(
            f"SELECT {PATIENT_COLUMNS} FROM {PATIENTS_AND_KEYS}"
            f" WHERE p.agency_id = $1 AND p.erased_at IS NULL{chosen}"
            " ORDER BY p.created_at, p.id LIMIT $2 OFFSET $3",
            agency_id,
            limit,
            offset,
            *args,
        )

    async def find_patients(
        self, agency_id: str, duplicate_key: bytes, name_key: str, birth_date: date, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        """The agency's patients not erased with this blind index of name and birth date (at most one
        sealed), and any not sealed yet with this normalised name and birth date, in registration order."""
        return await self.db.fetch(
            f"SELECT {PATIENT_COLUMNS} FROM {PATIENTS_AND_KEYS}"
            " WHERE p.agency_id = $1 AND p.erased_at IS NULL AND (p.duplicate_key = $2"
            " OR (p.identity IS NULL AND p.name_key = $3 AND p.birth_date = $4))"
            " ORDER BY p.created_at, p.id LIMIT $5 OFFSET $6",
            agency_id,
            duplicate_key,
            name_key,
            birth_date,
            limit,
            offset,
        )

    async def insert_consent(self, row: dict[str, Any]) -> None:
        await self.insert_at_commit("consents", {**row, "status": "active"})  # with its ConsentRecorded

    async def get_consent(
        self, agency_id: str, patient_id: uuid.UUID, consent_id: uuid.UUID, *, lock: bool = False
    ) -> asyncpg.Record | None:
        return await patient_row(
            self.db,
            "consents",
            CONSENT_COLUMNS,
            agency_id=agency_id,
            patient_id=patient_id,
            row_id=consent_id,
            lock=lock,
        )

    async def revoke_consent(
        self, consent_id: uuid.UUID, at: datetime, by: str, by_role: str
    ) -> asyncpg.Record:
        row: asyncpg.Record = await self.db.fetchrow(
            "UPDATE consents SET status = 'revoked', revoked_at = $2, revoked_by = $3, revoked_by_role = $4"
            f" WHERE id = $1 RETURNING {CONSENT_COLUMNS}",
            consent_id,
            at,
            by,
            by_role,
        )
        return row

    async def list_consents(self, agency_id: str, patient_id: uuid.UUID) -> list[asyncpg.Record]:
        return await patient_rows(
            self.db,
            "consents",
            CONSENT_COLUMNS,
            agency_id=agency_id,
            patient_id=patient_id,
            order_by="recorded_at, id",
        )

    async def insert_assessment(self, row: dict[str, Any]) -> None:
        await self.insert_at_commit("assessments", row)  # with the PatientAssessed it records

    async def get_assessment(self, agency_id: str, assessment_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            f"SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE id = $1 AND agency_id = $2",
            assessment_id,
            agency_id,
        )

    async def list_assessments(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        return await patient_rows(
            self.db,
            "assessments",
            ASSESSMENT_COLUMNS,
            agency_id=agency_id,
            patient_id=patient_id,
            order_by="assessed_at, id",
            limit=limit,
            offset=offset,
        )
