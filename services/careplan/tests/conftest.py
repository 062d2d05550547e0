"""careplan's unit-test fixtures: an in-memory ``CareplanStore`` (one fake per wing), a context, a clock,
patients' data keys."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from careloop_shared.rules import load_rules
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from careplan.config import DEFAULT_EDUCATION, CareplanContext, load_education
from careplan.domain.necessity import DEFAULT_CRITERIA, NecessityCriteria
from careplan.domain.plan import INPUTS, PlanDocument, PlanState
from careplan.domain.planning import DEFAULT_LIBRARY, PlanLibrary


def _json(value: Any) -> Any:
    """What a jsonb column gives back: a copy, never the object that was written."""
    return copy.deepcopy(value)


class FakePlanStore:
    """``PlanStore`` over dicts: rows as the tables hold them, documents and inputs as stored JSON."""

    def __init__(self) -> None:
        self.patients: dict[uuid.UUID, dict[str, Any]] = {}
        self.plans: dict[uuid.UUID, dict[str, Any]] = {}  # by patient
        self.plan_versions: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}

    async def upsert_patient(
        self,
        patient_id: uuid.UUID,
        agency_id: str,
        language: str | None,
        contact_preference: str | None,
        safe_channels: list[str] | None,
        at: datetime,
    ) -> None:
        current = self.patients.get(patient_id)
        if current is not None and current["updated_at"] > at:
            return  # an older event than the last one applied
        self.patients[patient_id] = {
            "patient_id": patient_id,
            "agency_id": current["agency_id"] if current else agency_id,
            "preferred_language": language,
            "contact_preference": contact_preference or (current["contact_preference"] if current else None),
            "safe_channels": _json(safe_channels),
            "updated_at": at,
        }

    async def lock_plan(self, patient_id: uuid.UUID) -> PlanState | None:
        return (await self.lock_plans([patient_id])).get(patient_id)

    async def lock_plans(self, patient_ids: list[uuid.UUID]) -> dict[uuid.UUID, PlanState]:
        locked = {}
        for patient_id in sorted(set(patient_ids)):
            plan = self.plans.get(patient_id)
            if plan is None:
                continue
            version = self.plan_versions.get((plan["plan_id"], plan["version"]))
            patient = self.patients.get(patient_id, {})
            locked[patient_id] = PlanState.model_validate(
                {
                    **{k: plan[k] for k in ("patient_id", "plan_id", "agency_id", "version", "status")},
                    **{c: _json(plan[c]) for c in INPUTS},
                    "document": _json(version["document"]) if version else None,
                    "preferred_language": patient.get("preferred_language"),
                    "contact_preference": patient.get("contact_preference"),
                    "safe_channels": _json(patient.get("safe_channels")),
                }
            )
        return locked

    async def open_plans(self, openings: dict[uuid.UUID, tuple[str, datetime]]) -> None:
        for patient_id, (agency_id, at) in openings.items():
            self.plans.setdefault(
                patient_id,
                {
                    "patient_id": patient_id,
                    "plan_id": uuid.uuid4(),
                    "agency_id": agency_id,
                    "version": 0,
                    "status": "draft",
                    "assessments": {},
                    "services": [],
                    "agreed_goals": [],
                    "overrides": {},
                    "stated_needs": [],
                    "personal_goals": [],
                    "updated_at": at,
                },
            )

    async def set_plan_inputs(self, plan: PlanState) -> None:
        self.plans[plan.patient_id].update(_json(plan.stored_inputs()))

    async def save_version(
        self,
        plan: PlanState,
        *,
        version: int,
        status: str,
        document: PlanDocument,
        reason: str,
        changed_by: str,
        changed_by_subject: str | None,
        caused_by_event: uuid.UUID | None,
        at: datetime,
    ) -> None:
        key = (plan.plan_id, version)
        assert key not in self.plan_versions, "duplicate key value violates plan_versions_pkey"
        self.plan_versions[key] = {
            "plan_id": plan.plan_id,
            "version": version,
            "status": status,
            "document": document.stored(),
            "reason": reason,
            "changed_by": changed_by,
            "changed_by_subject": changed_by_subject,
            "caused_by_event": caused_by_event,
            "created_at": at,
        }
        self.plans[plan.patient_id].update(
            version=version, status=status, updated_at=at, **_json(plan.stored_inputs())
        )

    async def plan_version(
        self, agency_id: str, patient_id: uuid.UUID, version: int | None = None
    ) -> dict[str, Any] | None:
        plan = self.plans.get(patient_id)
        if plan is None or plan["agency_id"] != agency_id:
            return None
        row = self.plan_versions.get((plan["plan_id"], plan["version"] if version is None else version))
        if row is None:
            return None
        columns = (
            "version",
            "status",
            "document",
            "reason",
            "changed_by",
            "changed_by_subject",
            "created_at",
        )
        return {"plan_id": plan["plan_id"], **{c: _json(row[c]) for c in columns}}

    async def plan_versions(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        plan = self.plans.get(patient_id)
        if plan is None or plan["agency_id"] != agency_id:
            return []
        columns = ("plan_id", "version", "status", "reason", "changed_by", "changed_by_subject", "created_at")
        rows = sorted(
            (v for (plan_id, _), v in self.plan_versions.items() if plan_id == plan["plan_id"]),
            key=lambda v: v["version"],
        )
        return [{c: r[c] for c in columns} for r in rows[offset : offset + limit]]

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        row = self.plans.get(patient_id) or self.patients.get(patient_id)
        return None if row is None else row["agency_id"]

    def current(self, patient_id: uuid.UUID) -> dict[str, Any]:
        """The current version's row (tests only)."""
        plan = self.plans[patient_id]
        return self.plan_versions[(plan["plan_id"], plan["version"])]


MEMBER_COLUMNS = (
    "id",
    "patient_id",
    "name",
    "relationship",
    "role",
    "contact",
    "sealed_details",
    "status",
    "created_at",
    "created_by_subject",
    "created_by_role",
)
WHO_UPDATED = ("updated_by_subject", "updated_by_role")


class FakeTeamStore:
    """``TeamStore`` over dicts (``held``: rows a request has locked, which ``lock_in_the_clear`` skips)."""

    def __init__(self) -> None:
        self.care_team_members: dict[uuid.UUID, dict[str, Any]] = {}
        self.contribution_rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.care_team_changes: dict[uuid.UUID, dict[str, Any]] = {}
        self.held: set[uuid.UUID] = set()

    def _rows_in_the_clear(self, table: str) -> list[dict[str, Any]]:
        """As TeamStore's predicates: a member's name (not the erased marker '') or contact, a note."""
        if table == "care_team_members":
            rows = [
                m
                for m in self.care_team_members.values()
                if m["sealed_details"] is None and (m["name"] != "" or m["contact"] is not None)
            ]
        else:
            rows = [c for c in self.contribution_rows.values() if c["note"] is not None]
        return sorted(rows, key=lambda r: r["id"])

    @staticmethod
    def _out(row: dict[str, Any]) -> dict[str, Any]:
        return {c: row[c] for c in (*MEMBER_COLUMNS, "updated_at", *WHO_UPDATED)}

    async def insert_member(self, row: dict[str, Any]) -> dict[str, Any]:
        assert row["id"] not in self.care_team_members
        self.care_team_members[row["id"]] = dict(row)
        return self._out(row)

    async def get_member(
        self, agency_id: str, patient_id: uuid.UUID, member_id: uuid.UUID, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = self.care_team_members.get(member_id)
        if row is None or (row["agency_id"], row["patient_id"]) != (agency_id, patient_id):
            return None
        return self._out(row)

    async def update_member(
        self, member_id: uuid.UUID, changes: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        self.care_team_members[member_id].update(changes, updated_at=at)
        return self._out(self.care_team_members[member_id])

    async def care_team(self, agency_id: str, patient_id: uuid.UUID) -> list[dict[str, Any]]:
        mine = [
            m
            for m in self.care_team_members.values()
            if (m["agency_id"], m["patient_id"]) == (agency_id, patient_id)
        ]
        return [self._out(m) for m in sorted(mine, key=lambda m: (m["created_at"], m["id"]))]

    async def insert_contribution(self, row: dict[str, Any]) -> None:
        assert row["member_id"] in self.care_team_members, "contributions_member_id_fkey"
        self.contribution_rows[row["id"]] = _json(row)

    async def forget_free_text(self, agency_id: str, patient_id: uuid.UUID) -> None:
        for m in self.care_team_members.values():
            if (m["agency_id"], m["patient_id"]) == (agency_id, patient_id):
                m.update(name="", contact=None, sealed_details=None)
        for c in self.contribution_rows.values():
            if (c["agency_id"], c["patient_id"]) == (agency_id, patient_id):
                c.update(note=None, sealed_note=None)

    async def in_the_clear(self, table: str, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
        rows = [r for r in self._rows_in_the_clear(table) if after is None or r["id"] > after]
        return [{k: r[k] for k in ("id", "agency_id", "patient_id")} for r in rows[:limit]]

    async def lock_in_the_clear(self, table: str, ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        text = ("name", "contact") if table == "care_team_members" else ("note",)
        return [
            {k: r[k] for k in ("id", "agency_id", "patient_id", *text)}
            for r in self._rows_in_the_clear(table)
            if r["id"] in set(ids) - self.held
        ]

    async def seal_in_place(
        self, table: str, sealed: Sequence[tuple[uuid.UUID, dict[str, Any] | None]]
    ) -> None:
        for row_id, value in sealed:
            if table == "care_team_members":
                blanked = "" if value is None else None
                self.care_team_members[row_id].update(sealed_details=_json(value), name=blanked, contact=None)
            else:
                self.contribution_rows[row_id].update(sealed_note=_json(value), note=None)

    async def count_in_the_clear(self) -> int:
        return sum(len(self._rows_in_the_clear(t)) for t in ("care_team_members", "contributions"))

    async def insert_change(self, row: dict[str, Any]) -> None:
        assert row["member_id"] in self.care_team_members, "care_team_changes_member_id_fkey"
        assert row["id"] not in self.care_team_changes
        self.care_team_changes[row["id"]] = dict(row)

    async def contributions(
        self, agency_id: str, patient_id: uuid.UUID, limit: int, offset: int, kinds: list[str] | None = None
    ) -> list[dict[str, Any]]:
        mine = sorted(
            (
                c
                for c in self.contribution_rows.values()
                if (c["agency_id"], c["patient_id"]) == (agency_id, patient_id)
                and (kinds is None or c["kind"] in kinds)
            ),
            key=lambda c: (c["created_at"], c["id"]),
        )
        columns = (
            "id",
            "member_id",
            "kind",
            "note",
            "sealed_note",
            "goal_id",
            "preference",
            "need",
            "plan_version",
            "created_at",
            "recorded_by_subject",
            "recorded_by_role",
        )
        return [
            {
                **{k: _json({"need": None, **c}[k]) for k in columns},  # need: a later column
                "member_relationship": self.care_team_members[c["member_id"]]["relationship"],
                "member_role": self.care_team_members[c["member_id"]]["role"],
            }
            for c in mine[offset : offset + limit]
        ]


REQUEST_COLUMNS = (
    "id",
    "patient_id",
    "plan_id",
    "service_code",
    "met",
    "failed_criteria",
    "alternatives",
    "criteria_version",
    "chosen_alternative",
    "chosen_at",
    "created_at",
    "requested_by_subject",
    "chosen_by_subject",
    "chosen_by_role",
)


class FakeNecessityStore:
    """``NecessityStore`` over dicts."""

    def __init__(self) -> None:
        self.requests: dict[uuid.UUID, dict[str, Any]] = {}

    async def insert_service_request(self, row: dict[str, Any]) -> None:
        self.requests[row["id"]] = {
            "chosen_alternative": None,
            "chosen_at": None,
            "chosen_by_subject": None,
            "chosen_by_role": None,
            **_json(row),
        }

    @staticmethod
    def _out(row: dict[str, Any]) -> dict[str, Any]:
        # requested_by holds the role; the store answers it as requested_by_role.
        return {**{c: _json(row[c]) for c in REQUEST_COLUMNS}, "requested_by_role": row["requested_by"]}

    async def get_service_request(
        self, agency_id: str, patient_id: uuid.UUID, request_id: uuid.UUID, *, lock: bool = False
    ) -> dict[str, Any] | None:
        row = self.requests.get(request_id)
        if row is None or (row["agency_id"], row["patient_id"]) != (agency_id, patient_id):
            return None
        return self._out(row)

    async def choose_alternative(
        self, request_id: uuid.UUID, alternative: str, at: datetime, by: str, by_role: str
    ) -> None:
        self.requests[request_id].update(
            chosen_alternative=alternative, chosen_at=at, chosen_by_subject=by, chosen_by_role=by_role
        )

    async def service_requests(self, agency_id: str, patient_id: uuid.UUID) -> list[dict[str, Any]]:
        mine = [
            r for r in self.requests.values() if (r["agency_id"], r["patient_id"]) == (agency_id, patient_id)
        ]
        return [self._out(r) for r in sorted(mine, key=lambda r: (r["created_at"], r["id"]))]


class FakeEducationStore:
    """``EducationStore`` over a dict."""

    def __init__(self) -> None:
        self.education_records: dict[uuid.UUID, dict[str, Any]] = {}

    async def insert_education(self, row: dict[str, Any]) -> None:
        assert row["id"] not in self.education_records
        self.education_records[row["id"]] = _json(row)


class FakeErasureStore:
    """``ErasureStore`` over a dict (and a list of the patients whose kept replies were deleted)."""

    def __init__(self) -> None:
        self.erased_patients: dict[uuid.UUID, dict[str, Any]] = {}
        self.replies_forgotten: list[uuid.UUID] = []  # the kernel's idempotency_keys, as far as erasure goes

    async def record_erasure(self, patient_id: uuid.UUID, agency_id: str, at: datetime) -> None:
        self.erased_patients.setdefault(
            patient_id, {"patient_id": patient_id, "agency_id": agency_id, "erased_at": at}
        )

    async def erased_at(self, patient_id: uuid.UUID) -> datetime | None:
        row = self.erased_patients.get(patient_id)
        return None if row is None else row["erased_at"]

    async def forget_replies(self, patient_id: uuid.UUID) -> None:
        self.replies_forgotten.append(patient_id)


class FakeCareplanStore:
    """``CareplanStore``: one fake per wing."""

    def __init__(self) -> None:
        self.plans = FakePlanStore()
        self.team = FakeTeamStore()
        self.necessity = FakeNecessityStore()
        self.education = FakeEducationStore()
        self.erasure = FakeErasureStore()

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        return await self.plans.agency_of_patient(patient_id)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def keys() -> FakePatientKeys:
    """Patients' data keys as intake would give them (``.erase``, ``.down``)."""
    return FakePatientKeys()


@pytest.fixture
def ctx(clock: FakeClock, keys: FakePatientKeys) -> CareplanContext:
    library = load_rules(PlanLibrary, DEFAULT_LIBRARY)
    return CareplanContext(
        library,
        load_rules(NecessityCriteria, DEFAULT_CRITERIA),
        load_education(DEFAULT_EDUCATION, library),
        keys,
        clock,
    )


@pytest.fixture
def store() -> FakeCareplanStore:
    return FakeCareplanStore()
