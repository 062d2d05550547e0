"""Liveness: a consumer that stops moving while records wait for it is reported, so it gets restarted."""

import uuid

import httpx
import pytest

from careloop_shared.contracts import PatientAssessed
from careloop_shared.events import new_message
from careloop_shared.runtime import running
from careloop_shared.testing import eventually, publish_message, unique_prefix
from careplan.config import CareplanSettings
from careplan.main import build_app
from tests.test_consumer_delivery import assessed

pytestmark = pytest.mark.integration


async def test_a_stuck_consumer_with_work_waiting_fails_liveness(infra, database_factory):
    settings = CareplanSettings(
        database_url=await database_factory("careplan_liveness"),
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=unique_prefix(),
        consumer_stall_s=0.5,
    )
    app = build_app(settings)
    async with running(app.state.runtime) as runtime:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://careplan"
        ) as http:
            topic = runtime.topic_for(PatientAssessed.type)
            patient = uuid.uuid4()
            await publish_message(infra.bootstrap_servers, topic, new_message(assessed(patient)))
            await eventually(
                lambda: runtime.pool.fetchval("SELECT count(*) FROM plans WHERE patient_id = $1", patient),
                what="first event processed",
            )

            async def health() -> int:
                return (await http.get("/healthz")).status_code

            # Caught up and idle: alive, however long nothing arrives.
            assert await eventually(lambda: _is(health, 200), what="alive while idle")

            # The consumer stops fetching (as after a silent rebalance failure) while work arrives.
            for subscriber in runtime.broker.subscribers:
                await subscriber.stop()
            await publish_message(infra.bootstrap_servers, topic, new_message(assessed(uuid.uuid4())))
            assert await eventually(lambda: _is(health, 503), timeout=30, what="reported stalled")


async def _is(probe, expected: int) -> bool:
    return await probe() == expected
