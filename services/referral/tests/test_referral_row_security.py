"""Row-level security by agency on referral's tables (migration 006), as the services' role (no
SUPERUSER, no BYPASSRLS): a query that forgets its agency filter finds only the agency's rows and what
the policies share with it (a referral sent to it, once sent, with its history); it cannot write
another agency's; the directory and the recruitment pipeline are everyone's; and the use cases that
act for another agency on purpose (a re-route, quality figures, the gap report) still do."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from careloop_shared import db
from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpCadence,
    Intervention,
    PatientRegistered,
    PlanUpdated,
    RiskLevel,
)
from careloop_shared.db import ALL_AGENCIES, NO_AGENCY, as_agency
from careloop_shared.events import Event
from careloop_shared.outbox import unit_of_work
from careloop_shared.rules import load_rules
from careloop_shared.testing import KERNEL_TABLES_WITH_POLICY, KERNEL_TABLES_WITHOUT_POLICY
from careloop_shared.testing.fakes import FakeClock, received
from careloop_shared.testing.keys import FakePatientKeys
from referral.config import QualityCache, ReferralContext
from referral.directory import handlers as directory
from referral.directory.store import DirectoryStore
from referral.domain.commands import ChangeReferralStatus, SaveOrganization, SaveService
from referral.domain.deadlines import DEADLINES_FILE, Deadlines
from referral.domain.directory import DIRECTORY_FILE, Organization, SeedDirectory, Service
from referral.domain.matching import RANKING_FILE, Weights
from referral.gaps.store import GapStore
from referral.loop import handlers as loop
from referral.loop.batches import InterventionOfAnotherPlan
from referral.store import ReferralStore

pytestmark = pytest.mark.integration

A, B = "agency-a", "agency-b"  # two referring agencies; B also runs a program A refers to
D, E = "agency-d", "agency-e"  # run programs only
STRANGER = "agency-stranger"

# Each table holding patient data, with the column that names its rows.
PROTECTED = {
    "referrals": "id",
    "referral_status_history": "position",
    "patients": "patient_id",
    "consents": "id",
    "plans": "patient_id",
    "plan_interventions": "intervention_id",
    "network_gaps": "intervention_id",
    "erased_patients": "patient_id",  # who sees it: test_referral_erasure_db.py
}
# Who each row belongs to, as the code's own filters have it (loop/store.py: _VISIBLE).
OWNERS = {
    "referrals": "SELECT id AS key, agency_id, receiving_agency_id, status FROM referrals",
    "referral_status_history": "SELECT h.position AS key, r.agency_id, r.receiving_agency_id, r.status"
    " FROM referral_status_history h JOIN referrals r ON r.id = h.referral_id",
    "patients": "SELECT patient_id AS key, agency_id FROM patients",
    "consents": "SELECT id AS key, agency_id FROM consents",
    "plans": "SELECT patient_id AS key, agency_id FROM plans",
    "plan_interventions": "SELECT intervention_id AS key, agency_id FROM plan_interventions",
    "network_gaps": "SELECT intervention_id AS key, agency_id FROM network_gaps",
}
# Not patient data: the program directory and the recruitment pipeline, shared by every agency.
UNPROTECTED = {
    "organizations",
    "locations",
    "services",
    "hsds_shared",
    "prospects",
    "prospect_status_history",
}
KERNEL = KERNEL_TABLES_WITHOUT_POLICY | KERNEL_TABLES_WITH_POLICY


MIGRATIONS = db.folder_migrations("referral", Path(loop.__file__).parents[1] / "migrations")
ROW_SECURITY = "referral/006_row_security.sql"


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def intervention(category: str) -> Intervention:
    return Intervention(
        id=uuid.uuid4(),
        need=f"need-{category}",
        kind="referral",
        program_category=category,
        needs_referral=True,
    )


def plan(patient_id: uuid.UUID, agency: str, *items: Intervention) -> PlanUpdated:
    return PlanUpdated(
        patient_id=patient_id,
        agency_id=agency,
        plan_id=uuid.uuid5(patient_id, "plan"),
        version=1,
        status="active",
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=list(items),
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
        preferred_language="en",
    )


def consent(patient_id: uuid.UUID, agency: str, *, agencies: list[str]) -> ConsentRecorded:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return ConsentRecorded(
        patient_id=patient_id,
        agency_id=agency,
        consent_id=uuid.uuid4(),
        purpose="referral",
        agencies=agencies,
        program_categories=[],
        period_start=at,
        recorded_at=at,
    )


class Referral:
    """referral's database with its use cases run against it, as its consumer and routes run them."""

    def __init__(self, pool: asyncpg.Pool, url: str, ctx: ReferralContext) -> None:
        self.pool, self.url, self.ctx = pool, url, ctx

    def uow(self) -> Any:
        return unit_of_work(self.pool, lambda event_type: event_type, store=ReferralStore)

    async def consume(self, event: Event) -> None:
        """An event handled as the consumer does: acting for every agency."""
        handler = {
            PatientRegistered: loop.when_patient_registered_or_updated_remember,
            ConsentRecorded: loop.when_consent_recorded_send_waiting_referrals,
            PlanUpdated: loop.when_plan_updated_make_referrals,
        }[type(event)]
        async with self.uow() as uow:
            await handler(self.ctx, uow, received(event))

    async def program(self, agency: str, category: str, service_id: str | None = None) -> str:
        org = Organization(id=unique("org"), agency_id=agency, name="Org")
        service_id = service_id or unique("svc")
        svc = Service(id=service_id, organization_id=org.id, name="Program", program_category=category)
        async with self.uow() as uow:
            await directory.save_organization(
                self.ctx, uow, SaveOrganization("agency-net", "admin", "adm", org)
            )
            await directory.save_service(self.ctx, uow, SaveService("agency-net", "admin", "adm", svc))
        return service_id

    async def patient(self, agency: str, *items: Intervention, consent_to: list[str]) -> uuid.UUID:
        patient_id = uuid.uuid4()
        registered = PatientRegistered(
            patient_id=patient_id, agency_id=agency, preferred_language="en", registered_at=self.ctx.clock()
        )
        for event in (
            registered,
            consent(patient_id, agency, agencies=consent_to),
            plan(patient_id, agency, *items),
        ):
            await self.consume(event)
        return patient_id

    async def referral_of(self, item: Intervention) -> asyncpg.Record:
        row = await self.pool.fetchrow("SELECT * FROM referrals WHERE intervention_id = $1", item.id)
        assert row is not None
        return row


@pytest_asyncio.fixture(scope="module")
async def referral(database_factory) -> AsyncIterator[Referral]:
    url = await database_factory("referral_rls")
    pool = await db.create_pool(url, min_size=1, max_size=4)
    await db.migrate(pool, [*db.kernel_migrations(), *MIGRATIONS])
    ctx = ReferralContext(
        load_rules(Weights, RANKING_FILE),
        load_rules(Deadlines, DEADLINES_FILE),
        load_rules(SeedDirectory, DIRECTORY_FILE),
        FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
        QualityCache(ttl_s=0),
        keys=FakePatientKeys(),
    )
    yield Referral(pool, url, ctx)
    await pool.close()


@pytest_asyncio.fixture(scope="module")
async def case(referral: Referral) -> dict[str, Any]:
    """Two agencies' patients, each with a referral, a plan, a consent and a gap; A's referral goes to
    B's program (shared with B), and A's draft waits for consent to D (A's alone until it is sent)."""
    meals, rides, housing = unique("meals"), unique("rides"), unique("housing")
    await referral.program(B, meals)
    await referral.program(D, rides)
    to_b, draft, gap_a = intervention(meals), intervention(rides), intervention(housing)
    own, gap_b = intervention(meals), intervention(housing)
    patient_a = await referral.patient(A, to_b, draft, gap_a, consent_to=[B])
    patient_b = await referral.patient(B, own, gap_b, consent_to=[A])
    return {
        "housing": housing,
        "patients": (patient_a, patient_b),
        "to_b": await referral.referral_of(to_b),
        "draft": await referral.referral_of(draft),
        "own": await referral.referral_of(own),
    }


def visible_to(agency: str, owner: asyncpg.Record) -> bool:
    """The rule the policies hold: the row's agency, or a referral sent (not a draft) to the agency."""
    if owner["agency_id"] == agency:
        return True
    return (
        "receiving_agency_id" in owner
        and owner["receiving_agency_id"] == agency
        and owner["status"] != "draft"
    )


async def keys(pool: asyncpg.Pool, table: str) -> set[Any]:
    """Every row's key the session may see: no agency filter at all."""
    return {r[0] for r in await pool.fetch(f"SELECT {PROTECTED[table]} FROM {table}")}


async def test_the_case_puts_rows_of_both_agencies_in_every_protected_table(referral, case):
    for table, owners in OWNERS.items():
        agencies = {r["agency_id"] for r in await referral.pool.fetch(owners)}
        assert {A, B} <= agencies, table
    assert (case["to_b"]["status"], case["to_b"]["receiving_agency_id"]) == ("requested", B)
    assert (case["draft"]["status"], case["draft"]["receiving_agency_id"]) == ("draft", D)
    assert (case["own"]["agency_id"], case["own"]["receiving_agency_id"]) == (B, B)


@pytest.mark.parametrize("agency", [A, B, D, STRANGER])
async def test_a_query_without_an_agency_filter_sees_the_agencys_rows_and_what_is_sent_to_it_only(
    referral, case, agency
):
    for table, owners in OWNERS.items():
        everyone = await referral.pool.fetch(owners)
        with as_agency(agency):
            seen = await keys(referral.pool, table)
        assert seen == {r["key"] for r in everyone if visible_to(agency, r)}, table


async def test_the_receiving_agency_sees_what_was_sent_to_it_and_nothing_of_a_draft(referral, case):
    to_b, draft = case["to_b"], case["draft"]
    with as_agency(B):
        assert to_b["id"] in await keys(referral.pool, "referrals")
        history = await referral.pool.fetch(
            "SELECT to_status FROM referral_status_history WHERE referral_id = $1", to_b["id"]
        )
        assert [h["to_status"] for h in history] == ["requested"]
        # Not the patient's other details: those are the referring agency's.
        assert case["patients"][0] not in await keys(referral.pool, "patients")
        assert case["patients"][0] not in await keys(referral.pool, "plans")
    with as_agency(D):  # the draft names D's program, but waits for the patient's consent
        assert await keys(referral.pool, "referrals") == set()
        assert await keys(referral.pool, "referral_status_history") == set()
    with as_agency(A):
        assert {to_b["id"], draft["id"]} <= await keys(referral.pool, "referrals")


async def test_a_session_that_never_named_its_agency_sees_nothing(referral, case):
    plain = await asyncpg.connect(referral.url)  # psql, a tool: never set careloop.agency
    try:
        for table in PROTECTED:
            assert await plain.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        # The directory is everyone's.
        assert await plain.fetchval("SELECT count(*) FROM services") > 0
    finally:
        await plain.close()
    with as_agency(NO_AGENCY):  # a request before its caller is known
        for table in PROTECTED:
            assert await keys(referral.pool, table) == set(), table


async def changed(pool: asyncpg.Pool, agency: str, sql: str, *args: Any) -> str:
    """The statement's status, acting for ``agency``; whatever it changed is rolled back."""
    with as_agency(agency):
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                status: str = await conn.execute(sql, *args)
            finally:
                await transaction.rollback()
    return status


async def refused(pool: asyncpg.Pool, agency: str, sql: str, *args: Any) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await changed(pool, agency, sql, *args)


INTERVENTION = (
    "INSERT INTO plan_interventions (intervention_id, patient_id, agency_id, need, kind, needs_referral,"
    " status, priority) VALUES ($1, $2, $3, 'x', 'referral', true, 'not-started', 'routine')"
)


async def test_acting_for_one_agency_cannot_write_anothers_rows(referral, case):
    pool, at = referral.pool, referral.ctx.clock()
    patient_a, patient_b = case["patients"]
    own_b, to_b = case["own"], case["to_b"]
    for sql, args in [
        ("INSERT INTO patients (patient_id, agency_id, as_of) VALUES ($1, $2, $3)", (uuid.uuid4(), B, at)),
        (
            "INSERT INTO consents (id, patient_id, agency_id, purpose, agencies, program_categories,"
            " period_start) VALUES ($1, $2, $3, 'referral', '[]', '[]', $4)",
            (uuid.uuid4(), patient_b, B, at),
        ),
        (
            "INSERT INTO plans (patient_id, agency_id, plan_id, version, status, updated_at)"
            " VALUES ($1, $2, $3, 1, 'active', $4)",
            (uuid.uuid4(), B, uuid.uuid4(), at),
        ),
        (INTERVENTION, (uuid.uuid4(), patient_b, B)),
        (
            "INSERT INTO network_gaps (intervention_id, patient_id, need, detected_at, agency_id)"
            " VALUES ($1, $2, 'x', $3, $4)",
            (uuid.uuid4(), patient_b, at, B),
        ),
        (
            "INSERT INTO referral_status_history (referral_id, to_status, by_agency_id, by_party, changed_at)"
            " VALUES ($1, 'cancelled', $2, 'requester', $3)",
            (own_b["id"], A, at),
        ),
        # B's referral sent to A: A would see it, but only the referring agency makes a referral.
        (
            "INSERT INTO referrals (id, patient_id, agency_id, plan_id, intervention_id, need, program_id,"
            " receiving_agency_id, status, service_request_id, updated_at, created_at)"
            " VALUES ($1, $2, $3, $4, $5, 'x', 'p', $6, 'requested', $7, $8, $8)",
            (uuid.uuid4(), patient_b, B, uuid.uuid4(), uuid.uuid4(), A, uuid.uuid4(), at),
        ),
        # Giving away one's own row is writing another agency's.
        ("UPDATE patients SET agency_id = $2 WHERE patient_id = $1", (patient_a, B)),
    ]:
        await refused(pool, A, sql, *args)
    # Nor under one's own agency's name: an intervention carries its plan's agency (its key says so).
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await changed(pool, A, INTERVENTION, uuid.uuid4(), patient_b, A)
    # Another agency's rows are not there to change or remove.
    cancel = "UPDATE referrals SET status = 'cancelled' WHERE id = $1"
    assert await changed(pool, A, cancel, own_b["id"]) == "UPDATE 0"
    forget = "DELETE FROM plan_interventions WHERE patient_id = $1"
    assert await changed(pool, A, forget, patient_b) == "DELETE 0"
    revoke = "UPDATE consents SET revoked_at = now() WHERE patient_id = $1"
    assert await changed(pool, A, revoke, patient_b) == "UPDATE 0"
    # The receiving agency moves what was sent to it, and cannot hide it back in a draft.
    accept = "UPDATE referrals SET status = 'accepted' WHERE id = $1"
    assert await changed(pool, B, accept, to_b["id"]) == "UPDATE 1"
    await refused(pool, B, "UPDATE referrals SET status = 'draft' WHERE id = $1", to_b["id"])


async def test_every_table_naming_an_agency_is_held_by_row_security_but_the_directory_and_pipeline(referral):
    pool = referral.pool
    assert await db.bypasses_row_security(pool) is False
    tables = {
        r["relname"]: (r["relrowsecurity"], r["relforcerowsecurity"])
        for r in await pool.fetch(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
    }
    naming_an_agency = {
        r["table_name"]
        for r in await pool.fetch(
            "SELECT DISTINCT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name LIKE '%agency_id'"
        )
    }
    # Every table is accounted for: a new one must say whether it holds patient data.
    assert set(tables) == set(PROTECTED) | UNPROTECTED | KERNEL
    held = {name for name, (enabled, forced) in tables.items() if enabled and forced}
    assert set(PROTECTED) <= held  # the child tables too, though they name no agency of their own
    assert naming_an_agency - held == {"organizations", "prospects", "prospect_status_history"}
    assert not held & UNPROTECTED


async def test_quality_figures_and_the_gap_report_count_every_agencys_rows_for_anyone(referral, case):
    program = case["to_b"]["program_id"]  # A's referral and B's own went to it
    with as_agency(ALL_AGENCIES):
        histories = await DirectoryStore(referral.pool).histories([program])
        report = await GapStore(referral.pool).report(need=None, category=None, limit=100, offset=0)
    with as_agency(STRANGER):
        assert await keys(referral.pool, "referrals") == set()
        assert await DirectoryStore(referral.pool).histories([program]) == histories
        assert await GapStore(referral.pool).report(need=None, category=None, limit=100, offset=0) == report
        async with referral.uow() as uow:  # a directory change shows the figures from its unit of work
            assert await uow.store.directory.histories([program]) == histories
            assert await uow.conn.fetchval("SELECT count(*) FROM referrals") == 0  # the caller's again
    assert histories[program].sent == 2
    [housing] = [g for g in report if g["program_category"] == case["housing"]]
    assert (housing["patients_waiting"], housing["interventions_waiting"]) == (2, 2)


async def test_acting_for_another_agency_lasts_for_the_block_only(referral, case):
    patient_a, patient_b = case["patients"]
    patients = "SELECT patient_id FROM patients"
    with as_agency(B):
        async with referral.uow() as uow:
            assert {r[0] for r in await uow.conn.fetch(patients)} == {patient_b}
            async with uow.store.acting_for(A):
                assert {r[0] for r in await uow.conn.fetch(patients)} == {patient_a}
            assert {r[0] for r in await uow.conn.fetch(patients)} == {patient_b}
        for failure in ("SELECT 1 / 0", "SELECT 1"):  # a statement fails, or the code raises
            with pytest.raises((asyncpg.DivisionByZeroError, LookupError)):
                async with referral.uow() as uow, uow.store.acting_for(A):
                    await uow.conn.execute(failure)
                    raise LookupError("the use case refused")
        # Every pooled connection acts for the caller again, whatever happened in the block.
        held = [await referral.pool.acquire() for _ in range(referral.pool.get_max_size())]
        try:
            for conn in held:
                assert await conn.fetchval("SELECT current_setting('careloop.agency')") == B
        finally:
            for conn in held:
                await referral.pool.release(conn)


async def test_a_receiving_agencys_rejection_reroutes_for_the_referring_agency(referral):
    lessons = unique("lessons")
    first = await referral.program(B, lessons, unique("a-first"))
    second = await referral.program(E, lessons, unique("b-second"))
    item = intervention(lessons)
    await referral.patient(A, item, consent_to=[B, E])
    made = await referral.referral_of(item)
    assert (made["program_id"], made["status"]) == (first, "requested")
    with as_agency(B):
        async with referral.uow() as uow:
            reject = ChangeReferralStatus(B, made["id"], "rejected", "pr-1", "provider", reason="no-capacity")
            change = await loop.change_referral_status(referral.ctx, uow, reject)
        seen_by_b = await keys(referral.pool, "referrals")
    # Made for A (its patient's consent to E read), sent to E, and not B's to see.
    assert change.rerouted_to is not None and change.rerouted_to not in seen_by_b
    assert made["id"] in seen_by_b
    rerouted = await referral.pool.fetchrow("SELECT * FROM referrals WHERE id = $1", change.rerouted_to)
    assert (rerouted["agency_id"], rerouted["program_id"], rerouted["status"]) == (A, second, "requested")
    assert rerouted["replaces_referral_id"] == made["id"]
    with as_agency(E):
        assert rerouted["id"] in await keys(referral.pool, "referrals")


async def test_the_migration_gives_the_rows_kept_before_it_their_patients_agency(database_factory):
    pool = await db.create_pool(await database_factory("referral_rls_upgrade"), min_size=1, max_size=1)
    try:
        await db.migrate(pool, [*db.kernel_migrations(), *(m for m in MIGRATIONS if m[0] < ROW_SECURITY)])
        patient, item, waiting = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await pool.execute(
            "INSERT INTO plans (patient_id, agency_id, plan_id, version, status, updated_at)"
            " VALUES ($1, $2, $3, 1, 'active', now())",
            patient,
            A,
            uuid.uuid4(),
        )
        await pool.execute(
            "INSERT INTO plan_interventions (intervention_id, patient_id, need, kind, needs_referral, status,"
            " priority) VALUES ($1, $2, 'x', 'referral', true, 'not-started', 'routine')",
            item,
            patient,
        )
        await pool.execute(  # a gap recorded before its agency was kept, of a patient intake never named
            "INSERT INTO network_gaps (intervention_id, patient_id, need, detected_at)"
            " VALUES ($1, $2, 'x', now())",
            waiting,
            patient,
        )
        await db.migrate(pool, [*db.kernel_migrations(), *MIGRATIONS])
        with as_agency(A):
            assert await keys(pool, "plan_interventions") == {item}
            assert await keys(pool, "network_gaps") == {waiting}
        with as_agency(B):
            assert await keys(pool, "plan_interventions") == await keys(pool, "network_gaps") == set()
    finally:
        await pool.close()


async def test_a_plan_naming_an_intervention_of_another_patients_plan_is_refused_by_name(referral, case):
    """careplan gives every patient's interventions ids of their own; a plan naming another patient's
    (another agency's here) is not careplan's, and changes nothing: refused by name, not by the key."""
    patient_a, _ = case["patients"]
    taken = case["to_b"]["intervention_id"]
    forged = Intervention(id=taken, need="need-x", kind="referral", program_category="x", needs_referral=True)
    with pytest.raises(InterventionOfAnotherPlan):
        await referral.consume(plan(uuid.uuid4(), D, forged))
    with as_agency(A):
        async with referral.uow() as uow:
            kept = await uow.store.loop.plan_intervention(patient_a, taken)
    assert kept is not None and kept["intervention_id"] == taken
