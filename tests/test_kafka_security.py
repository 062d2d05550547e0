"""The Kafka security the Helm chart asks of Strimzi, proved on a real broker (deploy/local/kafka-secure.sh:
one KRaft node, SASL_SSL with SCRAM-SHA-512 and mutual TLS listeners, the StandardAuthorizer).

The chart is rendered with helm (default values but a topic prefix and one `readers` entry, once per
authentication type); its KafkaTopics are created by the test's admin as Strimzi's topic operator would,
and its KafkaUsers' ACLs are applied unchanged to their principals (``User:<name>`` for SCRAM,
``User:CN=<name>`` for mutual TLS, as Strimzi's User Operator does). careplan then runs as its SCRAM user
and followup with its client certificate, each with the Kafka environment its rendered Deployment sets
(mounted files and Secrets mapped to the local ones): an assessment goes through both, a poison record
reaches both dead-letter topics, and what the ACLs must refuse is refused. The reader KafkaUser replays
every topic with `careloop replay` and may do nothing else.
"""

import asyncio
import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

from careloop_cli.dead_letters import read as read_dead_letters
from careloop_cli.dead_letters import redrive
from careloop_cli.replay import replay
from careloop_shared.contracts import FollowUpScheduled, PatientAssessed, PlanUpdated
from careloop_shared.db import connect_for
from careloop_shared.events import new_message
from careloop_shared.kafka import client_options, evict_predecessor
from careloop_shared.settings import KafkaSettings
from careloop_shared.testing import (
    REPO_ROOT,
    ServiceProcess,
    TopicReader,
    eventually,
    exported,
    header,
    phq2_positive,
    publish_raw,
)
from careloop_shared.testing import publish_message as publish
from tests.conftest import base_env

pytestmark = pytest.mark.integration

SECURE = REPO_ROOT / "deploy/local/kafka-secure.sh"
RUN_DIR = Path(os.environ.get("CARELOOP_RUN_DIR", REPO_ROOT / ".run"))
CHART = REPO_ROOT / "deploy/helm/careloop"
PREFIX = "sec."
# careplan as a scram-sha-512 KafkaUser (SASL_SSL), followup as a tls KafkaUser (mutual TLS).
AUTHENTICATION = {"careplan": "scram-sha-512", "followup": "tls"}
# Kafka's wire codes for ACLs (org.apache.kafka.common.resource / acl).
RESOURCE = {"topic": 2, "group": 3, "cluster": 4, "transactionalId": 5}
PATTERN = {"literal": 3, "prefix": 4}
OPERATION = {
    "All": 2, "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8,
    "ClusterAction": 9, "DescribeConfigs": 10, "AlterConfigs": 11, "IdempotentWrite": 12,
}  # fmt: skip
PERMISSION = {"deny": 2, "allow": 3}
ANY = 1


def _run(*args: Any, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed: {done.stderr[-3000:]}"
    return done.stdout


def _render(authentication: str) -> list[dict[str, Any]]:
    tools = dict(line.split("=", 1) for line in _run(REPO_ROOT / "deploy/helm/tools.sh", "env").splitlines())
    manifest = _run(
        shlex.split(tools["HELM"])[0], "template", "careloop", CHART, "--namespace", "careloop",
        "--kube-version", "1.34.0", "--set", f"kafka.topicPrefix={PREFIX}",
        "--set", f"kafka.strimzi.authentication={authentication}",
        "--set", "kafka.strimzi.readers={analytics}", "--set", "kafka.strimzi.redrivers={ops}",
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


@pytest.fixture(scope="module")
def chart() -> dict[str, Any]:
    """Per service (and for a reader, as `careloop replay` runs) its KafkaUser; per service its container's
    Kafka environment; the KafkaTopics."""
    if shutil.which("java") is None:
        pytest.skip("needs Java 17+ to run the Kafka broker")
    if not (RUN_DIR / "kafka/lib/.complete").exists():
        pytest.skip("no Kafka jars yet: deploy/local/kafka.sh start (make infra-up) fetches them once")
    out: dict[str, Any] = {"users": {}, "env": {}}
    for service, authentication in AUTHENTICATION.items():
        docs = _render(authentication)
        out["topics"] = [d for d in docs if d["kind"] == "KafkaTopic"]
        users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
        out["names"] = sorted(users)
        if authentication == "scram-sha-512":  # the reader and the redriver over SASL_SSL
            out["users"]["reader"] = users["careloop-reader-analytics"]
            out["users"]["redriver"] = users["careloop-redriver-ops"]
        user = out["users"][service] = users[f"careloop-{service}"]
        assert user["spec"]["authentication"]["type"] == authentication
        [deployment] = [
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == f"careloop-{service}"
        ]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        out["env"][service] = {
            e["name"]: e.get("value", e.get("valueFrom"))
            for e in container["env"]
            if e["name"].startswith(("KAFKA_", "CARELOOP_KAFKA_", "CARELOOP_TOPIC_"))
        }
    return out


@pytest.fixture(scope="module")
def broker(chart) -> Any:
    """The secure broker, fresh, with a SCRAM password and a client certificate for every KafkaUser the
    chart renders; the admin's environment (a super user over SASL_SSL)."""
    _run(SECURE, "clean")
    try:  # from the start: a broker that started and then failed (or timed out) is stopped too
        started = time.monotonic()
        _run(SECURE, "up", env={"CARELOOP_KAFKA_SECURE_USERS": " ".join(chart["names"])})
        up_s = time.monotonic() - started
        env = exported(_run(SECURE, "env"))
        yield env, up_s
    finally:
        _run(SECURE, "clean")


def _user_files(broker_env: dict[str, str], user: str) -> Path:
    """What Strimzi puts in the KafkaUser's Secret: password, user.crt, user.key, ca.crt."""
    return Path(broker_env["CARELOOP_KAFKA_SECURE_USERS_DIR"]) / user


def _service_kafka_env(chart_env: dict[str, Any], broker_env: dict[str, str], user: str) -> dict[str, str]:
    """The chart's Kafka environment of a service, its mounted files and Secrets replaced by local ones."""
    files = _user_files(broker_env, user)
    env: dict[str, str] = {}
    for name, value in chart_env.items():
        if isinstance(value, dict):  # valueFrom: the KafkaUser's Secret, key password
            assert value["secretKeyRef"] == {"name": user, "key": "password"}, value
            value = (files / "password").read_text()
        elif value.startswith("/etc/careloop/"):  # the CA and the user's certificate, as mounted
            value = str(files / Path(value).name)
        env[name] = value
    protocol = env["CARELOOP_KAFKA_SECURITY_PROTOCOL"]
    mtls = broker_env["CARELOOP_KAFKA_SECURE_MTLS_BOOTSTRAP"]
    env["KAFKA_BOOTSTRAP_SERVERS"] = mtls if protocol == "SSL" else broker_env["KAFKA_BOOTSTRAP_SERVERS"]
    return env


def _options(env: dict[str, str]) -> dict[str, Any]:
    return client_options(KafkaSettings(**env))  # type: ignore[arg-type]


def _principal(user: dict[str, Any]) -> str:
    name = user["metadata"]["name"]
    return f"User:CN={name}" if user["spec"]["authentication"]["type"] == "tls" else f"User:{name}"


async def _apply_acls(admin: AIOKafkaAdminClient, principal: str, acls: list[dict[str, Any]]) -> int:
    """Create the KafkaUser's ACLs for ``principal`` (aiokafka 0.14 has Kafka's CreateAcls request but
    no admin method for it); how many bindings were made."""
    made = 0
    for acl in acls:
        resource = acl["resource"]
        name = resource.get("name", "kafka-cluster")
        for operation in acl.get("operations") or [acl["operation"]]:
            request = CreateAclsRequest(
                RESOURCE[resource["type"]], name, PATTERN[resource.get("patternType", "literal")],
                principal, acl.get("host", "*"), OPERATION[operation], PERMISSION[acl.get("type", "allow")],
            )  # fmt: skip
            [(code, message)] = (await admin._send_request(request)).creation_responses
            assert code == 0, f"ACL {operation} on {name} for {principal}: error {code} {message}"
            made += 1
    return made


async def _bindings(admin: AIOKafkaAdminClient, principal: str) -> int:
    response = await admin._send_request(DescribeAclsRequest(ANY, None, ANY, principal, None, ANY, ANY))
    assert response.error_code == 0, response
    return sum(len(resource[3]) for resource in response.resources)


async def _bindings_are(admin: AIOKafkaAdminClient, principal: str, count: int) -> bool:
    return await _bindings(admin, principal) == count


@pytest_asyncio.fixture(scope="module")
async def secured(chart, broker, infra, database_factory, log_dir):
    broker_env, up_s = broker
    admin_options = _options(broker_env)
    timings: dict[str, float] = {"broker_up_s": up_s}
    admin = AIOKafkaAdminClient(**admin_options)
    await admin.start()
    try:
        t0 = time.monotonic()
        # As Strimzi's topic operator would, with one replica on one broker.
        topics = [
            NewTopic(
                t["spec"]["topicName"],
                t["spec"]["partitions"],
                1,
                topic_configs={k: str(v) for k, v in t["spec"]["config"].items()}
                | {"min.insync.replicas": "1"},
            )
            for t in chart["topics"]
        ]
        response = await admin.create_topics(topics)
        assert all(e[1] == 0 for e in response.topic_errors), response.topic_errors
        principals: dict[str, str] = {}
        for service, user in chart["users"].items():
            principals[service] = _principal(user)
            made = await _apply_acls(admin, principals[service], user["spec"]["authorization"]["acls"])
            await eventually(
                lambda p=principals[service], n=made: _bindings_are(admin, p, n), what=f"{service} ACLs"
            )
        timings["topics_and_acls_s"] = time.monotonic() - t0
    finally:
        await admin.close()

    env = base_env(infra, PREFIX)
    kafka_env: dict[str, dict[str, str]] = {}
    processes: dict[str, ServiceProcess] = {}
    t0 = time.monotonic()
    for service in AUTHENTICATION:
        user = chart["users"][service]["metadata"]["name"]
        kafka_env[service] = _service_kafka_env(chart["env"][service], broker_env, user)
        assert kafka_env[service]["CARELOOP_TOPIC_PREFIX"] == PREFIX
        assert kafka_env[service]["CARELOOP_KAFKA_CREATE_TOPICS"] == "false"
        service_env = {**env, **kafka_env[service]}
        service_env[f"{service.upper()}_DATABASE_URL"] = await database_factory(f"secure_{service}")
        processes[service] = ServiceProcess(service, service_env, log_dir).start()
    try:
        await asyncio.gather(*(p.wait_ready(timeout=90) for p in processes.values()))
        timings["services_ready_s"] = time.monotonic() - t0
        yield {
            "admin": admin_options,
            "broker_env": broker_env,
            "clients": {s: _options(e) for s, e in kafka_env.items()},
            # The reader over SASL_SSL with its own SCRAM password (the chart's default authentication).
            "reader": _options(
                {
                    **broker_env,
                    "CARELOOP_KAFKA_SASL_USERNAME": "careloop-reader-analytics",
                    "CARELOOP_KAFKA_SASL_PASSWORD": _user_files(broker_env, "careloop-reader-analytics")
                    .joinpath("password")
                    .read_text(),
                }
            ),
            "redriver": _options(
                {
                    **broker_env,
                    "CARELOOP_KAFKA_SASL_USERNAME": "careloop-redriver-ops",
                    "CARELOOP_KAFKA_SASL_PASSWORD": _user_files(broker_env, "careloop-redriver-ops")
                    .joinpath("password")
                    .read_text(),
                }
            ),
            "kafka_env": kafka_env,
            "principals": principals,
            "processes": processes,
            "timings": timings,
        }
    finally:
        for process in processes.values():
            process.stop()


def _broker_log() -> list[str]:
    return (RUN_DIR / "kafka-secure/kafka.log").read_text(errors="replace").splitlines()


def _denials(principal: str) -> list[str]:
    """What the broker's authorizer logged as denied to ``principal`` (log4j2-secure.properties)."""
    return [line for line in _broker_log() if f"Principal = {principal} is Denied" in line]


async def _fetch(dsn: str, sql: str, *args: Any) -> list[Any]:
    conn = await connect_for(dsn)  # every agency's rows (row-level security)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_events_flow_over_sasl_ssl_and_mtls_with_only_the_charts_acls(secured, tmp_path):
    admin, processes = secured["admin"], secured["processes"]
    t0 = time.monotonic()
    patient = uuid.uuid4()
    await publish(admin, f"{PREFIX}{PatientAssessed.type}", new_message(phq2_positive(patient, "agency-sec")))
    followup_db = processes["followup"].env["FOLLOWUP_DATABASE_URL"]
    careplan_db = processes["careplan"].env["CAREPLAN_DATABASE_URL"]

    async def followed_up() -> bool:
        sql = "SELECT count(*) FROM follow_ups WHERE patient_id = $1 AND reason = 'plan-cadence'"
        return (await _fetch(followup_db, sql, patient))[0][0] == 1

    # careplan (SCRAM) consumed it and published PlanUpdated; followup (mTLS) consumed that.
    await eventually(followed_up, timeout=60, what="a plan-cadence follow-up through careplan and followup")
    journey_s = time.monotonic() - t0
    applied = await _fetch(careplan_db, "SELECT event_type FROM inbox")
    assert PatientAssessed.type in {r[0] for r in applied}
    # Both produced to their own topics (idempotent producers, Write on the topic only).
    async with TopicReader(
        admin, f"{PREFIX}{PlanUpdated.type}", f"{PREFIX}{FollowUpScheduled.type}"
    ) as reader:
        await reader.wait_for(lambda r: r.topic.endswith(PlanUpdated.type), what="PlanUpdated from careplan")
        await reader.wait_for(lambda r: r.topic.endswith(FollowUpScheduled.type), what="FollowUpScheduled")

    # A record that is no event: each service dead-letters it to its own dead-letter topic.
    poison = f"poison-{uuid.uuid4()}".encode()
    await publish_raw(admin, f"{PREFIX}{PatientAssessed.type}", b"not a careloop event", key=poison)
    dead_letter_topics = [f"{PREFIX}careloop.{s}.dlq" for s in processes]
    async with TopicReader(admin, *dead_letter_topics) as reader:
        for topic in dead_letter_topics:
            await reader.wait_for(
                lambda r, t=topic: r.topic == t and r.key == poison, what=f"poison on {topic}"
            )

    # Offsets committed by both groups, past the poison record.
    client = AIOKafkaAdminClient(**admin)
    await client.start()
    try:
        for service in processes:

            async def committed(group: str = f"{PREFIX}{service}") -> bool:
                offsets = await client.list_consumer_group_offsets(group)
                ours = [o.offset for tp, o in offsets.items() if tp.topic.endswith(PatientAssessed.type)]
                return sum(max(0, o) for o in ours) == 2

            await eventually(committed, timeout=30, what=f"{service}'s group committed both records")
    finally:
        await client.close()
    # A service started after a crash may make its predecessor leave its group (kafka.evict_predecessor):
    # the group's ACLs allow it, so an id no member holds is answered as gone, not refused.
    (tmp_path / "member").write_text("aiokafka-no-such-member")
    for service in processes:
        outcome = await evict_predecessor(
            secured["clients"][service], f"{PREFIX}{service}", tmp_path / "member"
        )
        assert outcome == "gone", (service, outcome)
    # Nothing the services did was refused: the chart's ACLs are enough, and no service asks for more
    # (not even to create the topics it reads: ensure_topics owns that, and with the chart it may not).
    for service, principal in secured["principals"].items():
        refused = _denials(principal)
        assert refused == [], f"{service} was denied: {refused[:3]}"
    print({**{k: round(v, 1) for k, v in secured["timings"].items()}, "journey_s": round(journey_s, 1)})


async def _produce(options: dict[str, Any], topic: str) -> None:
    producer = AIOKafkaProducer(**options, enable_idempotence=True, acks="all", request_timeout_ms=10000)
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"{}", key=b"intruder")
    finally:
        await producer.stop()


async def _read(options: dict[str, Any], topic: str, group: str | None = None) -> None:
    consumer = AIOKafkaConsumer(topic, **options, group_id=group, auto_offset_reset="earliest")
    try:
        await consumer.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=500)
        raise AssertionError(f"read {topic} for 15 s without being refused")
    finally:
        await consumer.stop()


async def test_the_acls_refuse_what_a_service_does_not_own(secured, tmp_path):
    clients, principals = secured["clients"], secured["principals"]
    # careplan (SCRAM): no Write on intake's topic, no Read on a followup topic it does not consume,
    # no other group, no Create.
    careplan = clients["careplan"]
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(careplan, f"{PREFIX}{PatientAssessed.type}")
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(careplan, f"{PREFIX}careloop.followup.follow_up_due.v1")
    with pytest.raises(GroupAuthorizationFailedError):
        await _read(careplan, f"{PREFIX}{PatientAssessed.type}", group=f"{PREFIX}followup")
    (tmp_path / "member").write_text("aiokafka-no-such-member")  # nor make another group's member leave
    outcome = await evict_predecessor(careplan, f"{PREFIX}followup", tmp_path / "member")
    assert outcome == "GroupAuthorizationFailedError", outcome
    admin = AIOKafkaAdminClient(**careplan)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(f"{PREFIX}careloop.careplan.extra", 1, 1)])
    finally:
        await admin.close()
    assert response.topic_errors[0][1] == TopicAuthorizationFailedError.errno
    # followup (mTLS): no Write on careplan's topic, no Read on careplan's dead-letter topic.
    followup = clients["followup"]
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(followup, f"{PREFIX}{PlanUpdated.type}")
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(followup, f"{PREFIX}careloop.careplan.dlq")
    # The broker's authorizer names each refusal.
    assert _denials(principals["careplan"]) and _denials(principals["followup"])


async def test_a_wrong_ca_or_credential_does_not_connect(secured, database_factory, log_dir, caplog):
    env = secured["kafka_env"]
    untrusted = Path(secured["broker_env"]["CARELOOP_KAFKA_SECURE_USERS_DIR"]).parent / "untrusted"
    wrong_ca = {**env["careplan"], "CARELOOP_KAFKA_SSL_CA_FILE": str(untrusted / "ca.crt")}
    wrong_password = {**env["careplan"], "CARELOOP_KAFKA_SASL_PASSWORD": "not-the-password"}
    untrusted_cert = {
        **env["followup"],
        "CARELOOP_KAFKA_SSL_CERT_FILE": str(untrusted / "user.crt"),
        "CARELOOP_KAFKA_SSL_KEY_FILE": str(untrusted / "user.key"),
    }
    no_cert = {
        k: v
        for k, v in env["followup"].items()
        if k not in ("CARELOOP_KAFKA_SSL_CERT_FILE", "CARELOOP_KAFKA_SSL_KEY_FILE")
    }
    # What the client logs, and what the broker logs (None: the client gives up before the broker sees it).
    handshake_failed = "Failed authentication with /127.0.0.1 (channelId=127.0.0.1:{port}-"
    for name, settings, client_says, broker_says in (
        ("a CA that did not sign the broker", wrong_ca, "CERTIFICATE_VERIFY_FAILED", None),
        ("a wrong SCRAM password", wrong_password, "SaslAuthenticationFailed", "invalid credentials"),
        ("a client certificate from another CA", untrusted_cert, "closed", "(SSL handshake failed)"),
        ("no client certificate", no_cert, "closed", "(SSL handshake failed)"),
    ):
        caplog.clear()
        log_before = len(_broker_log())
        admin = AIOKafkaAdminClient(**_options(settings), request_timeout_ms=5000)
        with pytest.raises(KafkaConnectionError):
            await admin.start()
        await admin.close()
        assert client_says in caplog.text, f"{name}: {caplog.text[-500:]}"
        if broker_says:
            mark = handshake_failed.format(port=settings["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])

            async def logged(mark: str = mark, says: str = broker_says, since: int = log_before) -> bool:
                return any(mark in line and says in line for line in _broker_log()[since:])

            await eventually(logged, timeout=10, what=f"the broker logging {name}")
    # A service given the wrong CA says why in its log and exits (here after a short wait).
    service_env = {
        **secured["processes"]["careplan"].env,
        **wrong_ca,
        "CARELOOP_STARTUP_WAIT_S": "2",
        "CAREPLAN_DATABASE_URL": await database_factory("secure_wrong_ca"),
    }
    process = ServiceProcess("careplan", service_env, log_dir).start()
    try:
        assert await process.wait_exit(timeout=60) != 0
    finally:
        process.stop()
    assert "certificate verify failed" in process.log_path.read_text(errors="replace")


async def test_a_reader_user_can_replay_every_topic_and_nothing_more(secured, database_factory):
    """The chart's `readers` KafkaUsers: Read on every event topic, no group, as `careloop replay` reads."""
    admin, reader = secured["admin"], secured["reader"]
    message = new_message(phq2_positive(uuid.uuid4(), "agency-sec"))
    await publish(admin, f"{PREFIX}{PatientAssessed.type}", message)
    dsn = await database_factory("secure_replay")
    counts = await replay(reader, dsn, topic_prefix=PREFIX, timeout_s=30)
    assert counts["stored"] >= 1
    stored = await _fetch(
        dsn, "SELECT event_id FROM careloop_events WHERE event_id = $1", message.envelope.id
    )
    assert len(stored) == 1
    # With no Write on any topic it does not even get a producer id (KIP-679).
    with pytest.raises(ClusterAuthorizationFailedError):
        await _produce(reader, f"{PREFIX}{PatientAssessed.type}")
    with pytest.raises(GroupAuthorizationFailedError):
        await _read(reader, f"{PREFIX}{PatientAssessed.type}", group=f"{PREFIX}careplan")
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(reader, f"{PREFIX}careloop.careplan.dlq")


async def test_a_redriver_user_sends_dead_letters_again_and_does_nothing_more(secured, database_factory):
    """The chart's `redrivers` KafkaUsers: Read on every dead-letter topic, Write on every event topic, no
    group, as `careloop dlq list|redrive` runs."""
    admin, redriver = secured["admin"], secured["redriver"]
    message = new_message(phq2_positive(uuid.uuid4(), "agency-sec"))
    topic, dead = f"{PREFIX}{PatientAssessed.type}", f"{PREFIX}careloop.careplan.dlq"
    said = {"dlq_error_type": "RuntimeError", "dlq_error": "fixed since", "dlq_consumer": "careplan"}
    said |= {"dlq_original_topic": topic, "dlq_original_partition": "0", "dlq_original_offset": "0"}
    headers = {**message.envelope.headers(), **said}
    await publish_raw(
        admin,
        dead,
        message.event.body(),
        key=message.key.encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )
    [letter] = [d for d in await read_dead_letters(redriver, dead) if d.event_id == message.envelope.id]
    dsn = await database_factory("secure_redrive")  # the inbox the marks are in, as a service's holds them
    conn = await connect_for(dsn)
    try:
        await conn.execute("CREATE TABLE inbox (consumer text, event_id uuid, outcome text)")
    finally:
        await conn.close()
    assert await redrive(redriver, dsn, [letter]) == [(letter, f"sent again to {topic}")]
    async with TopicReader(admin, topic) as original:
        await original.wait_for(lambda r: header(r, "careloop_redriven_from") == f"{dead}:{letter.where}")
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(redriver, topic)  # no event topic to read
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(redriver, dead)  # no dead letter to write
