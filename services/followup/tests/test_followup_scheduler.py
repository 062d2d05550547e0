"""The follow-up scheduler against the real database and broker, with an injected clock."""

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.contracts import FollowUpDue, FollowUpOverdue, TaskEscalated, TaskOpened
from careloop_shared.rules import load_rules
from careloop_shared.runtime import running
from careloop_shared.testing import TopicReader, eventually, header, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from followup.domain.rules import RULES_FILE, FollowUpRules
from followup.handlers import fire_due_and_overdue_follow_ups
from followup.main import build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RULES = load_rules(FollowUpRules, RULES_FILE)


def new_prefix() -> str:
    return unique_prefix()


@pytest.fixture
def due_events(emitted):
    async def count(runtime, patient: uuid.UUID) -> int:
        return len(await emitted(runtime, patient, FollowUpDue.type))

    return count


async def test_two_replicas_racing_emit_follow_up_due_exactly_once(
    infra, database_factory, make_settings, due_events, schedule
):
    dsn, prefix = await database_factory("followup_race"), new_prefix()
    clock = FakeClock(T0)
    replica_a = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    replica_b = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    async with running(replica_a), running(replica_b):
        patients = [uuid.uuid4() for _ in range(40)]
        for i, patient in enumerate(patients):
            await schedule(replica_a, patient_id=patient, due_at=T0 + timedelta(minutes=10 + i % 3))
        assert sum([await due_events(replica_a, p) for p in patients]) == 0

        clock.now = T0 + timedelta(hours=1)
        topic = replica_a.topic_for(FollowUpDue.type)
        async with TopicReader(infra.bootstrap_servers, topic) as reader:

            async def all_published() -> bool:
                await reader.poll()
                return {header(r, "ce_subject") for r in reader.records} >= {str(p) for p in patients}

            await eventually(all_published, what="every follow-up due on Kafka")
            await asyncio.sleep(0.5)  # not waiting for anything: several more ticks on both replicas
            await reader.poll()
        assert [await due_events(replica_a, p) for p in patients] == [1] * 40
        assert len(reader.records) == 40


async def test_direct_concurrent_claims_never_double_fire(infra, database_factory, make_settings, schedule):
    dsn, prefix = await database_factory("followup_claims"), new_prefix()
    runtime = build_app(
        make_settings(infra.bootstrap_servers, dsn, prefix), clock=FakeClock(T0)
    ).state.runtime
    async with running(runtime):
        patients = [uuid.uuid4() for _ in range(200)]
        for patient in patients:
            await schedule(runtime, patient_id=patient, due_at=T0)

        claimer = replace(runtime.context, clock=lambda: T0 + timedelta(seconds=1), batch_size=7)

        async def claim() -> int:
            async with runtime.uow() as uow:
                await fire_due_and_overdue_follow_ups(claimer, uow)
                return len(uow.pending)  # the FollowUpDue events this claim emits

        while any(await asyncio.gather(*(claim() for _ in range(8)))):
            pass

        # The runtime's own scheduler (its clock at T0) races these claims for the same 200 rows; the rows
        # it holds are skipped by the claims above until it commits them with their events and tasks.
        async def all_claimed() -> bool:
            due = await runtime.pool.fetchval("SELECT count(*) FROM follow_ups WHERE status = 'due'")
            return bool(due == 200)

        await eventually(all_claimed, what="every follow-up claimed")
        total = await runtime.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = $1", FollowUpDue.type
        )
        assert total == 200
        assert await runtime.pool.fetchval("SELECT count(*) FROM follow_ups WHERE status = 'due'") == 200


async def test_follow_up_due_while_service_was_down_fires_once_after_start(
    infra, database_factory, make_settings, due_events, schedule, follow_ups
):
    dsn, prefix = await database_factory("followup_down"), new_prefix()
    clock = FakeClock(T0)
    patient = uuid.uuid4()
    first = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    async with running(first):
        await schedule(first, patient_id=patient, due_at=T0 + timedelta(days=7))
    clock.now = T0 + timedelta(days=7, hours=1)  # the due time passes while nothing runs
    second = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    async with running(second):
        await eventually(lambda: due_events(second, patient), what="due fired after restart")
        await asyncio.sleep(0.3)  # not waiting for anything: more ticks that must not fire again
        assert await due_events(second, patient) == 1
    third = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    async with running(third):
        await asyncio.sleep(0.3)
        assert await due_events(third, patient) == 1
        assert [f["status"] for f in await follow_ups(third, patient)] == ["due"]


async def test_overdue_fires_once_after_the_grace_period_for_its_priority(
    infra, database_factory, make_settings, due_events, schedule, emitted, follow_ups
):
    dsn, prefix = await database_factory("followup_overdue"), new_prefix()
    clock = FakeClock(T0)
    runtime = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    async with running(runtime):
        patient = uuid.uuid4()
        due_at = T0 + timedelta(hours=1)
        await schedule(runtime, patient_id=patient, due_at=due_at, priority="urgent")
        clock.now = due_at
        await eventually(lambda: due_events(runtime, patient), what="due")
        clock.now = due_at + RULES.grace("urgent") - timedelta(seconds=1)
        await asyncio.sleep(0.3)  # not waiting for anything: ticks inside the grace period
        assert await emitted(runtime, patient, FollowUpOverdue.type) == []

        clock.now = due_at + RULES.grace("urgent")
        [overdue] = await eventually(lambda: emitted(runtime, patient, FollowUpOverdue.type), what="overdue")
        clock.advance(days=3)
        await asyncio.sleep(0.3)
        assert len(await emitted(runtime, patient, FollowUpOverdue.type)) == 1
        assert overdue["overdue_since"].startswith((due_at + RULES.grace("urgent")).strftime("%Y-%m-%dT%H"))
        [row] = await follow_ups(runtime, patient)
        assert row["status"] == "overdue"


async def test_a_follow_up_down_across_due_and_grace_fires_due_then_overdue_once_each(
    infra, database_factory, make_settings, schedule, emitted
):
    dsn, prefix = await database_factory("followup_down_late"), new_prefix()
    clock = FakeClock(T0)
    patient = uuid.uuid4()
    first = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    async with running(first):
        await schedule(first, patient_id=patient, due_at=T0 + timedelta(days=1), priority="low")
    clock.now = T0 + timedelta(days=30)
    second = build_app(make_settings(infra.bootstrap_servers, dsn, prefix), clock=clock).state.runtime
    async with running(second):
        await eventually(lambda: emitted(second, patient, FollowUpOverdue.type), what="overdue")
        rows = await second.pool.fetch(
            "SELECT event_type FROM outbox WHERE key = $1 ORDER BY position", str(patient)
        )
        # Its task opens with it, and goes to the supervisor with the overdue.
        assert [r["event_type"] for r in rows] == [
            FollowUpDue.type,
            TaskOpened.type,
            FollowUpOverdue.type,
            TaskEscalated.type,
        ]
