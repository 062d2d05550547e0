"""Row-level security by agency on intake's tables, against the real database as the services' role (no
SUPERUSER, no BYPASSRLS): a query without an agency filter finds only the agency's rows, and of another
agency's only a patient referred to it while the referral is open, read-only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import intake
from careloop_shared import db
from careloop_shared.contracts import ContactPreference, ReferralMade, ReferralStatusChanged
from careloop_shared.db import ALL_AGENCIES, NO_AGENCY, as_agency, insert_row
from careloop_shared.outbox import unit_of_work
from careloop_shared.rules import load_rules
from careloop_shared.testing import KERNEL_TABLES_WITH_POLICY, KERNEL_TABLES_WITHOUT_POLICY
from careloop_shared.testing.batches import pages_read
from careloop_shared.testing.fakes import FakeClock, received
from intake import handlers
from intake.care_manager.handlers import reassign_care_manager
from intake.config import IntakeContext
from intake.domain import care_manager
from intake.domain.care_manager import CareManagerRules
from intake.domain.commands import AssessPatient, ReassignCareManager, RecordConsent, RegisterPatient
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.identity.store import PATIENT_COLUMNS, PATIENTS_AND_KEYS
from intake.referred.api import minimum_shown, visible_to
from intake.referred.handlers import when_referral_made_grant_access, when_referral_status_changed_end_access
from intake.store import IntakeStore, _locked_patients

pytestmark = pytest.mark.integration

A, B = "agency-a", "agency-b"
BY = {"by": "cm-ana", "by_role": "care-manager"}
PHQ9_NONE = dict.fromkeys(
    ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"], 0
)
# Each protected table: its key, and the column naming the agency whose rows they are.
PROTECTED = {
    "patients": ("id", "agency_id"),
    "consents": ("id", "agency_id"),
    "assessments": ("id", "agency_id"),
    "care_manager_assignments": ("id", "agency_id"),
    "referral_grants": ("referral_id", "patient_agency_id"),
}
# Kernel tables without an agency column (005_row_security.sql says why they hold no policy), and the
# retention rules' runs (007: when, which rules, counts; no patient).
UNPROTECTED = KERNEL_TABLES_WITHOUT_POLICY | {"retention_runs"}
KERNEL_PROTECTED = KERNEL_TABLES_WITH_POLICY
# The patients' wrapped data keys: by agency too (test_intake_erasure.py reads them per agency).
KEYS = {"patient_keys"}

Handler = Callable[[IntakeContext, Any, Any], Awaitable[Any]]


@dataclass
class Case:
    """One agency's patient, with a consent, an assessment and a reassignment."""

    patient: uuid.UUID
    consent: uuid.UUID
    assessment: uuid.UUID


@dataclass(frozen=True)
class Service:
    pool: asyncpg.Pool
    ctx: IntakeContext

    async def run(self, agency: str, handler: Handler, message: Any) -> Any:
        """A use case in one transaction, its connection acting for ``agency`` (as a request or consumer)."""
        with as_agency(agency):
            async with unit_of_work(self.pool, lambda t: t, store=IntakeStore) as uow:
                return await handler(self.ctx, uow, message)

    async def rows(self, agency: str, table: str) -> set[tuple[Any, str]]:
        """Every row of the table the agency finds with no filter at all: (key, agency column)."""
        key, column = PROTECTED[table]
        with as_agency(agency):
            return {(r[0], r[1]) for r in await self.pool.fetch(f"SELECT {key}, {column} FROM {table}")}

    async def new_case(self, agency: str, given_name: str, consent_to: str = B) -> Case:
        registration = RegisterPatient(
            agency_id=agency,
            given_name=given_name,
            family_name="Etxeberria",
            birth_date=date(1958, 3, 14),
            preferred_language="es",
            contact_preference=ContactPreference.text,
            phone="+1 555 0100",
            **BY,
        )
        patient = await self.run(agency, handlers.register_patient, registration)
        consent = RecordConsent(agency, patient, "referral", [consent_to], [], **BY)
        assessed = AssessPatient(agency, patient, "phq-9", PHQ9_NONE, **BY)
        reassigned = ReassignCareManager(agency, patient, "cm-bo", by="sup-eva", by_role="supervisor")
        case = Case(
            patient,
            await self.run(agency, handlers.record_consent, consent),
            await self.run(agency, handlers.assess_patient, assessed),
        )
        await self.run(agency, reassign_care_manager, reassigned)
        return case


@dataclass(frozen=True)
class Caseload:
    service: Service
    url: str
    a: Case  # A's own, never referred
    b: Case  # B's own
    referred: Case  # A's, referred to B: the referral is open
    closed: Case  # A's, referred to B: the referral closed
    open_referral: uuid.UUID
    closed_referral: uuid.UUID


def made(case: Case, referral_id: uuid.UUID, receiving: str = B, patient_agency: str = A) -> ReferralMade:
    return ReferralMade(
        patient_id=case.patient,
        agency_id=patient_agency,
        referral_id=referral_id,
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        need="food-insecurity",
        program_id="food-bank-1",
        receiving_agency_id=receiving,
        status="requested",
        response_due_at=datetime(2026, 11, 9, tzinfo=UTC),
        program_category="food-assistance",
    )


def completed(case: Case, referral_id: uuid.UUID, patient_agency: str = A) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        patient_id=case.patient,
        agency_id=patient_agency,
        referral_id=referral_id,
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        from_status="accepted",
        to_status="completed",
        by_agency_id=B,
        by_party="target",
        changed_at=datetime(2026, 11, 2, 10, tzinfo=UTC),
        actor_id="pr-paz",
        actor_role="provider",
    )


@pytest_asyncio.fixture(scope="module")
async def load(database_factory) -> AsyncIterator[Caseload]:
    url = await database_factory("intake_row_security")
    pool = await db.create_pool(url, min_size=1, max_size=4)
    migrations = Path(intake.__file__).parent / "migrations"
    await db.migrate(pool, [*db.kernel_migrations(), *db.folder_migrations("intake", migrations)])
    ctx = IntakeContext(
        load_rules(ScreeningRules, RULES_FILE),
        load_rules(CareManagerRules, care_manager.RULES_FILE),
        FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
    )
    service = Service(pool, ctx)
    # Through the service's own code: use cases acting for their agency, the consumer for every agency.
    a, b = await service.new_case(A, "Marisol"), await service.new_case(B, "Benat")
    referred, closed = await service.new_case(A, "Rosa"), await service.new_case(A, "Carmen")
    open_referral, closed_referral = uuid.uuid4(), uuid.uuid4()
    await service.run(ALL_AGENCIES, when_referral_made_grant_access, received(made(referred, open_referral)))
    await service.run(ALL_AGENCIES, when_referral_made_grant_access, received(made(closed, closed_referral)))
    await service.run(
        ALL_AGENCIES, when_referral_status_changed_end_access, received(completed(closed, closed_referral))
    )
    yield Caseload(service, url, a, b, referred, closed, open_referral, closed_referral)
    await pool.close()


async def test_every_table_with_an_agency_column_forces_row_security_for_a_role_that_cannot_bypass_it(load):
    assert await db.bypasses_row_security(load.service.pool) is False
    tables = await load.service.pool.fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
        " EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
        "         AND NOT a.attisdropped AND a.attname LIKE '%agency%') AS has_agency"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
    )
    by_name = {r["relname"]: r for r in tables}
    # Every table is accounted for: a new one must be given a policy or a reason here.
    assert set(by_name) == set(PROTECTED) | KERNEL_PROTECTED | UNPROTECTED | KEYS
    with_agency = {name for name, r in by_name.items() if r["has_agency"]}
    forced = {name for name, r in by_name.items() if r["relrowsecurity"] and r["relforcerowsecurity"]}
    assert with_agency <= forced  # no exceptions in intake
    assert forced == set(PROTECTED) | KERNEL_PROTECTED | KEYS  # idempotency_keys names its agency "scope"


async def test_an_unfiltered_select_finds_only_the_agencys_rows_and_the_patient_referred_to_it(load):
    a_cases, b_cases = (load.a, load.referred, load.closed), (load.b,)

    def own(cases: tuple[Case, ...], agency: str, field: str) -> set[tuple[Any, str]]:
        return {(getattr(c, field), agency) for c in cases}

    assert await load.service.rows(A, "patients") == own(a_cases, A, "patient")
    assert await load.service.rows(A, "consents") == own(a_cases, A, "consent")
    assert await load.service.rows(A, "assessments") == own(a_cases, A, "assessment")
    assert await load.service.rows(A, "referral_grants") == {
        (load.open_referral, A),
        (load.closed_referral, A),
    }
    # Two assignments per patient (registration, reassignment), each the patient's agency's.
    with as_agency(A):
        assignments = await load.service.pool.fetch(
            "SELECT patient_id, agency_id FROM care_manager_assignments"
        )
    assert sorted((r["patient_id"], r["agency_id"]) for r in assignments) == sorted(
        [(c.patient, A) for c in a_cases] * 2
    )

    # B: its own rows, and of A's only the patient referred to it while the referral is open, that
    # patient's consents (they decide whether B may see them) and the open grant; never the
    # assessments or the assignments, nor anything of the patient whose referral closed.
    assert await load.service.rows(B, "patients") == own(b_cases, B, "patient") | {(load.referred.patient, A)}
    assert await load.service.rows(B, "consents") == own(b_cases, B, "consent") | {(load.referred.consent, A)}
    assert await load.service.rows(B, "assessments") == own(b_cases, B, "assessment")
    assert await load.service.rows(B, "referral_grants") == {(load.open_referral, A)}
    with as_agency(B):
        assignments = await load.service.pool.fetch(
            "SELECT patient_id, agency_id FROM care_manager_assignments"
        )
    assert sorted((r["patient_id"], r["agency_id"]) for r in assignments) == [(load.b.patient, B)] * 2


async def test_a_connection_acting_for_no_agency_or_never_saying_sees_nothing(load):
    plain = await asyncpg.connect(load.url)  # psql, a tool: never set careloop.agency
    try:
        for table in PROTECTED:
            assert await load.service.rows(NO_AGENCY, table) == set(), table
            assert await plain.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    finally:
        await plain.close()
    assert sum([len(await load.service.rows(ALL_AGENCIES, t)) for t in PROTECTED]) > 0  # the rows are there


async def test_acting_for_one_agency_cannot_write_a_row_of_another(load):
    # A copy of one of A's own rows given B's agency, through the insert every store uses.
    own = {
        "patients": (load.a.patient, {"given_name": "Smuggled", "name_key": "smuggled"}),
        "consents": (load.a.consent, {}),
        "assessments": (load.a.assessment, {}),
        "referral_grants": (load.open_referral, {}),
    }
    for table, (key_value, changes) in own.items():
        key, column = PROTECTED[table]
        with as_agency(A):
            row = dict(await load.service.pool.fetchrow(f"SELECT * FROM {table} WHERE {key} = $1", key_value))
            copy = {**row, **changes, key: uuid.uuid4(), column: B}
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await insert_row(load.service.pool, table, copy)
            # Moving A's own row to B is refused too; B's rows are not there to change.
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await load.service.pool.execute(
                    f"UPDATE {table} SET {column} = $1 WHERE {key} = $2", B, key_value
                )
            assert await load.service.pool.execute(
                f"UPDATE {table} SET {column} = {column} WHERE {column} = $1", B
            ) == ("UPDATE 0")
    with as_agency(A):
        assignment = dict(
            await load.service.pool.fetchrow(
                "SELECT * FROM care_manager_assignments WHERE patient_id = $1 LIMIT 1", load.a.patient
            )
        )
        assignment.pop("position")  # generated
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await insert_row(
                load.service.pool,
                "care_manager_assignments",
                {**assignment, "id": uuid.uuid4(), "agency_id": B},
            )

    # The use cases refuse it the same way when a command names another agency than the caller's.
    b_registration = RegisterPatient(
        agency_id=B,
        given_name="Smuggled",
        family_name="Etxeberria",
        birth_date=date(1958, 3, 14),
        preferred_language="es",
        contact_preference=ContactPreference.text,
        phone="+1 555 0100",
        **BY,
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await load.service.run(A, handlers.register_patient, b_registration)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await load.service.run(
            A, when_referral_made_grant_access, received(made(load.b, uuid.uuid4(), patient_agency=B))
        )
    assert {p for p, _ in await load.service.rows(ALL_AGENCIES, "patients")} == {
        load.a.patient,
        load.b.patient,
        load.referred.patient,
        load.closed.patient,
    }


async def test_the_agency_a_patient_is_referred_to_reads_them_but_changes_nothing(load):
    with as_agency(B):
        for table, key, value in (
            ("patients", "id", load.referred.patient),
            ("consents", "id", load.referred.consent),
            ("referral_grants", "referral_id", load.open_referral),
        ):
            assert (
                await load.service.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {key} = $1", value) == 1
            )
            assert await load.service.pool.execute(
                f"UPDATE {table} SET {key} = {key} WHERE {key} = $1", value
            ) == ("UPDATE 0")
            assert (
                await load.service.pool.execute(f"DELETE FROM {table} WHERE {key} = $1", value) == "DELETE 0"
            )
            # Locking a row is changing it: refused too.
            assert (
                await load.service.pool.fetch(f"SELECT 1 FROM {table} WHERE {key} = $1 FOR UPDATE", value)
                == []
            )


async def test_a_referral_closing_between_the_reads_hides_the_patient_instead_of_failing(load):
    service = load.service
    c, d = "agency-c", "agency-d"  # of this test alone: the other tests' rows stay as they are
    patient = await service.new_case(c, "Ines", consent_to=d)
    referral = uuid.uuid4()
    await service.run(ALL_AGENCIES, when_referral_made_grant_access, received(made(patient, referral, d, c)))
    store, at = IntakeStore(service.pool), service.ctx.clock()
    with as_agency(d):
        seen = await visible_to(store, d, at)
        assert [s.patient_id for s in seen] == [patient.patient]
        assert [p.given_name for p in await minimum_shown(service.ctx, store, seen)] == ["Ines"]
    await service.run(
        ALL_AGENCIES, when_referral_status_changed_end_access, received(completed(patient, referral, c))
    )
    with as_agency(d):  # what was seen a moment ago is no longer there to show
        assert await minimum_shown(service.ctx, store, seen) == []
        assert await visible_to(store, d, at) == []


async def test_the_referral_look_up_is_one_function_call_not_sub_plans_planned_with_every_statement(load):
    """The read-only policies' look-up (009) is planned inside its function; written inline, every statement
    over patients, consents and patient_keys planned it again as sub-plans (the patient look-up of each
    assessment: 0.19 ms of planning on a quiet server, 0.085 ms with the function)."""
    lookup = (
        f"SELECT {PATIENT_COLUMNS} FROM {PATIENTS_AND_KEYS}"
        " WHERE p.id = $1 AND p.agency_id = $2 FOR UPDATE OF p"
    )
    with as_agency(A):
        async with load.service.pool.acquire() as conn, conn.transaction():
            plan = json.dumps(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {lookup}", load.a.patient, A))
            found = await conn.fetchrow(lookup, load.a.patient, A)
    assert "SubPlan" not in plan
    assert "careloop_referred(" in plan
    assert found is not None and found["id"] == load.a.patient


async def test_the_locked_patient_look_up_gives_the_inline_joins_row_holds_it_and_hides_other_agencies(load):
    """``careloop_patient_locked`` (010), which every command's ``get_patient(lock=True)`` calls, gives what
    the join written inline gives, column for column; it holds the row for the caller's transaction, and
    finds nothing of another agency's patient, nor for a connection acting for another agency."""
    inline = f"SELECT {PATIENT_COLUMNS} FROM {PATIENTS_AND_KEYS} WHERE p.id = $1 AND p.agency_id = $2"
    pool = load.service.pool
    with as_agency(A):
        async with pool.acquire() as conn, conn.transaction():
            expected = await conn.fetchrow(inline, load.a.patient, A)
            for _ in range(7):  # past the five executions after which PostgreSQL may keep one plan
                found = await IntakeStore(conn).get_patient(A, load.a.patient, lock=True)
            assert found is not None and expected is not None
            assert list(found.items()) == list(expected.items())
            assert found["key_wrapped"] is not None  # the data key came with it
            async with pool.acquire() as other:  # another transaction cannot take the row meanwhile
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await other.execute(
                        "SELECT 1 FROM patients WHERE id = $1 FOR UPDATE NOWAIT", load.a.patient
                    )
            assert await IntakeStore(conn).get_patient(A, load.b.patient, lock=True) is None
    with as_agency(B):  # acting for agency-b, asking as agency-a: the policies hide the row
        async with pool.acquire() as conn, conn.transaction():
            assert await IntakeStore(conn).get_patient(A, load.a.patient, lock=True) is None


async def test_patients_locked_together_each_get_the_single_look_ups_row_and_none_of_another_agency(load):
    """Commands sharing a transaction lock their patients in one statement (``careloop_patients_locked``,
    012): each patient gets what the single look-up gives, column for column,
    all are held, and a patient of another agency (asked as this agency, or found through a connection
    acting for another) gets nothing."""
    a, referred, closed, b = load.a.patient, load.referred.patient, load.closed.patient, load.b.patient
    pool = load.service.pool
    with as_agency(A):
        async with pool.acquire() as conn, conn.transaction():
            single = [
                await conn.fetchrow("SELECT * FROM careloop_patient_locked($1, $2)", p, A)
                for p in (a, closed)
            ]
            asked = [(A, closed), (A, b), (A, a), (B, b), (A, uuid.uuid4())]
            found = await _locked_patients(conn, asked)
            assert [None if r is None else list(r.items()) for r in found] == [
                list(single[1].items()),
                None,
                list(single[0].items()),
                None,
                None,
            ]
            async with pool.acquire() as other:  # another transaction cannot take those rows meanwhile
                for patient in (a, closed):
                    with pytest.raises(asyncpg.LockNotAvailableError):
                        await other.execute("SELECT 1 FROM patients WHERE id = $1 FOR UPDATE NOWAIT", patient)
                await other.execute("SELECT 1 FROM patients WHERE id = $1 FOR UPDATE NOWAIT", referred)
    with as_agency(B):  # acting for agency-b, asking as agency-a: the policies hide the rows
        async with pool.acquire() as conn, conn.transaction():
            assert await _locked_patients(conn, [(A, a), (A, closed)]) == [None, None]


INSERT_PATIENTS = (
    "INSERT INTO patients (id, agency_id, preferred_language, contact_preference, created_at, updated_at)"
    " SELECT id, $2, 'en', 'text', now(), now() FROM unnest($1::uuid[]) AS id"
)
INSERT_OPEN_GRANTS = (
    "INSERT INTO referral_grants (referral_id, patient_id, patient_agency_id, receiving_agency_id, need,"
    " granted_at) SELECT gen_random_uuid(), id, $2, $3, 'food-insecurity', now()"
    " FROM unnest($1::uuid[]) AS id"
)


async def _blocks_read(conn: asyncpg.Connection, query: str, *args: Any) -> int:
    """Pages the statement touched, the functions it called included."""
    pages, _ = await pages_read(conn, query, *args)
    return pages


async def test_the_look_ups_a_session_keeps_a_plan_for_find_the_patient_by_id_however_big_the_agency(load):
    """careloop_patient_locked and careloop_referred keep the plan a session makes on its first calls
    (011). Made while the tables were nearly empty, as on a fresh platform, it walked every patient of the
    agency (or every open grant of the receiving agency) for each look-up: 2.86 ms a locked look-up in a
    fresh platform's first open-loop stage. Here each session makes its plans on small tables, then the
    agency grows to 5,001 patients, all referred to one other agency: each look-up still reads a few pages.
    (Added last in this module: the rows stay, under agencies no other test reads.)"""
    many, receiving = "agency-many", "agency-receiving"
    pool = load.service.pool
    first, others = uuid.uuid4(), [uuid.uuid4() for _ in range(5_000)]
    with as_agency(ALL_AGENCIES):
        await pool.execute(INSERT_PATIENTS, [first], many)
        await pool.execute(INSERT_OPEN_GRANTS, [first], many, receiving)
    with as_agency(many):
        locking = await pool.acquire()
    with as_agency(receiving):
        reading = await pool.acquire()
    try:
        locked_look_up = "SELECT * FROM careloop_patient_locked($1, $2)"
        together = "SELECT * FROM careloop_patients_locked($1::uuid[], $2)"  # a group's (012)
        async with locking.transaction():
            for _ in range(7):  # past the five executions after which PostgreSQL may keep one plan
                assert (await locking.fetchrow(locked_look_up, first, many))["id"] == first
                assert [r["id"] for r in await locking.fetch(together, [first], many)] == [first]
        for _ in range(7):
            assert await reading.fetchval("SELECT careloop_referred($1)", first) is True
        with as_agency(ALL_AGENCIES):
            await pool.execute(INSERT_PATIENTS, others, many)
            await pool.execute(INSERT_OPEN_GRANTS, others, many, receiving)
        async with locking.transaction():
            locked = await _blocks_read(locking, locked_look_up, first, many)
            locked_together = await _blocks_read(locking, together, [first], many)
        referred = await _blocks_read(reading, "SELECT careloop_referred($1)", first)
    finally:
        await pool.release(locking)
        await pool.release(reading)
    # Found by id: 5-7 pages. Before 011 the locked look-up read the agency's index entries here (31
    # pages with 2,000 patients, growing with them), and on a fresh platform the agency's rows as well.
    assert locked < 20, locked
    assert locked_together < 20, locked_together
    assert referred < 20, referred
