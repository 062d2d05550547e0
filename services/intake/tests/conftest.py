"""intake's unit-test fixtures: an in-memory store that behaves like ``IntakeStore``, a context, a clock."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from careloop_shared.rules import load_rules
from careloop_shared.testing.fakes import FakeClock
from intake.config import IntakeContext
from intake.domain import care_manager
from intake.domain.care_manager import CareManagerRules
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.identity.sealed import CLEAR


def kept_with_key(row: dict[str, Any], keys: dict[uuid.UUID, dict[str, Any]]) -> dict[str, Any]:
    """A patient's row as ``IntakeStore`` reads it: with the patient's data key (the LEFT JOIN)."""
    key = keys.get(row["id"]) or {}
    joined = {
        "key_version": key.get("version"),
        "key_kek_id": key.get("kek_id"),
        "key_wrapped": key.get("wrapped"),
    }
    return {**dict.fromkeys(CLEAR), "identity": None, "erased_at": None, **row, **joined}


class FakeReferredStore:
    """``ReferredStore`` over dicts: grants per referral, over the intake store's patients and consents."""

    _MADE = ("receiving_agency_id", "need", "program_category", "granted_at")
    _END = ("ended_at", "end_status", "end_reason")

    def __init__(
        self,
        patients: dict[uuid.UUID, dict[str, Any]],
        consents: dict[uuid.UUID, dict[str, Any]],
        keys: dict[uuid.UUID, dict[str, Any]],
    ):
        self.grants: dict[uuid.UUID, dict[str, Any]] = {}
        self._patients = patients
        self._consents = consents
        self._keys = keys

    async def grant(self, row: dict[str, Any]) -> bool:
        existing = self.grants.get(row["referral_id"])
        if existing is None:
            self.grants[row["referral_id"]] = {**dict.fromkeys(self._END), **row}
            return True
        if existing["granted_at"] is not None:
            return False
        existing.update({k: row[k] for k in self._MADE})
        return True

    async def end(self, row: dict[str, Any]) -> bool:
        existing = self.grants.get(row["referral_id"])
        if existing is None:
            self.grants[row["referral_id"]] = {**dict.fromkeys(self._MADE), **row}
            return True
        if existing["ended_at"] is not None:
            return False
        existing.update({k: row[k] for k in self._END})
        return True

    async def open_grants(
        self, receiving_agency_id: str, patient_id: uuid.UUID | None = None
    ) -> list[dict[str, Any]]:
        rows = [
            {**g, "patient_agency_id": self._patients[g["patient_id"]]["agency_id"]}
            for g in self.grants.values()
            if g["receiving_agency_id"] == receiving_agency_id
            and g["ended_at"] is None
            and patient_id in (None, g["patient_id"])
            and g["patient_id"] in self._patients
        ]
        return sorted(rows, key=lambda g: (g["granted_at"], g["referral_id"]))

    async def patients_seen(self, patient_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        return [kept_with_key(p, self._keys) for i, p in self._patients.items() if i in patient_ids]

    async def consents_of(self, patient_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        return [dict(c) for c in self._consents.values() if c["patient_id"] in patient_ids]


class FakeCareManagerStore:
    """``CareManagerStore`` over dicts: the patients' care manager, and the assignments in order."""

    _SHOWN = (
        "patient_id",
        "care_manager_id",
        "previous_care_manager_id",
        "reason",
        "reason_code",
        "assigned_at",
        "assigned_by",
        "assigned_by_role",
    )

    def __init__(self, patients: dict[uuid.UUID, dict[str, Any]]) -> None:
        self.assignments: list[dict[str, Any]] = []
        self._patients = patients

    async def record_assignment(self, row: dict[str, Any]) -> None:
        self.assignments.append(dict(row))

    async def reassign(self, row: dict[str, Any]) -> None:
        self._patients[row["patient_id"]]["care_manager_id"] = row["care_manager_id"]
        await self.record_assignment(row)

    async def latest_assignment(self, patient_id: uuid.UUID) -> dict[str, Any] | None:
        mine = [a for a in self.assignments if a["patient_id"] == patient_id]
        return {k: mine[-1][k] for k in self._SHOWN} if mine else None


class FakeKeyStore:
    """``KeyStore`` over a dict: the patients' wrapped data keys."""

    _SHOWN = ("patient_id", "version", "kek_id", "wrapped", "erased_at")

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}

    async def keep(self, row: dict[str, Any]) -> None:
        self.rows.setdefault(row["patient_id"], {"version": 1, "erased_at": None, **row})

    async def get(self, agency_id: str, patient_id: uuid.UUID) -> dict[str, Any] | None:
        row = self.rows.get(patient_id)
        return {k: row[k] for k in self._SHOWN} if row and row["agency_id"] == agency_id else None

    async def of_patients(
        self, agency_id: str, patient_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        found = {p: await self.get(agency_id, p) for p in patient_ids}
        return {p: r for p, r in found.items() if r is not None}

    async def destroy(
        self, agency_id: str, patient_id: uuid.UUID, at: datetime, by: str, by_role: str, reason: str
    ) -> bool:
        row = self.rows.get(patient_id)
        if row is None or row["agency_id"] != agency_id or row["erased_at"] is not None:
            return False
        row.update(
            wrapped=None,
            kek_id=None,
            erased_at=at,
            erased_by=by,
            erased_by_role=by_role,
            erasure_reason=reason,
        )
        return True

    async def claim_to_rewrap(
        self, kek_ids: Sequence[str], start: uuid.UUID, limit: int
    ) -> list[dict[str, Any]]:
        live = sorted(
            (r for r in self.rows.values() if r["wrapped"] is not None and r["kek_id"] in kek_ids),
            key=lambda r: r["patient_id"],
        )
        on = [r for r in live if r["patient_id"] >= start] + [r for r in live if r["patient_id"] < start]
        return [{k: r[k] for k in ("patient_id", "version", "kek_id", "wrapped")} for r in on[:limit]]

    async def rewrap(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            kept = self.rows[row["patient_id"]]
            if kept["wrapped"] is not None:
                kept.update(kek_id=row["kek_id"], wrapped=row["wrapped"])

    async def count_not_under(self, kek_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            if row["wrapped"] is not None and row["kek_id"] != kek_id:
                counts[row["kek_id"]] = counts.get(row["kek_id"], 0) + 1
        return counts


class FakeIdentityStore:
    """``IdentityStore`` over the fake's patients and keys: the rows not sealed yet, and their sealing."""

    def __init__(self, patients: dict[uuid.UUID, dict[str, Any]], keys: dict[uuid.UUID, dict[str, Any]]):
        self._patients = patients
        self._keys = keys

    def _clear(self) -> list[dict[str, Any]]:
        return sorted(
            (p for p in self._patients.values() if p.get("identity") is None and not p.get("erased_at")),
            key=lambda p: p["id"],
        )

    async def in_the_clear(self, limit: int) -> list[dict[str, Any]]:
        return [kept_with_key(p, self._keys) for p in self._clear()[:limit]]

    async def any_in_the_clear(self) -> bool:
        return bool(self._clear())

    async def seal(self, sealed: Sequence[dict[str, Any]], new_keys: Sequence[dict[str, Any]]) -> None:
        for key in new_keys:
            assert key["patient_id"] not in self._keys, "the primary key refuses a second key"
            self._keys[key["patient_id"]] = {"version": 1, "erased_at": None, **key}
        for row in sealed:
            self._patients[row["id"]].update(
                dict.fromkeys(CLEAR), identity=row["identity"], duplicate_key=row["duplicate_key"]
            )

    async def clear_duplicate(
        self, agency_id: str, name_key: str, birth_date: date, but: uuid.UUID | None = None
    ) -> uuid.UUID | None:
        return next(
            (
                p["id"]
                for p in self._patients.values()
                if (p["agency_id"], p.get("name_key"), p.get("birth_date"))
                == (agency_id, name_key, birth_date)
                and p["id"] != but
            ),
            None,
        )


class FakeIntakeStore:
    """``IntakeStore`` over dicts: the same answers, including the likely-duplicate rule."""

    def __init__(self) -> None:
        self.patients: dict[uuid.UUID, dict[str, Any]] = {}
        self.consents: dict[uuid.UUID, dict[str, Any]] = {}
        self.assessments: dict[uuid.UUID, dict[str, Any]] = {}
        self.keys = FakeKeyStore()
        self.referred = FakeReferredStore(self.patients, self.consents, self.keys.rows)
        self.care_manager = FakeCareManagerStore(self.patients)
        self.identity = FakeIdentityStore(self.patients, self.keys.rows)

    def _duplicate_of(self, agency_id: str, duplicate_key: bytes | None, but: Any = None) -> Any:
        """The unique (agency_id, duplicate_key): nulls (rows not sealed yet) are all distinct."""
        return next(
            (
                p["id"]
                for p in self.patients.values()
                if duplicate_key is not None
                and (p["agency_id"], p.get("duplicate_key")) == (agency_id, duplicate_key)
                and p["id"] != but
            ),
            None,
        )

    async def insert_patient(self, row: dict[str, Any]) -> uuid.UUID | None:
        existing = self._duplicate_of(row["agency_id"], row["duplicate_key"])
        if existing is None:
            self.patients[row["id"]] = dict(row)
        return existing

    async def get_patient(
        self, agency_id: str, patient_id: uuid.UUID, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = self.patients.get(patient_id)
        return (
            kept_with_key(row, self.keys.rows) if row is not None and row["agency_id"] == agency_id else None
        )

    async def update_patient(
        self, patient_id: uuid.UUID, changes: dict[str, Any], at: datetime
    ) -> uuid.UUID | None:
        merged = {**self.patients[patient_id], **changes}
        other = self._duplicate_of(merged["agency_id"], changes.get("duplicate_key"), patient_id)
        if other is None:
            self.patients[patient_id] = {**merged, "updated_at": at}
        return other

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        row = self.patients.get(patient_id)
        return None if row is None else row["agency_id"]

    async def list_patients(
        self, agency_id: str, limit: int, offset: int, *, only: list[uuid.UUID] | None = None
    ) -> list[dict[str, Any]]:
        chosen = (
            self.patients.values()
            if only is None
            else [self.patients[i] for i in dict.fromkeys(only) if i in self.patients]
        )
        return self._shown(chosen, agency_id, limit, offset)

    def _shown(self, rows: Any, agency_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
        """The agency's patients of ``rows`` not erased, a page of them in registration order."""
        mine = sorted(
            (p for p in rows if p["agency_id"] == agency_id and not p.get("erased_at")),
            key=lambda p: (p["created_at"], p["id"]),
        )
        return [kept_with_key(p, self.keys.rows) for p in mine[offset : offset + limit]]

    async def find_patients(
        self, agency_id: str, duplicate_key: bytes, name_key: str, birth_date: date, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        same = [p for p in self.patients.values() if p.get("duplicate_key") == duplicate_key]
        return self._shown(same, agency_id, limit, offset)

    async def erase_patient_details(
        self, patient_id: uuid.UUID, blanks: dict[str, Any], at: datetime
    ) -> None:
        self.patients[patient_id].update(blanks, erased_at=at, updated_at=at)

    async def insert_consent(self, row: dict[str, Any]) -> None:
        self.consents[row["id"]] = {
            **row,
            "status": "active",
            "revoked_at": None,
            "revoked_by": None,
            "revoked_by_role": None,
        }

    async def get_consent(
        self, agency_id: str, patient_id: uuid.UUID, consent_id: uuid.UUID, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = self.consents.get(consent_id)
        if row is None or (row["agency_id"], row["patient_id"]) != (agency_id, patient_id):
            return None
        return dict(row)

    async def revoke_consent(
        self, consent_id: uuid.UUID, at: datetime, by: str, by_role: str
    ) -> dict[str, Any]:
        self.consents[consent_id].update(
            status="revoked", revoked_at=at, revoked_by=by, revoked_by_role=by_role
        )
        return dict(self.consents[consent_id])

    async def list_consents(self, agency_id: str, patient_id: uuid.UUID) -> list[dict[str, Any]]:
        return sorted(
            (
                c
                for c in self.consents.values()
                if (c["agency_id"], c["patient_id"]) == (agency_id, patient_id)
            ),
            key=lambda c: (c["recorded_at"], c["id"]),
        )

    async def insert_assessment(self, row: dict[str, Any]) -> None:
        self.assessments[row["id"]] = dict(row)

    async def get_assessment(self, agency_id: str, assessment_id: uuid.UUID) -> dict[str, Any] | None:
        row = self.assessments.get(assessment_id)
        return dict(row) if row is not None and row["agency_id"] == agency_id else None

    async def list_assessments(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        mine = sorted(
            (
                a
                for a in self.assessments.values()
                if (a["agency_id"], a["patient_id"]) == (agency_id, patient_id)
            ),
            key=lambda a: (a["assessed_at"], a["id"]),
        )
        return mine[offset : offset + limit]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def ctx(clock: FakeClock) -> IntakeContext:
    return IntakeContext(
        load_rules(ScreeningRules, RULES_FILE), load_rules(CareManagerRules, care_manager.RULES_FILE), clock
    )


@pytest.fixture
def store() -> FakeIntakeStore:
    return FakeIntakeStore()
