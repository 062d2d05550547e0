"""On a three-broker cluster (replication factor 3, min.insync.replicas 2, SASL/SCRAM-SHA-512), nothing
acknowledged is lost and nothing is applied twice when the broker that leads the most partitions is
killed with SIGKILL in the middle of the work and started again.

Assessments published by the test go through two hops: careplan writes one plan version per patient and
publishes PlanUpdated through its outbox; followup schedules one cadence follow-up from it. The short
form runs in ``make test``; ``make cluster-test`` runs thousands of assessments and kills a broker
several times in turn (CARELOOP_CLUSTER_TEST_EVENTS, CARELOOP_CLUSTER_TEST_KILLS).
"""

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from careloop_shared.contracts import PatientAssessed, PlanUpdated
from careloop_shared.db import ALL_AGENCIES
from careloop_shared.events import new_message
from careloop_shared.kafka import client_options
from careloop_shared.settings import KafkaSettings
from careloop_shared.testing import REPO_ROOT, ServiceProcess, TopicReader, eventually, header, unique_prefix
from tests.conftest import base_env
from tests.test_consumer_delivery import assessed

pytestmark = pytest.mark.integration

EVENTS = int(os.environ.get("CARELOOP_CLUSTER_TEST_EVENTS", "300"))
KILLS = int(os.environ.get("CARELOOP_CLUSTER_TEST_KILLS", "1"))
# The work is paced over 2 * KILLS + 1 phases: steady, broker dead, broker back, (dead, back)...
PHASE_S = float(os.environ.get("CARELOOP_CLUSTER_TEST_PHASE_S", "7"))
CLUSTER = REPO_ROOT / "deploy/local/kafka-cluster.sh"
RUN_DIR = Path(os.environ.get("CARELOOP_RUN_DIR", REPO_ROOT / ".run"))
SERVICES = ("careplan", "followup")


def _cluster(*args: str) -> str:
    done = subprocess.run([str(CLUSTER), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"kafka-cluster.sh {' '.join(args)} failed: {done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def cluster() -> Any:
    """The three brokers, fresh; their environment (bootstrap list, SASL user, replication)."""
    if shutil.which("java") is None:
        pytest.skip("needs Java 17+ to run three Kafka brokers")
    if not (RUN_DIR / "kafka/lib/.complete").exists():
        pytest.skip("no Kafka jars yet: deploy/local/kafka.sh start (make infra-up) fetches them once")
    _cluster("clean")
    started = time.monotonic()
    _cluster("up")
    up_s = time.monotonic() - started
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in _cluster("env").splitlines() if "=" in line
    )
    env = {name: shlex.split(value)[0] for name, value in env.items()}
    try:
        yield env, up_s
    finally:
        _cluster("clean")


@pytest_asyncio.fixture(scope="module")
async def platform(cluster, infra, database_factory, log_dir):
    env, up_s = cluster
    prefix = unique_prefix()
    service_env = {**base_env(infra, prefix), **env, "CARELOOP_TOPIC_PARTITIONS": "6"}
    for service in SERVICES:
        service_env[f"{service.upper()}_DATABASE_URL"] = await database_factory(f"cluster_{service}")
    started = time.monotonic()
    processes = {s: ServiceProcess(s, service_env, log_dir).start() for s in SERVICES}
    try:
        await asyncio.gather(*(p.wait_ready(timeout=120) for p in processes.values()))
        kafka = client_options(KafkaSettings(**env))  # type: ignore[arg-type]
        yield {
            "kafka": kafka,
            "prefix": prefix,
            "env": service_env,
            "processes": processes,
            "timings": {"cluster_up_s": up_s, "services_ready_s": time.monotonic() - started},
        }
    finally:
        for process in processes.values():
            process.stop()


async def _leaders(kafka: dict[str, Any], prefix: str) -> tuple[Counter[int], dict[str, list[Any]]]:
    """Partitions led per broker, and every partition of the test's topics (leader, replicas, ISR)."""
    admin = AIOKafkaAdminClient(**kafka, request_timeout_ms=5000)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(ours)
    finally:
        await admin.close()
    partitions = {d["topic"]: d["partitions"] for d in described}
    return Counter(p["leader"] for ps in partitions.values() for p in ps if p["leader"] >= 0), partitions


async def _fully_replicated(kafka: dict[str, Any], prefix: str) -> bool:
    _, partitions = await _leaders(kafka, prefix)
    return all(len(p["isr"]) == 3 and p["leader"] >= 0 for ps in partitions.values() for p in ps)


async def _chaos(kafka: dict[str, Any], prefix: str, t0: float, faults: list[dict[str, Any]]) -> None:
    """Kill the busiest broker at the start of every odd phase, start it again at the next one and
    wait until every partition has its three replicas in sync again before the next kill."""
    for k in range(KILLS):
        await asyncio.sleep(max(0.0, t0 + (2 * k + 1) * PHASE_S - time.monotonic()))
        led, _ = await _leaders(kafka, prefix)
        node, count = led.most_common(1)[0]
        await asyncio.to_thread(_cluster, "kill", str(node))
        fault = {"node": node, "partitions_led": count, "killed_at_s": round(time.monotonic() - t0, 1)}
        await asyncio.sleep(max(0.0, t0 + (2 * k + 2) * PHASE_S - time.monotonic()))
        await asyncio.to_thread(_cluster, "up")
        fault["back_at_s"] = round(time.monotonic() - t0, 1)
        await eventually(
            lambda: _fully_replicated(kafka, prefix), timeout=120, interval=0.5, what="replicas in sync"
        )
        fault["in_sync_at_s"] = round(time.monotonic() - t0, 1)
        faults.append(fault)


async def _publish(kafka: dict[str, Any], topic: str, t0: float) -> tuple[dict[str, str], int]:
    """EVENTS assessments at an even pace over every phase; the acknowledged ones (event id -> patient)
    and how many the cluster refused."""
    producer = AIOKafkaProducer(**kafka, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    sends: list[tuple[str, str, asyncio.Future[Any]]] = []
    duration = (2 * KILLS + 1) * PHASE_S
    try:
        for i in range(EVENTS):
            await asyncio.sleep(max(0.0, t0 + i * duration / EVENTS - time.monotonic()))
            message = new_message(assessed(uuid.uuid4()))
            future = await producer.send(
                topic,
                message.event.body(),
                key=message.key.encode(),
                headers=[(k, v.encode()) for k, v in message.envelope.headers().items()],
            )
            sends.append((str(message.envelope.id), message.key, future))
        results = await asyncio.gather(*(f for _, _, f in sends), return_exceptions=True)
    finally:
        await producer.stop()
    acked = {
        event: patient
        for (event, patient, _), r in zip(sends, results, strict=True)
        if not isinstance(r, BaseException)
    }
    return acked, len(sends) - len(acked)


async def _rows(dsn: str, sql: str, *args: Any) -> list[Any]:
    # Every agency's rows, as the services' own consumers see them (row-level security).
    conn = await asyncpg.connect(dsn, server_settings={"careloop.agency": ALL_AGENCIES})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_a_broker_killed_under_load_loses_and_doubles_nothing(platform, tmp_path):
    kafka, prefix, env = platform["kafka"], platform["prefix"], platform["env"]
    careplan_db, followup_db = env["CAREPLAN_DATABASE_URL"], env["FOLLOWUP_DATABASE_URL"]
    assessed_topic, plans_topic = f"{prefix}{PatientAssessed.type}", f"{prefix}{PlanUpdated.type}"
    _, partitions = await _leaders(kafka, prefix)
    assert all(len(p["replicas"]) == 3 for ps in partitions.values() for p in ps), partitions
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, assessed_topic)])
    finally:
        await admin.close()
    assert ("min.insync.replicas", "2") in {(c[0], c[1]) for c in configs.resources[0][4]}

    t0 = time.monotonic()
    faults: list[dict[str, Any]] = []
    chaos = asyncio.create_task(_chaos(kafka, prefix, t0, faults))
    acked, refused = await _publish(kafka, assessed_topic, t0)
    await chaos
    published_s = time.monotonic() - t0
    patients = set(acked.values())

    async def followed_up() -> bool:
        rows = await _rows(
            followup_db, "SELECT DISTINCT patient_id::text FROM follow_ups WHERE reason = 'plan-cadence'"
        )
        return patients <= {r[0] for r in rows}

    await eventually(
        followed_up, timeout=180, interval=0.5, what="a follow-up for every acknowledged assessment"
    )
    settled_s = time.monotonic() - t0

    # careplan: each acknowledged assessment applied once (inbox), one plan version per patient.
    applied = {
        r[0]
        for r in await _rows(
            careplan_db, "SELECT event_id::text FROM inbox WHERE event_type = $1", PatientAssessed.type
        )
    }
    assert set(acked) <= applied, f"{len(set(acked) - applied)} acknowledged assessments lost"
    versions = await _rows(
        careplan_db,
        "SELECT p.patient_id::text, count(*) FROM plans p JOIN plan_versions v USING (plan_id) GROUP BY 1",
    )
    assert {v for _, v in versions} == {1} and patients <= {p for p, _ in versions}
    # The second hop: every PlanUpdated on the topic once by id, each followed by exactly one follow-up.
    async with TopicReader(kafka, plans_topic) as reader:

        async def all_plans_on_topic() -> bool:
            await reader.poll()
            return len({header(r, "ce_id") for r in reader.records}) >= len(versions)

        await eventually(all_plans_on_topic, timeout=60, what="every PlanUpdated on the topic")
    plan_events = {header(r, "ce_id") for r in reader.records}
    assert len(plan_events) == len(versions)
    followed = {
        r[0]
        for r in await _rows(
            followup_db, "SELECT event_id::text FROM inbox WHERE event_type = $1", PlanUpdated.type
        )
    }
    assert plan_events <= followed
    follow_ups = await _rows(
        followup_db,
        "SELECT patient_id::text, count(*) FROM follow_ups WHERE reason = 'plan-cadence' GROUP BY 1",
    )
    assert {c for _, c in follow_ups} == {1} and patients <= {p for p, _ in follow_ups}
    assert len(faults) == KILLS
    assert refused <= EVENTS // 20, f"{refused} of {EVENTS} assessments refused by the cluster"

    results = {
        "events": EVENTS,
        "acknowledged": len(acked),
        "refused": refused,
        "kills": faults,
        "plan_versions": len(versions),
        "records_on_plan_topic": len(reader.records),
        "plan_cadence_follow_ups": len(follow_ups),
        **{k: round(v, 1) for k, v in platform["timings"].items()},
        "published_s": round(published_s, 1),
        "all_followed_up_s": round(settled_s, 1),
    }
    out = REPO_ROOT / ".artifacts/kafka-cluster"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{EVENTS}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
