"""Retention rules applied on the real database, the clock moved forward: the patients the rules select,
and only them, are erased the way a supervisor's erasure does it, once; each run is recorded; one
replica at a time; a patient active a moment before is kept."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import intake
from careloop_shared import db
from careloop_shared.contracts import ContactPreference, ReferralMade, ReferralStatusChanged
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.outbox import unit_of_work
from careloop_shared.rules import load_rules
from careloop_shared.testing import eventually
from careloop_shared.testing.fakes import FakeClock, received
from intake import handlers
from intake.config import IntakeContext
from intake.domain import care_manager
from intake.domain.care_manager import CareManagerRules
from intake.domain.commands import AssessPatient, RecordConsent, RegisterPatient
from intake.domain.scoring import RULES_FILE, ScreeningRules
from intake.erasure.handlers import ErasePatient, erase_patient
from intake.erasure.retention import apply_retention_rules
from intake.referred.handlers import when_referral_made_grant_access, when_referral_status_changed_end_access
from intake.store import IntakeStore

pytestmark = pytest.mark.integration

A, B = "agency-a", "agency-b"
BY = {"by": "cm-ana", "by_role": "care-manager"}
PHQ9 = dict.fromkeys(
    ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"], 1
)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
VERSION = "retention-2026.11.1"
LOCK = 0x72657465

Handler = Callable[[IntakeContext, Any, Any], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class Service:
    pool: asyncpg.Pool
    ctx: IntakeContext
    clock: FakeClock

    async def run(self, agency: str, handler: Handler, message: Any = None) -> Any:
        with as_agency(agency):
            async with unit_of_work(self.pool, lambda t: t, store=IntakeStore) as uow:
                return await handler(self.ctx, uow, message)

    async def step(self) -> bool:
        more: bool = await self.run(ALL_AGENCIES, lambda ctx, uow, _: apply_retention_rules(ctx, uow))
        return more

    async def apply(self) -> int:
        """The background step's rounds until it says nothing more is waiting; how many rounds."""
        rounds = 1
        while await self.step():
            rounds += 1
        return rounds

    async def register(self, agency: str, name: str) -> uuid.UUID:
        registration = RegisterPatient(
            agency_id=agency,
            given_name=name,
            family_name="Oyelaran",
            birth_date=date(1961, 7, 30),
            preferred_language="en",
            contact_preference=ContactPreference.phone,
            phone="+1 555 0177",
            **BY,
        )
        patient_id: uuid.UUID = await self.run(agency, handlers.register_patient, registration)
        return patient_id

    async def assess(self, agency: str, patient_id: uuid.UUID) -> None:
        await self.run(
            agency, handlers.assess_patient, AssessPatient(agency, patient_id, "phq-9", PHQ9, **BY)
        )

    async def refer(self, agency: str, patient_id: uuid.UUID, *, close_at: datetime | None = None) -> None:
        referral_id, plan, intervention = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        made = ReferralMade(
            patient_id=patient_id,
            agency_id=agency,
            referral_id=referral_id,
            plan_id=plan,
            intervention_id=intervention,
            need="food-insecurity",
            program_id="food-bank-1",
            receiving_agency_id="agency-food",
            status="requested",
            response_due_at=self.clock() + timedelta(days=2),
        )
        await self.run(ALL_AGENCIES, when_referral_made_grant_access, received(made))
        if close_at is not None:
            closed = ReferralStatusChanged(
                patient_id=patient_id,
                agency_id=agency,
                referral_id=referral_id,
                plan_id=plan,
                intervention_id=intervention,
                from_status="accepted",
                to_status="completed",
                by_agency_id="agency-food",
                by_party="target",
                changed_at=close_at,
            )
            await self.run(ALL_AGENCIES, when_referral_status_changed_end_access, received(closed))

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with as_agency(ALL_AGENCIES):
            return await self.pool.fetch(sql, *args)

    async def erased(self) -> dict[uuid.UUID, tuple[str, str, str]]:
        """Every erased patient: (who, their role, why)."""
        rows = await self.fetch(
            "SELECT p.id, k.erased_by, k.erased_by_role, k.erasure_reason FROM patients p"
            " JOIN patient_keys k ON k.patient_id = p.id WHERE p.erased_at IS NOT NULL AND k.wrapped IS NULL"
        )
        return {r["id"]: (r["erased_by"], r["erased_by_role"], r["erasure_reason"]) for r in rows}

    async def runs(self) -> list[asyncpg.Record]:
        return await self.fetch(
            "SELECT rules_version, started_at, finished_at, examined, erased FROM retention_runs"
            " ORDER BY started_at"
        )


@pytest_asyncio.fixture
async def service(database_factory) -> AsyncIterator[Service]:
    pool = await db.create_pool(await database_factory("intake_retention"), min_size=1, max_size=6)
    migrations = Path(intake.__file__).parent / "migrations"
    await db.migrate(pool, [*db.kernel_migrations(), *db.folder_migrations("intake", migrations)])
    clock = FakeClock(T0)
    ctx = IntakeContext(
        load_rules(ScreeningRules, RULES_FILE),
        load_rules(CareManagerRules, care_manager.RULES_FILE),
        clock,
        retention_batch_size=2,  # a run of several batches
    )
    yield Service(pool, ctx, clock)
    await pool.close()


def by_rules(rule: str) -> tuple[str, str, str]:
    return ("careloop-retention", "system", f"retention rule {rule} ({VERSION})")


async def test_the_rules_erase_the_patients_they_select_and_only_them_once_and_record_each_run(service):
    s = service
    closed = await s.register(A, "Zqxcanaryclosed")  # assessed, consented, referred; the referral closed
    await s.assess(A, closed)
    await s.run(A, handlers.record_consent, RecordConsent(A, closed, "referral", ["agency-food"], [], **BY))
    await s.refer(A, closed, close_at=T0 + timedelta(days=20))
    elsewhere = await s.register(B, "Zqxcanaryelsewhere")  # another agency's closed case
    await s.assess(B, elsewhere)
    still_referred = await s.register(A, "Referred")  # a referral still open
    await s.assess(A, still_referred)
    await s.refer(A, still_referred)
    lately = await s.register(A, "Lately")  # assessed again six years on
    await s.assess(A, lately)
    never = await s.register(A, "Never")  # registered, nothing since
    by_hand = await s.register(A, "ByHand")  # erased by a supervisor already
    await s.run(A, erase_patient, ErasePatient(A, by_hand, "patient's request", "sv-sam", "supervisor"))
    s.clock.now = T0 + timedelta(days=6 * 365)
    await s.assess(A, lately)

    # Six years and a day on: only the patient who never engaged (two years).
    s.clock.advance(days=1)
    assert await s.apply() == 3  # five patients not erased, two a batch
    supervisor = ("sv-sam", "supervisor", "patient's request")
    assert await s.erased() == {by_hand: supervisor, never: by_rules("never-engaged")}

    # Seven years after the closed cases' last activity (the referral closed twenty days in): those two.
    s.clock.now = T0 + timedelta(days=7 * 365 + 2 + 20)
    assert await s.apply() == 3  # four patients: two full batches, then an empty one ends the run
    assert await s.erased() == {
        by_hand: supervisor,
        never: by_rules("never-engaged"),
        closed: by_rules("closed-case"),
        elsewhere: by_rules("closed-case"),
    }
    # Their identifying details are gone from their rows.
    rows = await s.fetch(
        "SELECT to_jsonb(p)::text AS row FROM patients p WHERE id = ANY($1)", [closed, elsewhere]
    )
    assert len(rows) == 2
    assert not any("Zqxcanary" in r["row"] or "555 0177" in r["row"] for r in rows)

    # Announced as a supervisor's erasure is, by careloop itself, with no reason on the event.
    announced = await s.fetch(
        "SELECT key, payload FROM outbox WHERE event_type = 'careloop.intake.patient_erased.v1'"
    )
    payloads = {r["key"]: json.loads(r["payload"]) for r in announced}
    assert set(payloads) == {str(p) for p in (by_hand, never, closed, elsewhere)}
    for patient_id in (never, closed, elsewhere):
        event = payloads[str(patient_id)]
        assert (event["actor_id"], event["actor_role"]) == ("careloop-retention", "system")
        assert "retention rule" not in json.dumps(event)

    # Not due again the same day: nothing runs; a day later it runs and erases no one more.
    assert await s.step() is False and len(await s.runs()) == 2
    s.clock.advance(days=1)
    assert await s.apply() == 2
    assert len(await s.erased()) == 4
    runs = await s.runs()
    assert [(r["rules_version"], r["examined"], r["erased"]) for r in runs] == [
        (VERSION, 5, {"never-engaged": 1}),
        (VERSION, 4, {"closed-case": 2}),
        (VERSION, 2, {}),
    ]
    assert all(r["finished_at"] == r["started_at"] for r in runs)  # the clock did not move within a run
    assert [r["started_at"] for r in runs] == [
        T0 + timedelta(days=6 * 365 + 1),
        T0 + timedelta(days=7 * 365 + 22),
        T0 + timedelta(days=7 * 365 + 23),
    ]


async def test_one_replica_at_a_time_applies_the_rules(service):
    never = await service.register(A, "Never")
    service.clock.advance(days=3 * 365)
    async with service.pool.acquire() as other, other.transaction():
        await other.execute("SELECT pg_advisory_xact_lock($1)", LOCK)  # another replica's turn
        assert await service.step() is False
        assert await service.runs() == [] and await service.erased() == {}
    assert await service.apply() == 1
    assert await service.erased() == {never: by_rules("never-engaged")}


async def test_a_patient_active_while_the_run_waited_for_them_is_kept(service):
    quiet = await service.register(A, "Quiet")
    service.clock.advance(days=3 * 365)
    async with service.pool.acquire() as other:
        async with other.transaction():
            # A request holds the patient and changes their details as the run reaches them.
            await other.execute("SELECT id FROM patients WHERE id = $1 FOR UPDATE", quiet)
            await other.execute(
                "UPDATE patients SET preferred_language = 'es', updated_at = $2 WHERE id = $1",
                quiet,
                service.clock(),
            )
            run = asyncio.create_task(service.step())
            await eventually(
                lambda: _waits_for_a_lock(service.pool), timeout=10, what="the run waiting for the patient"
            )
        assert await run is False
    assert await service.erased() == {}
    [recorded] = await service.runs()
    assert (recorded["examined"], recorded["erased"]) == (1, {})


async def _waits_for_a_lock(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
    )
