"""Nothing acknowledged is lost and no effect is doubled when a service is killed, or the broker or the
database restarts, in the middle of the work. careplan is the service under attack: it consumes
PatientAssessed and, per patient, writes one plan version and one PlanUpdated through its outbox. And
while the database is down, intake's HTTP requests are answered 503, never 500.
"""

import asyncio
import random
import signal
import subprocess
import uuid

import asyncpg
import httpx
import pytest

from careloop_shared.contracts import PatientAssessed, PlanUpdated
from careloop_shared.db import ALL_AGENCIES
from careloop_shared.events import new_message
from careloop_shared.kafka import ensure_topics
from careloop_shared.testing import ServiceProcess, TopicReader, bearer, eventually, header
from tests.conftest import base_env, local_script, new_prefix
from tests.test_consumer_delivery import assessed
from tests.test_journey import PATIENT, PHQ2_POSITIVE

pytestmark = pytest.mark.integration

PATIENTS = 300


async def _run(*command: str) -> None:
    await asyncio.to_thread(subprocess.run, list(command), check=True, capture_output=True)


async def _publish_assessments(bootstrap: str, topic: str, count: int) -> list[str]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    patients = []
    try:
        sends = []
        for _ in range(count):
            message = new_message(assessed(uuid.uuid4()))
            patients.append(message.key)
            sends.append(
                await producer.send(
                    topic,
                    message.event.body(),
                    key=message.key.encode(),
                    headers=[(k, v.encode()) for k, v in message.envelope.headers().items()],
                )
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return patients


async def _plans_per_patient(dsn: str) -> dict[str, int]:
    try:
        # Every agency's plans, as careplan's own consumer sees them (row-level security).
        conn = await asyncpg.connect(dsn, server_settings={"careloop.agency": ALL_AGENCIES})
    except (OSError, asyncpg.PostgresError):
        return {}
    try:
        rows = await conn.fetch(
            "SELECT p.patient_id::text AS patient, count(v.version) AS versions FROM plans p"
            " LEFT JOIN plan_versions v USING (plan_id) GROUP BY p.patient_id"
        )
        return {r["patient"]: r["versions"] for r in rows}
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return {}
    finally:
        await conn.close()


async def _assert_each_applied_once(dsn: str, bootstrap: str, prefix: str, patients: list[str]) -> None:
    async def all_planned():
        return len(await _plans_per_patient(dsn)) >= len(patients) or None

    await eventually(all_planned, timeout=180, interval=0.5, what="every assessment applied")
    plans = await _plans_per_patient(dsn)
    assert set(plans) == set(patients)
    assert set(plans.values()) == {1}  # one version each: nothing applied twice
    conn = await asyncpg.connect(dsn)
    try:
        outbox = await conn.fetchval("SELECT count(*) FROM outbox WHERE event_type = $1", PlanUpdated.type)
        inbox = await conn.fetchval("SELECT count(*) FROM inbox WHERE outcome = 'processed'")
    finally:
        await conn.close()
    assert (outbox, inbox) == (len(patients), len(patients))
    # Every PlanUpdated reaches the topic (a re-send after a crash is a duplicate with the same ce_id).
    async with TopicReader(bootstrap, f"{prefix}{PlanUpdated.type}") as reader:

        async def all_published():
            await reader.poll()
            return len({header(r, "ce_subject") for r in reader.records}) >= len(patients) or None

        await eventually(all_published, timeout=120, what="every PlanUpdated on the topic")
    ids = [header(r, "ce_id") for r in reader.records]
    assert len(set(ids)) == len(patients)


async def _careplan_under_attack(infra, database_factory, log_dir):
    prefix = new_prefix()
    dsn = await database_factory("careplan_attack")
    env = {**base_env(infra, prefix), "CAREPLAN_DATABASE_URL": dsn, "CAREPLAN_CONSUMER_BATCH_SIZE": "50"}
    topic = f"{prefix}{PatientAssessed.type}"
    await ensure_topics(infra.bootstrap_servers, [topic, f"{prefix}{PlanUpdated.type}"], partitions=6)
    process = ServiceProcess("careplan", env, log_dir).start()
    await process.wait_ready()
    return prefix, dsn, env, topic, process


async def test_a_service_killed_again_and_again_loses_and_doubles_nothing(infra, database_factory, log_dir):
    prefix, dsn, env, topic, process = await _careplan_under_attack(infra, database_factory, log_dir)
    rng = random.Random(7)
    try:
        patients = await _publish_assessments(infra.bootstrap_servers, topic, PATIENTS)
        for _ in range(3):  # kill -9 at a moment nobody chose, then start again
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            assert process.proc is not None
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait(10)
            process = ServiceProcess("careplan", env, log_dir).start()
            await process.wait_ready()
        await _assert_each_applied_once(dsn, infra.bootstrap_servers, prefix, patients)
    finally:
        process.stop()


@pytest.mark.parametrize("server", ["postgres", "kafka"], ids=["database", "broker"])
async def test_a_restart_under_load_loses_and_doubles_nothing(
    server, restarts_local_infra, database_factory, log_dir
):
    infra = restarts_local_infra
    prefix, dsn, _, topic, process = await _careplan_under_attack(infra, database_factory, log_dir)
    try:
        patients = await _publish_assessments(infra.bootstrap_servers, topic, PATIENTS)
        await asyncio.sleep(0.5)  # let the work get going: the restart lands in the middle of it
        await _run(*local_script(f"{server}.sh"), "stop")
        await _run(*local_script(f"{server}.sh"), "start")
        await _assert_each_applied_once(dsn, infra.bootstrap_servers, prefix, patients)
    finally:
        process.stop()


async def test_requests_while_the_database_is_down_are_answered_503_never_500(
    restarts_local_infra, database_factory, log_dir
):
    """The database server stopped under a running intake: every request, whether the pool's connections
    broke under it or a new one was refused, is answered 503 with Retry-After (the answer every route
    documents for a dependency that is down), none 500; once the server is back the same request goes
    through, and the service logged no unhandled error."""
    infra = restarts_local_infra
    env = {**base_env(infra, new_prefix()), "INTAKE_DATABASE_URL": await database_factory("intake_outage")}
    process = ServiceProcess("intake", env, log_dir).start()
    await process.wait_ready()
    agency = bearer("agency-outage")
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            created = await http.post(f"{process.url}/v1/patients", json=PATIENT, headers=agency)
            assert created.status_code == 201, created.text
            assessments = f"{process.url}/v1/patients/{created.json()['id']}/assessments"
            await _run(*local_script("postgres.sh"), "stop")
            try:
                answers = []
                for _ in range(3):  # first the pool's connections, broken under it; then refused ones
                    for sent in (
                        http.post(assessments, json=PHQ2_POSITIVE, headers=agency),
                        http.get(assessments, headers=agency),
                        http.post(f"{process.url}/v1/patients", json=PATIENT, headers=agency),
                    ):
                        answer = await sent
                        answers.append((answer.status_code, answer.headers.get("Retry-After")))
                        assert "unavailable" in answer.json()["detail"], answer.text
            finally:
                await _run(*local_script("postgres.sh"), "start")
            assert set(answers) == {(503, "2")}, answers

            async def accepted() -> bool | None:
                answer = await http.post(assessments, json=PHQ2_POSITIVE, headers=agency)
                assert answer.status_code in (202, 503), answer.text
                return answer.status_code == 202 or None

            await eventually(accepted, timeout=60, interval=0.5, what="an assessment accepted again")
    finally:
        process.stop()
    assert "unhandled error" not in process.tail(2000)
