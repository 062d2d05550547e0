"""The follow-up scheduler against the real database and broker, with an injected clock."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.contracts import FollowUpDue
from careloop_shared.runtime import running
from careloop_shared.testing import TopicReader, eventually, header
from followup import store
from followup.handlers import fire_due_follow_ups
from followup.main import FollowupSettings, build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings(infra, dsn: str, prefix: str) -> FollowupSettings:
    return FollowupSettings(
        database_url=dsn,
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=prefix,
        scheduler_tick_s=0.05,
    )


async def schedule(runtime, patient: uuid.UUID, due_at: datetime) -> None:
    async with runtime.uow() as uow:
        await store.schedule_plan_cadence(
            uow.conn,
            patient_id=patient,
            agency_id="agency-a",
            plan_id=uuid.uuid4(),
            priority="high",
            due_at=due_at,
            at=T0,
        )


async def due_events(runtime, patient: uuid.UUID) -> int:
    return await runtime.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE key = $1 AND event_type = $2", str(patient), FollowUpDue.type
    )


async def test_two_replicas_racing_emit_follow_up_due_exactly_once(infra, database_factory):
    dsn, prefix = await database_factory("followup_race"), f"test-{uuid.uuid4().hex[:8]}."
    clock = FakeClock(T0)
    replica_a = build_app(settings(infra, dsn, prefix), clock=clock).state.runtime
    replica_b = build_app(settings(infra, dsn, prefix), clock=clock).state.runtime
    async with running(replica_a), running(replica_b):
        patients = [uuid.uuid4() for _ in range(40)]
        for i, patient in enumerate(patients):
            await schedule(replica_a, patient, T0 + timedelta(minutes=10 + i % 3))
        assert sum([await due_events(replica_a, p) for p in patients]) == 0

        clock.now = T0 + timedelta(hours=1)
        topic = replica_a.topic_for(FollowUpDue.type)
        async with TopicReader(infra.bootstrap_servers, topic) as reader:

            async def all_published() -> bool:
                await reader.poll()
                return {header(r, "ce_subject") for r in reader.records} >= {str(p) for p in patients}

            await eventually(all_published, what="every follow-up due on Kafka")
            await asyncio.sleep(0.5)  # several more scheduler ticks on both replicas
            await reader.poll()
        assert [await due_events(replica_a, p) for p in patients] == [1] * 40
        assert len(reader.records) == 40


async def test_direct_concurrent_claims_never_double_fire(infra, database_factory):
    dsn, prefix = await database_factory("followup_claims"), f"test-{uuid.uuid4().hex[:8]}."
    runtime = build_app(settings(infra, dsn, prefix), clock=FakeClock(T0)).state.runtime
    async with running(runtime):
        patients = [uuid.uuid4() for _ in range(200)]
        for patient in patients:
            await schedule(runtime, patient, T0)

        async def claim() -> int:
            async with runtime.uow() as uow:
                return await fire_due_follow_ups(uow, T0 + timedelta(seconds=1), limit=7)

        fired = 0
        while True:
            batch = await asyncio.gather(*(claim() for _ in range(8)))
            fired += sum(batch)
            if not any(batch):
                break
        # The runtime's own scheduler (with its clock at T0) only fires what is due by T0: all 200.
        total = await runtime.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = $1", FollowUpDue.type
        )
        assert total == 200
        assert await runtime.pool.fetchval("SELECT count(*) FROM follow_ups WHERE status = 'due'") == 200


async def test_follow_up_due_while_service_was_down_fires_once_after_start(infra, database_factory):
    dsn, prefix = await database_factory("followup_down"), f"test-{uuid.uuid4().hex[:8]}."
    clock = FakeClock(T0)
    patient = uuid.uuid4()
    first = build_app(settings(infra, dsn, prefix), clock=clock).state.runtime
    async with running(first):
        await schedule(first, patient, T0 + timedelta(days=7))
    clock.now = T0 + timedelta(days=30)  # the due time passes while nothing runs
    second = build_app(settings(infra, dsn, prefix), clock=clock).state.runtime
    async with running(second):
        await eventually(lambda: due_events(second, patient), what="due fired after restart")
        await asyncio.sleep(0.3)
        assert await due_events(second, patient) == 1
    third = build_app(settings(infra, dsn, prefix), clock=clock).state.runtime
    async with running(third):
        await asyncio.sleep(0.3)
        assert await due_events(third, patient) == 1


async def test_plan_revision_reschedules_instead_of_piling_up(infra, database_factory):
    dsn, prefix = await database_factory("followup_resched"), f"test-{uuid.uuid4().hex[:8]}."
    runtime = build_app(settings(infra, dsn, prefix), clock=FakeClock(T0)).state.runtime
    async with running(runtime):
        patient = uuid.uuid4()
        await schedule(runtime, patient, T0 + timedelta(days=30))
        await schedule(runtime, patient, T0 + timedelta(days=7))
        rows = await runtime.pool.fetch(
            "SELECT due_at, status FROM follow_ups WHERE patient_id = $1", patient
        )
        assert [(r["due_at"], r["status"]) for r in rows] == [(T0 + timedelta(days=7), "scheduled")]
