"""Row-level security on careplan's tables, on the real database as the services' role (no SUPERUSER,
no BYPASSRLS): a query that forgets its agency filter finds nothing of another agency's patients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from careloop_shared import db
from careloop_shared.contracts import PatientRegistered
from careloop_shared.db import ALL_AGENCIES, NO_AGENCY, as_agency
from careloop_shared.outbox import unit_of_work
from careloop_shared.testing import KERNEL_TABLES_WITHOUT_POLICY
from careloop_shared.testing.fakes import received
from careloop_shared.testing.intake_events import depression_found
from careplan import main
from careplan.domain.commands import AddCareTeamMember, ContributeToPlan, RecordEducation, RequestService
from careplan.education import handlers as education_handlers
from careplan.necessity import handlers as necessity_handlers
from careplan.plans import handlers as plan_handlers
from careplan.store import CareplanStore
from careplan.team import handlers as team_handlers

pytestmark = pytest.mark.integration

MIGRATIONS = [
    *db.kernel_migrations(),
    *db.folder_migrations("careplan", Path(main.__file__).parent / "migrations"),
]
PROTECTED = (
    "patients",
    "plans",
    "plan_versions",
    "care_team_members",
    "care_team_changes",
    "contributions",
    "service_requests",
    "education_records",
)
A, B = "agency-a", "agency-b"
AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Careplan:
    pool: asyncpg.Pool
    url: str
    patients: dict[str, uuid.UUID]  # agency -> its patient


async def _run(pool: asyncpg.Pool, handler: Any, ctx: Any, message: Any) -> Any:
    async with unit_of_work(pool, lambda event_type: event_type, store=CareplanStore) as uow:
        return await handler(ctx, uow, message)


async def _patient_with_everything(pool: asyncpg.Pool, ctx: Any, agency: str) -> uuid.UUID:
    """A patient of ``agency`` with a row in every protected table, made as careplan makes them: the
    events as its consumer applies them (every agency), the commands as a request of the agency."""
    patient = uuid.uuid4()
    registered = PatientRegistered(
        patient_id=patient, agency_id=agency, preferred_language="en", registered_at=AT
    )
    await _run(pool, plan_handlers.when_patient_details_change_personalise_plan, ctx, received(registered))
    assessed = depression_found(patient, agency=agency, at=AT)
    await _run(pool, plan_handlers.when_patient_assessed_revise_plan, ctx, [received(assessed)])
    with as_agency(agency):
        member = await _run(
            pool,
            team_handlers.add_member,
            ctx,
            AddCareTeamMember(
                agency, "cm-ana", "care-manager", patient, "Rosa Okafor", "family", "primary-support"
            ),
        )
        note = ContributeToPlan(agency, "cm-ana", "care-manager", patient, member["id"], "note", 1, note="n")
        await _run(pool, team_handlers.contribute, ctx, note)
        request = RequestService(agency, "cm-ana", "care-manager", patient, "home-health-visits", 1)
        await _run(pool, necessity_handlers.request_service, ctx, request)
        plan = await CareplanStore(pool).plans.plan_version(agency, patient)
        assert plan is not None
        education = next(i for i in plan["document"]["interventions"] if i["kind"] == "education")
        given = RecordEducation(agency, "cm-ana", "care-manager", patient, uuid.UUID(education["id"]))
        await _run(pool, education_handlers.record_education, ctx, given)
    return patient


@pytest.fixture
async def careplan(database_factory, ctx):
    url = await database_factory("careplan_rls")
    pool = await db.create_pool(url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, MIGRATIONS)
        patients = {agency: await _patient_with_everything(pool, ctx, agency) for agency in (A, B)}
        yield Careplan(pool, url, patients)
    finally:
        await pool.close()


async def _seen(pool: asyncpg.Pool, table: str) -> set[tuple[str, uuid.UUID]]:
    # Deliberately no agency filter: the policy alone decides.
    if table == "plan_versions":  # a version names its plan, not its patient
        sql = "SELECT v.agency_id, p.patient_id FROM plan_versions v JOIN plans p USING (plan_id)"
    else:
        sql = f"SELECT agency_id, patient_id FROM {table}"
    return {(r["agency_id"], r["patient_id"]) for r in await pool.fetch(sql)}


async def test_a_query_without_an_agency_filter_sees_only_its_agencys_rows_in_every_table(careplan):
    pool, patients = careplan.pool, careplan.patients
    for table in PROTECTED:
        with as_agency(ALL_AGENCIES):  # both agencies' rows are there
            assert await _seen(pool, table) == {(A, patients[A]), (B, patients[B])}, table
        # careplan shows nothing across agencies: no row of B is A's to see, whatever the table.
        with as_agency(A):
            assert await _seen(pool, table) == {(A, patients[A])}, table
        with as_agency(B):
            assert await _seen(pool, table) == {(B, patients[B])}, table
    with as_agency(A):
        # Whose patient another agency's is (what /v1/audit asks first) is not A's to know.
        assert await CareplanStore(pool).agency_of_patient(patients[B]) is None
        assert await CareplanStore(pool).agency_of_patient(patients[A]) == A


async def test_a_connection_that_never_named_its_agency_sees_nothing(careplan):
    with as_agency(NO_AGENCY):  # an HTTP request before its caller is known
        for table in PROTECTED:
            assert await careplan.pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    plain = await asyncpg.connect(careplan.url)  # psql, a tool
    try:
        for table in PROTECTED:
            assert await plain.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    finally:
        await plain.close()


# A new row copied from one of B's, with fresh keys (so only the policy can refuse it).
FRESH_KEYS = {
    "patients": {"patient_id"},
    "plans": {"patient_id", "plan_id"},
    "plan_versions": set(),  # a new version number below
}


async def test_acting_for_one_agency_cannot_write_or_remove_anothers_rows(careplan):
    pool = careplan.pool
    for table in PROTECTED:
        with as_agency(ALL_AGENCIES):
            before = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE agency_id = $1", B)
            template = await pool.fetchval(
                f"SELECT to_jsonb(t) FROM {table} t WHERE agency_id = $1 LIMIT 1", B
            )
        fresh = {k: str(uuid.uuid4()) for k in FRESH_KEYS.get(table, {"id"})}
        if table == "plan_versions":
            fresh["version"] = template["version"] + 100
        with as_agency(A):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await pool.execute(
                    f"INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, $1::jsonb)",
                    {**template, **fresh},
                )
            # B's rows are not there to change or remove (append-only tables' triggers never fire).
            changed = await pool.execute(f"UPDATE {table} SET agency_id = agency_id WHERE agency_id = $1", B)
            removed = await pool.execute(f"DELETE FROM {table} WHERE agency_id = $1", B)
            assert (changed, removed) == ("UPDATE 0", "DELETE 0"), table
        with as_agency(ALL_AGENCIES):
            assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE agency_id = $1", B) == before


# Not plan_versions and care_team_changes: they refuse every update (append-only).
@pytest.mark.parametrize(
    "table",
    ["patients", "plans", "care_team_members", "contributions", "service_requests", "education_records"],
)
async def test_acting_for_one_agency_cannot_hand_its_rows_to_another(careplan, table):
    with as_agency(A):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await careplan.pool.execute(f"UPDATE {table} SET agency_id = $1", B)


async def test_a_version_belongs_to_its_plans_agency(careplan):
    pool, patients = careplan.pool, careplan.patients
    with as_agency(ALL_AGENCIES):
        plan_of_a = await pool.fetchval("SELECT plan_id FROM plans WHERE patient_id = $1", patients[A])
        # Even acting for every agency, a version cannot name another agency than its plan's.
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await pool.execute(
                "INSERT INTO plan_versions (plan_id, version, status, document, reason, changed_by,"
                " created_at, agency_id) VALUES ($1, 100, 'active', '{}', 'test', 'system', now(), $2)",
                plan_of_a,
                B,
            )


async def test_every_table_holding_an_agency_is_under_forced_row_security(careplan):
    tables = await careplan.pool.fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
        " EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'agency_id'"
        " AND NOT a.attisdropped) AS has_agency,"
        " EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy"
        " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
    )
    by_name = {t["relname"]: t for t in tables}
    assert set(PROTECTED) <= set(by_name)
    for name, t in by_name.items():
        if name in KERNEL_TABLES_WITHOUT_POLICY:
            assert not t["has_agency"], f"{name} holds an agency: it needs a policy"
            continue
        # Every other table (careplan's, and the kernel's audit_log and idempotency_keys) is protected.
        assert (t["relrowsecurity"], t["relforcerowsecurity"], t["has_policy"]) == (True, True, True), name


async def test_the_migration_gives_each_existing_version_its_plans_agency(database_factory):
    url = await database_factory("careplan_rls_backfill")
    pool = await db.create_pool(url, min_size=1, max_size=1)
    try:
        before = [m for m in MIGRATIONS if m[0] != "careplan/004_row_security.sql"]
        assert len(before) == len(MIGRATIONS) - 1
        await db.migrate(pool, before)
        plan_id = uuid.uuid4()
        await pool.execute(
            "WITH p AS (INSERT INTO plans (patient_id, plan_id, agency_id, version, status, updated_at)"
            " VALUES ($1, $2, $3, 1, 'active', now()))"
            " INSERT INTO plan_versions (plan_id, version, status, document, reason, changed_by, created_at)"
            " VALUES ($2, 1, 'active', '{}', 'assessment:phq-2', 'system', now())",
            uuid.uuid4(),
            plan_id,
            A,
        )
        assert await db.migrate(pool, MIGRATIONS) == ["careplan/004_row_security.sql"]
        with as_agency(A):
            assert await pool.fetchval("SELECT agency_id FROM plan_versions WHERE plan_id = $1", plan_id) == A
            # Versions are append-only again once the backfill is done.
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await pool.execute("UPDATE plan_versions SET reason = 'x' WHERE plan_id = $1", plan_id)
        with as_agency(B):
            assert await pool.fetchval("SELECT count(*) FROM plan_versions") == 0
    finally:
        await pool.close()
