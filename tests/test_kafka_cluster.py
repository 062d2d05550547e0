"""On a three-broker cluster (replication factor 3, min.insync.replicas 2, SASL/SCRAM-SHA-512), nothing
accepted is lost and nothing is applied twice when the broker that leads the most partitions is
killed with SIGKILL in the middle of the work and started again.

The whole journey runs: the five services as processes on the cluster, each with a fresh database,
and patients registered, their referral consent recorded and a positive PHQ-2 posted to intake over
HTTP at an even rate (tests/chaos/load.py). An assessment is accepted when intake answers 202. The
short form runs in ``make test``; ``make cluster-test`` runs thousands of assessments and kills a
broker several times in turn (CARELOOP_CLUSTER_TEST_EVENTS, CARELOOP_CLUSTER_TEST_KILLS; the phases
grow so that journeys start at most CARELOOP_CLUSTER_TEST_RATE a second).
"""

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from careloop_shared.auth import issue_token
from careloop_shared.contracts import (
    ConsentRecorded,
    PatientAssessed,
    PatientRegistered,
    PlanUpdated,
    ReferralMade,
)
from careloop_shared.db import ALL_AGENCIES
from careloop_shared.kafka import client_options
from careloop_shared.settings import DEV_JWT_SECRET, KafkaSettings
from careloop_shared.testing import (
    REPO_ROOT,
    ServiceProcess,
    eventually,
    exported,
    start_services,
    unique_prefix,
)
from tests.chaos import tally
from tests.chaos.chaos import consumed_types
from tests.chaos.load import Load
from tests.conftest import SERVICES, base_env

pytestmark = pytest.mark.integration

EVENTS = int(os.environ.get("CARELOOP_CLUSTER_TEST_EVENTS", "300"))
KILLS = int(os.environ.get("CARELOOP_CLUSTER_TEST_KILLS", "1"))
# Journeys started a second, at most: three requests each, what intake answers within the client's
# timeout on the 2-core machine beside three brokers and the other services (measured: about 45).
RATE = float(os.environ.get("CARELOOP_CLUSTER_TEST_RATE", "20"))
# The work is paced over 2 * KILLS + 1 phases: steady, broker dead, broker back, (dead, back)...
PHASES = 2 * KILLS + 1
PHASE_S = float(os.environ.get("CARELOOP_CLUSTER_TEST_PHASE_S") or max(7.0, EVENTS / RATE / PHASES))
SETTLE_S = float(os.environ.get("CARELOOP_CLUSTER_TEST_SETTLE_S", "240"))
CLUSTER = REPO_ROOT / "deploy/local/kafka-cluster.sh"
RUN_DIR = Path(os.environ.get("CARELOOP_RUN_DIR", REPO_ROOT / ".run"))
# What every journey leaves in the case record, once each.
ONCE_PER_JOURNEY = (PatientRegistered, ConsentRecorded, PatientAssessed, ReferralMade)


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
    try:  # from the start: brokers that started and then failed (or timed out) are stopped too
        started = time.monotonic()
        _cluster("up")
        up_s = time.monotonic() - started
        env = exported(_cluster("env"))
        yield env, up_s
    finally:
        _cluster("clean")


@pytest_asyncio.fixture(scope="module")
async def platform(cluster, infra, database_factory, log_dir):
    """The five services on the cluster, each with a database of its own on the local server."""
    env, up_s = cluster
    prefix = unique_prefix()
    service_env = {**base_env(infra, prefix), **env, "CARELOOP_TOPIC_PARTITIONS": "6"}
    dsns = {s: await database_factory(f"cluster_{s}") for s in SERVICES}
    service_env.update({f"{s.upper()}_DATABASE_URL": dsn for s, dsn in dsns.items()})
    started = time.monotonic()
    processes = start_services(SERVICES, service_env, log_dir)  # each told where this intake listens
    try:
        await asyncio.gather(*(p.wait_ready(timeout=120) for p in processes.values()))
        yield {
            "kafka": client_options(KafkaSettings(**env)),  # type: ignore[arg-type]
            "prefix": prefix,
            "dsns": dsns,
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


async def _rows(dsn: str, sql: str, *args: Any) -> list[Any]:
    # Every agency's rows, as the services' own consumers see them (row-level security).
    conn = await asyncpg.connect(dsn, server_settings={"careloop.agency": ALL_AGENCIES})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _per_patient(dsn: str, sql: str, *args: Any) -> dict[str, int]:
    """``sql`` selects (patient id, count): the counts by patient."""
    return {r[0]: r[1] for r in await _rows(dsn, sql, *args)}


FOLLOW_UPS = "SELECT patient_id::text, count(*) FROM follow_ups WHERE reason = $1 GROUP BY 1"
PLAN_VERSIONS_FROM_ASSESSMENT = (
    "SELECT p.patient_id::text, count(*) FROM plans p JOIN plan_versions v USING (plan_id)"
    " WHERE v.reason LIKE 'assessment:%' GROUP BY 1"
)
RECORD_TYPES = (
    "SELECT patient_id::text, event_type, count(*), count(DISTINCT event_id) FROM record_entries"
    " GROUP BY 1, 2"
)
INBOX_TWICE = "SELECT count(*) - count(DISTINCT (consumer, event_id)) FROM inbox"


async def test_a_broker_killed_under_the_journey_loses_and_doubles_nothing(platform):
    kafka, prefix, dsns = platform["kafka"], platform["prefix"], platform["dsns"]
    processes: dict[str, ServiceProcess] = platform["processes"]
    _, partitions = await _leaders(kafka, prefix)
    assert all(len(p["replicas"]) == 3 for ps in partitions.values() for p in ps), partitions
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        assessed_topic = f"{prefix}{PatientAssessed.type}"
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, assessed_topic)])
    finally:
        await admin.close()
    assert ("min.insync.replicas", "2") in {(c[0], c[1]) for c in configs.resources[0][4]}

    run = prefix.strip("-.").removeprefix("test-")
    agency = f"agency-cluster-{run}"
    token = issue_token(DEV_JWT_SECRET, agency=agency, role="care-manager", subject="cm-cluster")
    t0 = time.monotonic()
    load = Load(processes["intake"].url, token, run, t0)
    faults: list[dict[str, Any]] = []
    chaos = asyncio.create_task(_chaos(kafka, prefix, t0, faults))
    await load.run(EVENTS, rate=EVENTS / (PHASES * PHASE_S))
    await chaos
    loaded_s = time.monotonic() - t0
    patients = set(load.patients)
    consumes = {s: [f"{prefix}{t}" for t in ts] for s, ts in consumed_types().items()}
    progress: dict[str, Any] = {}

    async def settled() -> bool:
        """Every accepted assessment followed up, every journey's referral in its record, no event
        left in an outbox, and every event on every consumed topic in its consumer's inbox."""
        cadence = await _per_patient(dsns["followup"], FOLLOW_UPS, "plan-cadence")
        recorded = {r[0] for r in await _rows(dsns["record"], RECORD_TYPES) if r[1] == ReferralMade.type}
        waiting = await tally.waiting(dsns)
        lost = {s: t for s, t in (await tally.missing(kafka, dsns, consumes)).items() if t}
        progress.update(
            without_follow_up=len(patients - set(cadence)),
            without_referral_in_record=len(patients - recorded),
            in_an_outbox=waiting,
            not_in_inbox=lost,
        )
        return patients <= set(cadence) and patients <= recorded and not waiting and not lost

    try:
        await eventually(settled, timeout=SETTLE_S, interval=1, what="every accepted journey through")
    except AssertionError as stuck:  # say what is missing, to tell a slow service from a lost event
        raise AssertionError(f"{stuck}; still missing: {progress}") from None
    settled_s = time.monotonic() - t0

    # followup: exactly one plan-cadence follow-up per accepted assessment, one check-in per referral.
    cadence = await _per_patient(dsns["followup"], FOLLOW_UPS, "plan-cadence")
    check_ins = await _per_patient(dsns["followup"], FOLLOW_UPS, "referral-check-in")
    assert {cadence[p] for p in patients} == {1}, Counter(cadence.values())
    # careplan: exactly one plan version from each assessment.
    from_assessment = await _per_patient(dsns["careplan"], PLAN_VERSIONS_FROM_ASSESSMENT)
    assert {from_assessment.get(p, 0) for p in patients} == {1}, Counter(from_assessment.values())
    # referral: the journey's one referral (depression, consented: sent to the provider), one check-in.
    referrals = await _rows(dsns["referral"], "SELECT patient_id::text, need, status FROM referrals")
    referred = Counter(r[0] for r in referrals)
    assert {referred[p] for p in patients} == {1}, Counter(referred.values())
    assert {(r[1], r[2]) for r in referrals if r[0] in patients} == {("depression", "requested")}
    assert {check_ins.get(p, 0) for p in patients} == {1}, Counter(check_ins.values())
    # record: each patient's journey with every event once, and every patient's chain verifies.
    entries = {(r[0], r[1]): (r[2], r[3]) for r in await _rows(dsns["record"], RECORD_TYPES)}
    assert all(n == distinct for n, distinct in entries.values()), "an event id twice in a case record"
    once = Counter(entries.get((p, t.type), (0, 0))[0] for p in patients for t in ONCE_PER_JOURNEY)
    assert set(once) == {1}, once
    assert all((p, PlanUpdated.type) in entries for p in patients)
    verified = await tally.verify_records(
        processes["record"].url, {agency: token}, [(agency, p) for p in patients]
    )
    assert verified["failed"] == 0 and verified["verified"] == len(patients), verified
    # Nothing lost or applied twice anywhere: every event on a consumed topic in its consumer's inbox,
    # no inbox holding an id twice, no effect made twice for one cause.
    lost = await tally.missing(kafka, dsns, consumes)
    assert not any(lost.values()), lost
    inbox_twice = {s: (await _rows(dsn, INBOX_TWICE))[0][0] for s, dsn in dsns.items()}
    assert set(inbox_twice.values()) == {0}, inbox_twice
    effects = await tally.effects(dsns)
    assert not any(effects["doubled"].values()), effects["doubled"]
    assert effects["counts"]["assessments"] == len(patients), effects["counts"]
    published = await tally.published(kafka, sorted({t for ts in consumes.values() for t in ts}))

    # The load: every journey answered, nothing refused for good, few requests needing another try.
    failed = load.retries + len(load.refused)
    assert load.gave_up == 0 and not load.refused, (load.gave_up, load.refused[:5])
    assert len(patients) == EVENTS
    assert failed <= load.requests // 20, f"{failed} of {load.requests} HTTP requests refused"
    assert len(faults) == KILLS
    assert [s for s, p in processes.items() if p.proc is None or p.proc.poll() is not None] == []

    results = {
        "events": EVENTS,
        "journeys_started_per_s": round(EVENTS / (PHASES * PHASE_S), 1),
        "phase_s": round(PHASE_S, 1),
        "accepted": len(patients),
        "http_requests": load.requests,
        "http_refused": failed,
        "http_refused_fraction": round(failed / max(1, load.requests), 4),
        "kills": faults,
        "plan_versions_from_assessment": sum(from_assessment[p] for p in patients),
        "plan_cadence_follow_ups": sum(cadence[p] for p in patients),
        "referrals": sum(referred[p] for p in patients),
        "referral_check_ins": sum(check_ins[p] for p in patients),
        "record_entries": effects["counts"]["record_entries"],
        "records_verified": verified["verified"],
        "events_not_in_an_inbox": sum(n for topics in lost.values() for n in topics.values()),
        "effects_doubled": sum(effects["doubled"].values()),
        "inbox_ids_twice": sum(inbox_twice.values()),
        "events_on_topics": sum(t["events"] for t in published.values()),
        "records_sent_again": sum(t["resent"] for t in published.values()),
        **{k: round(v, 1) for k, v in platform["timings"].items()},
        "loaded_s": round(loaded_s, 1),
        "all_through_s": round(settled_s, 1),
    }
    out = REPO_ROOT / ".artifacts/kafka-cluster"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{EVENTS}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
