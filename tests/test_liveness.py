"""Liveness: a consumer that stops moving while records wait for it is reported, so it gets restarted."""

import uuid

import pytest

from careloop_shared.contracts import PatientAssessed
from careloop_shared.events import new_message
from careloop_shared.testing import eventually, publish_message, served, settings_for
from careplan.config import CareplanSettings
from careplan.main import build_app
from tests.test_consumer_delivery import assessed

pytestmark = pytest.mark.integration


async def test_a_stuck_consumer_with_work_waiting_fails_liveness(infra, database_factory):
    settings = settings_for(
        CareplanSettings, infra, await database_factory("careplan_liveness"), consumer_stall_s=0.5
    )
    app = build_app(settings)
    async with served(app, "http://careplan") as (http, runtime):
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
