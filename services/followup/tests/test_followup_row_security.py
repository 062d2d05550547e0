"""Row-level security on followup's tables, on the real database as the services' role (no SUPERUSER,
no BYPASSRLS): two agencies' patients go through followup's own use cases; then a query without any
agency filter, a write for another agency and a connection that never named its agency are tried."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from careloop_shared import db
from careloop_shared.contracts import (
    FollowUpCadence,
    PatientAssessed,
    PatientRegistered,
    PlanUpdated,
    ReferralMade,
    RiskLevel,
)
from careloop_shared.crypto import key_id
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.outbox import unit_of_work
from careloop_shared.testing import KERNEL_TABLES_WITHOUT_POLICY
from careloop_shared.testing.fakes import FakeClock, received
from careloop_shared.testing.keys import FakePatientKeys
from followup import handlers
from followup.caseload.handlers import when_patient_registered_learn_care_manager
from followup.config import FollowupContext
from followup.domain.commands import RecordOutcome, RescheduleFollowUp
from followup.domain.scheduling import new_follow_up
from followup.store import FollowupStore
from followup.tasks.handlers import when_event_track_tasks

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[1] / "followup" / "migrations"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
A, B = "agency-a", "agency-b"
RECEIVING = "agency-food"  # the agency a referral goes to: followup shows it nothing
# Every table of followup (all hold patient data: 006_row_security.sql) by the column naming whose row
# it is. Those by patient carry an agency_id; an outcome and a move go by their follow-up's.
PROTECTED = {
    "follow_ups": "patient_id",
    "patient_plans": "patient_id",
    "patients": "patient_id",
    "tasks": "patient_id",
    "task_resolutions": "patient_id",
    "follow_up_outcomes": "follow_up_id",
    "follow_up_reschedules": "follow_up_id",
}
WITH_AGENCY = [t for t, column in PROTECTED.items() if column == "patient_id"]


def migrations(upto: str = "~") -> list[tuple[str, str]]:
    ours = db.folder_migrations("followup", MIGRATIONS)
    return [*db.kernel_migrations(), *(m for m in ours if m[0] <= f"followup/{upto}")]


async def in_uow(pool: asyncpg.Pool, ctx: FollowupContext, use_case: Any, *message: Any) -> Any:
    """One use case in its own transaction, acting for whichever agency the caller acts for."""
    async with unit_of_work(pool, lambda t: t, store=FollowupStore) as uow:
        return await use_case(ctx, uow, *message)


def events_of_a_patient(patient: uuid.UUID, agency: str, now: datetime) -> list[Any]:
    """Registered with a care manager, assessed (a PHQ-9 to do), a weekly plan, a referral out."""
    return [
        PatientRegistered(
            patient_id=patient,
            agency_id=agency,
            preferred_language="en",
            registered_at=now,
            care_manager_id="cm",
        ),
        PatientAssessed(
            patient_id=patient,
            agency_id=agency,
            assessment_id=uuid.uuid4(),
            instrument="phq-2",
            rules_version="test",
            needs=[],
            risk_level=RiskLevel.moderate,
            assessed_at=now,
            recommended_instruments=["phq-9"],
        ),
        PlanUpdated(
            patient_id=patient,
            agency_id=agency,
            plan_id=uuid.uuid4(),
            version=1,
            status="active",
            risk_level=RiskLevel.moderate,
            goals=[],
            interventions=[],
            follow_up=FollowUpCadence(every_days=7, priority=RiskLevel.moderate),
        ),
        ReferralMade(
            patient_id=patient,
            agency_id=agency,
            referral_id=uuid.uuid4(),
            plan_id=uuid.uuid4(),
            intervention_id=uuid.uuid4(),
            need="food-insecurity",
            program_id="food-bank-1",
            receiving_agency_id=RECEIVING,
            status="requested",
            response_due_at=now + timedelta(days=3),
        ),
    ]


CONSUMED_BY = [
    when_patient_registered_learn_care_manager,
    when_event_track_tasks,
    handlers.when_plan_updated_schedule_follow_up,
    handlers.when_referral_made_schedule_check_in,
]


async def contact(pool: asyncpg.Pool, ctx: FollowupContext, agency: str, patient: uuid.UUID) -> None:
    """The care manager records reaching the patient on the due cadence follow-up, then moves the next,
    acting for their agency as a request does."""
    with as_agency(agency):
        due = await pool.fetchval(
            "SELECT id FROM follow_ups WHERE patient_id = $1 AND reason = 'plan-cadence'"
            " AND status IN ('due', 'overdue')",
            patient,
        )
        reached = RecordOutcome(agency, due, "cm", "care-manager", reached=True, note="Spoke at home")
        result = await in_uow(pool, ctx, handlers.record_outcome, reached)
        later = ctx.clock() + timedelta(days=2)
        move = RescheduleFollowUp(agency, result["next_follow_up_id"], "cm", "care-manager", "other", later)
        await in_uow(pool, ctx, handlers.reschedule_follow_up, move)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def followup(database_factory, rules) -> AsyncIterator[tuple[asyncpg.Pool, str, dict[str, uuid.UUID]]]:
    """followup's database with a patient of each of two agencies in every table, put there by its
    consumers and periodic step (acting for every agency, as they do) and its commands."""
    url = await database_factory("followup_row_security")
    pool = await db.create_pool(url, min_size=1, max_size=2)
    await db.migrate(pool, migrations())
    clock = FakeClock(T0)
    ctx = FollowupContext(rules, clock, keys=FakePatientKeys())
    patients = {A: uuid.uuid4(), B: uuid.uuid4()}
    for agency, patient in patients.items():
        for use_case, event in zip(CONSUMED_BY, events_of_a_patient(patient, agency, T0), strict=True):
            await in_uow(pool, ctx, use_case, received(event, time=T0))
    clock.advance(days=7, hours=1)
    while await in_uow(pool, ctx, handlers.fire_due_and_overdue_follow_ups):
        pass
    for agency, patient in patients.items():
        await contact(pool, ctx, agency, patient)
    yield pool, url, patients
    await pool.close()


def whole(rows: Iterable[asyncpg.Record]) -> list[str]:
    """Whole rows, comparable in any order (a jsonb column is a list: rows are not hashable)."""
    return sorted(repr(dict(r)) for r in rows)


async def agencies_of(pool: asyncpg.Pool) -> dict[uuid.UUID, str]:
    """Each patient's and each follow-up's agency, as the service's own work sees them."""
    with as_agency(ALL_AGENCIES):
        rows = await pool.fetch("SELECT id, patient_id, agency_id FROM follow_ups")
    return {r["patient_id"]: r["agency_id"] for r in rows} | {r["id"]: r["agency_id"] for r in rows}


async def test_every_table_holding_patient_data_is_forced_under_row_security(followup):
    pool, _, _ = followup
    assert await db.bypasses_row_security(pool) is False
    tables = await pool.fetch(
        "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity AS forced,"
        " EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND NOT a.attisdropped"
        "  AND a.attname IN ('agency_id', 'patient_id', 'follow_up_id')) AS of_a_patient"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
    )
    assert {r["relname"] for r in tables if r["of_a_patient"] and not r["forced"]} == set()
    assert set(PROTECTED) <= {r["relname"] for r in tables if r["forced"]}
    assert {r["relname"] for r in tables if not r["forced"]} <= KERNEL_TABLES_WITHOUT_POLICY


async def test_a_query_without_an_agency_filter_sees_only_the_agencys_rows(followup):
    pool, _, _ = followup
    agency_of = await agencies_of(pool)
    for table, column in PROTECTED.items():
        unfiltered = f"SELECT * FROM {table}"  # as a query that forgot its agency would read
        with as_agency(ALL_AGENCIES):
            every_row = await pool.fetch(unfiltered)
        own = {a: [r for r in every_row if agency_of[r[column]] == a] for a in (A, B)}
        assert own[A] and own[B], f"{table}: a row of each agency to begin with"
        for agency, other in ((A, B), (B, A)):
            with as_agency(agency):
                seen = await pool.fetch(unfiltered)
            # followup's policies let no agency see another's row: exactly its own, whole, and no more.
            assert whole(seen) == whole(own[agency]), table
            assert not {r[column] for r in seen} & {r[column] for r in own[other]}, table
        with as_agency(RECEIVING):  # a referral's receiving agency sees no check-in, task or outcome of it
            assert await pool.fetch(unfiltered) == [], table


async def test_another_agencys_patient_is_not_found_by_the_reads_without_an_agency(followup):
    pool, _, patients = followup
    with as_agency(ALL_AGENCIES):
        theirs = await pool.fetchval(
            "SELECT follow_up_id FROM follow_up_outcomes o JOIN follow_ups f ON f.id = o.follow_up_id"
            " WHERE f.patient_id = $1",
            patients[B],
        )
    store = FollowupStore(pool)
    with as_agency(A):
        assert await store.agency_of_patient(patients[A]) == A
        assert await store.agency_of_patient(patients[B]) is None  # the audit log's reads: 404
        assert await store.list_outcomes(theirs) == []
        assert await store.get_plan(patients[B]) is None
        assert await store.caseload.care_managers([patients[A], patients[B]]) == {patients[A]: "cm"}
    with as_agency(B):
        shown = [(o["note"], o["note_sealed"]["kid"]) for o in await store.list_outcomes(theirs)]
        assert shown == [(None, key_id(patients[B]))]  # kept sealed with their patient's key


async def refused(pool: asyncpg.Pool, agency: str, write: Any) -> None:
    """``write(store)``, acting for ``agency`` in a transaction of its own, is refused by a policy."""
    with as_agency(agency), pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with pool.acquire() as conn, conn.transaction():
            await write(FollowupStore(conn))


async def test_acting_for_one_agency_cannot_write_anothers_rows(followup, rules):
    pool, _, patients = followup
    theirs, newcomer, now = patients[B], uuid.uuid4(), T0

    async def one_of_theirs(table: str) -> dict[str, Any]:
        with as_agency(ALL_AGENCIES):
            row = await pool.fetchrow(f"SELECT * FROM {table} WHERE patient_id = $1 LIMIT 1", theirs)
        return dict(row)

    follow_up = await one_of_theirs("follow_ups")
    plan, task, resolution = [await one_of_theirs(t) for t in ("patient_plans", "tasks", "task_resolutions")]
    check_in = new_follow_up(
        rules, now, patient_id=theirs, agency_id=B, reason="plan-cadence", priority="high", due_at=now
    )
    outcome = {"follow_up_id": follow_up["id"], "attempt": 99, "reached": True, "goal_progress": []}
    outcome |= {"barriers": [], "recorded_by": "cm", "recorded_at": now}
    move = {"follow_up_id": follow_up["id"], "due_point": 99, "reason": "other", "from_due_at": now}
    move |= {"to_due_at": now, "by_subject": "cm", "at": now}
    writes = {  # each through the store's own statement, for a row of agency B
        "follow_ups": lambda s: s.insert_follow_up({**check_in, "status": "completed"}),
        "patient_plans": lambda s: s.save_plan({**plan, "patient_id": newcomer}),
        "patients": lambda s: s.caseload.learn_care_manager(
            {"patient_id": newcomer, "agency_id": B, "care_manager_id": "cm", "assigned_at": now}
        ),
        "tasks": lambda s: s.tasks.insert_task({**task, "id": uuid.uuid4(), "cause_key": "another"}),
        "task_resolutions": lambda s: s.tasks.resolve([{**resolution, "event_id": uuid.uuid4()}]),
        "follow_up_outcomes": lambda s: s.insert_outcome(outcome),
        "follow_up_reschedules": lambda s: s.insert_reschedule(move),
    }
    assert set(writes) == set(PROTECTED)
    for write in writes.values():
        await refused(pool, A, write)

    mine = patients[A]
    for table, column in PROTECTED.items():
        whose = (
            "patient_id"
            if column == "patient_id"
            else "(SELECT patient_id FROM follow_ups WHERE id = follow_up_id)"
        )
        with as_agency(A):
            async with pool.acquire() as conn, conn.transaction():
                # Another agency's rows are not there to change: an unfiltered update touches A's only.
                touched = await conn.fetch(f"UPDATE {table} SET {column} = {column} RETURNING {whose} AS p")
        assert {r["p"] for r in touched} == {mine}, table
    for table in WITH_AGENCY:  # nor can A hand its own row over to B
        handover = f"UPDATE {table} SET agency_id = '{B}' WHERE patient_id = $1"
        await refused(pool, A, lambda s, sql=handover: s.db.execute(sql, mine))


async def test_a_connection_that_never_named_its_agency_sees_nothing(followup):
    pool, url, _ = followup
    plain = await asyncpg.connect(url)  # psql, a tool, a script: not the service's pool
    try:
        for table, column in PROTECTED.items():
            with as_agency(ALL_AGENCIES):
                assert await pool.fetchval(f"SELECT count(*) FROM {table}") > 0, table
            assert await plain.fetchval(f"SELECT count(*) FROM {table}") == 0, table
            assert await plain.execute(f"UPDATE {table} SET {column} = {column}") == "UPDATE 0", table
    finally:
        await plain.close()


async def test_the_migration_gives_earlier_resolutions_their_patients_agency(database_factory, rules):
    pool = await db.create_pool(await database_factory("followup_rls_backfill"), min_size=1, max_size=1)
    try:
        await db.migrate(pool, migrations(upto="005_caseload_needs.sql"))
        registered, followed, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        store = FollowupStore(pool)
        await store.caseload.learn_care_manager(
            {"patient_id": registered, "agency_id": A, "care_manager_id": "cm", "assigned_at": T0}
        )
        row = new_follow_up(
            rules, T0, patient_id=followed, agency_id=B, reason="plan-cadence", priority="high", due_at=T0
        )
        del row["purpose"]  # a column since migration 013
        await db.insert_row(pool, "follow_ups", row)

        def resolution(patient: uuid.UUID) -> dict[str, Any]:
            """A resolution as recorded before 006: no agency."""
            return {"patient_id": patient, "kind": "reassess", "subject": "", "event_id": uuid.uuid4()} | {
                "event_type": "careloop.intake.patient_assessed.v1",
                "resolved_at": T0,
                "any_time": False,
            }

        for patient in (registered, followed, unknown):
            await db.insert_row(pool, "task_resolutions", resolution(patient))
        await db.migrate(pool, migrations())

        with as_agency(ALL_AGENCIES):
            rows = await pool.fetch("SELECT patient_id, agency_id FROM task_resolutions")
        assert {r["patient_id"]: r["agency_id"] for r in rows} == {registered: A, followed: B, unknown: None}
        with as_agency(A):
            assert await pool.fetchval("SELECT array_agg(patient_id) FROM task_resolutions") == [registered]
        # The row of a patient followup knew nothing else of stays, for its own work; a new row without
        # an agency is refused.
        with as_agency(ALL_AGENCIES), pytest.raises(asyncpg.CheckViolationError):
            await store.tasks.resolve([resolution(unknown)])
    finally:
        await pool.close()
