"""Test fixtures every service's tests use: real Kafka and PostgreSQL, throwaway databases, polling.

Where the infrastructure comes from, in order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``CARELOOP_PG_URL`` when set;
else testcontainers when a Docker engine answers; else the project's own local broker and server
(``deploy/local/infra.sh up``). Every test session uses its own topic prefix and databases, so runs
never see each other's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from careloop_shared.contracts import Need, PatientAssessed, RiskLevel
from careloop_shared.doors import api_routes as api_routes  # for the tests that walk an app's routes
from careloop_shared.events import Message
from careloop_shared.http import PERMISSION_KEY
from careloop_shared.kafka import Kafka, client_options, connection
from careloop_shared.settings import KafkaSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
# The kernel's tables that hold no row-level security policy: no agency column, no patient data (kernel
# migrations 005 and 007 say why). Each service's row-security test allows these and no other.
KERNEL_TABLES_WITHOUT_POLICY = frozenset({"schema_migrations", "outbox", "outbox_pending", "inbox"})
# The kernel's tables that name an agency, each held by row security.
KERNEL_TABLES_WITH_POLICY = frozenset({"audit_log", "idempotency_keys", "patient_agencies"})
T = TypeVar("T")


@dataclass(frozen=True)
class Infra:
    bootstrap_servers: str
    pg_url: str  # server URL without a database name
    # Client options for the broker, with the environment's CARELOOP_KAFKA_* security settings.
    kafka: Mapping[str, Any] = field(default_factory=dict)
    # A superuser of the same server (no database name), for tests that play one; None when unknown.
    pg_admin_url: str | None = None

    def admin_url(self, database: str) -> str:
        if self.pg_admin_url is None:
            pytest.skip("no superuser URL for this PostgreSQL: set CARELOOP_PG_ADMIN_URL")
        return f"{self.pg_admin_url.rstrip('/')}/{database}"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    pg_url = os.environ.get("CARELOOP_PG_URL")
    pg_admin_url = os.environ.get("CARELOOP_PG_ADMIN_URL")
    with contextlib.ExitStack() as stack:
        if not (bootstrap and pg_url) and _docker_answers():
            from testcontainers.kafka import KafkaContainer
            from testcontainers.postgres import PostgresContainer

            if not bootstrap:
                kafka = stack.enter_context(KafkaContainer().with_kraft())
                bootstrap = kafka.get_bootstrap_server()
            if not pg_url:
                pg = stack.enter_context(PostgresContainer("postgres:15", driver=None))
                pg_url = pg_admin_url = pg.get_connection_url().rsplit("/", 1)[0]  # a superuser
        if not (bootstrap and pg_url):
            subprocess.run([str(REPO_ROOT / "deploy/local/infra.sh"), "up"], check=True)
            bootstrap = bootstrap or "127.0.0.1:" + os.environ.get("CARELOOP_KAFKA_PORT", "9092")
            port = os.environ.get("CARELOOP_PG_PORT", "55432")
            if not pg_url:
                pg_url = f"postgresql://careloop@127.0.0.1:{port}"
                pg_admin_url = pg_admin_url or f"postgresql://postgres@127.0.0.1:{port}"
        options = client_options(KafkaSettings(kafka_bootstrap_servers=bootstrap))
        _BROKERS.append(options)
        yield Infra(bootstrap, pg_url, options, pg_admin_url)


# What `make test-unit` points at a closed port, so that no unit test can reach a broker or database.
_CLOSED_PORTS = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "CARELOOP_PG_URL": "postgresql://nobody@127.0.0.1:9",
}


@pytest.fixture(autouse=True)
def _unit_tests_reach_no_infrastructure(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In `make test` as in `make test-unit`: a test without the ``integration`` mark sees the broker
    and database at a closed port and no superuser URL, and may not use the ``infra`` fixture. So one
    run of `make test` checks what a separate unit-only run would (CI runs the unit tests once)."""
    if request.node.get_closest_marker("integration") is not None:
        return
    if "infra" in request.fixturenames:
        pytest.fail("a test without the integration mark uses the broker and database (infra)")
    for name, value in _CLOSED_PORTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CARELOOP_PG_ADMIN_URL", raising=False)


_PREFIXES: list[str] = []


def unique_prefix() -> str:
    """A topic and consumer-group prefix of this test session's own; its topics are deleted at the end."""
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    _PREFIXES.append(prefix)
    return prefix


_BROKERS: list[Kafka] = []


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _delete_test_topics() -> AsyncIterator[None]:
    """Leave the broker as it was: thousands of stale test topics would slow every later run.

    Needs no infrastructure itself, so unit-only runs start none; it cleans up where tests used some.
    """
    yield
    if not (_PREFIXES and _BROKERS):
        return
    with contextlib.suppress(Exception):  # a broker that is already gone has nothing to clean
        admin = AIOKafkaAdminClient(**connection(_BROKERS[0]), client_id="careloop-tests")
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(tuple(_PREFIXES))]
            for start in range(0, len(ours), 100):
                await admin.delete_topics(ours[start : start + 100])
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    return unique_prefix()


@pytest_asyncio.fixture(scope="session")
async def database_factory(infra: Infra) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Creates throwaway databases (dropped at the end of the session); returns their URLs."""
    created: list[str] = []
    admin_url = f"{infra.pg_url}/postgres"

    async def create(label: str) -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        created.append(f"{infra.pg_url}/{name}")
        return created[-1]

    yield create
    await drop_databases(infra.pg_url, created)


async def drop_database(conn: asyncpg.Connection, name: str, timeout: float = 30.0) -> None:
    """Drop a throwaway database with whatever is still on it. FORCE ends the other sessions but
    refuses one this role may not signal: an autovacuum worker (it runs as no role; the short chaos
    run's CI failed on one) or a backend of a process stopped a moment ago under another role. A
    plain DROP cancels an autovacuum worker itself and waits a few seconds for other sessions, and a
    backend whose client has gone ends on its own: both are tried again until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                return
            except asyncpg.ObjectInUseError:
                if time.monotonic() >= deadline:
                    raise
        await asyncio.sleep(0.1)


async def drop_databases(pg_url: str, urls: Iterable[str]) -> None:
    """Drop the throwaway databases at ``urls`` (``drop_database``), connected to ``pg_url``'s
    ``postgres`` database."""
    conn = await asyncpg.connect(f"{pg_url}/postgres")
    try:
        for url in urls:
            await drop_database(conn, url.rsplit("/", 1)[1])
    finally:
        await conn.close()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last value: {last!r})")


async def until(condition: Callable[[], bool], what: str, *, timeout: float = 5.0) -> None:
    """``eventually`` for a condition on what the test itself holds, checked every 5 ms."""

    async def holds() -> bool:
        return condition()

    await eventually(holds, timeout=timeout, interval=0.005, what=what)


async def publish_raw(
    kafka: Kafka,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(**connection(kafka), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers or [])
    finally:
        await producer.stop()


def phq2_positive(patient_id: uuid.UUID, agency: str, *, rules_version: str = "test") -> PatientAssessed:
    """A positive PHQ-2 as intake announces it (need: depression, moderate risk): a journey's first event."""
    return PatientAssessed(
        patient_id=patient_id,
        agency_id=agency,
        assessment_id=uuid.uuid4(),
        instrument="phq-2",
        rules_version=rules_version,
        total_score=4,
        needs=[Need(code="depression")],
        risk_level=RiskLevel.moderate,
        assessed_at=datetime.now(UTC),
    )


async def publish_message(kafka: Kafka, topic: str, message: Message) -> None:
    await publish_raw(
        kafka,
        topic,
        message.event.body(),
        key=message.key.encode(),
        headers=[(k, v.encode()) for k, v in message.envelope.headers().items()],
    )


class TopicReader:
    """Reads a topic from the beginning and keeps every record seen, for assertions."""

    def __init__(self, kafka: Kafka, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            **connection(kafka),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self.records: list[Any] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> list[Any]:
        batches = await self._consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.records.extend(records)
        return self.records

    async def wait_for(
        self, predicate: Callable[[Any], bool], *, timeout: float = 30.0, what: str = "record"
    ) -> Any:
        async def probe() -> Any:
            await self.poll()
            return next((r for r in self.records if predicate(r)), None)

        return await eventually(probe, timeout=timeout, interval=0, what=what)


def header(record: Any, name: str) -> str | None:
    """A Kafka record's header as text; None when it is missing or not UTF-8 (poison may carry such)."""
    value = next((v for k, v in record.headers if k == name), None)
    try:
        return None if value is None else bytes(value).decode()
    except UnicodeDecodeError:
        return None


def exported(script_output: str) -> dict[str, str]:
    """The variables a local script's ``env`` prints as ``export NAME=value`` lines (shell-quoted)."""
    words = (shlex.split(line) for line in script_output.splitlines() if line.startswith("export "))
    return dict(w[1].split("=", 1) for w in words)


# Where a test's service listens: below the kernel's ephemeral ports (32768 and up on Linux) and clear of
# the local scripts' fixed ones (Kafka 9092-9093, the Kafka cluster 19092-19294, secure Kafka 29092-29094).
LISTEN_PORTS = range(20000, 29000)
# Every port handed out by this process: services started together each ask before any of them binds, so a
# port free for one is free for the next (two of a platform's services once drew the same one).
_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port for a test's service to listen on, and to listen on again when it is restarted: outside
    the ephemeral range, where any process's outgoing connection may take the port while the service is
    down (a chaos run's followup found its port taken by one and could not bind for four minutes). Never
    the same port twice in one process."""
    import random
    import socket

    ephemeral_low = _ephemeral_low()
    ports = [p for p in LISTEN_PORTS if p < ephemeral_low and p not in _GIVEN]
    for port in random.sample(ports, min(len(ports), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    while True:  # no room below the ephemeral range: let the kernel choose
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            chosen: int = s.getsockname()[1]
        if chosen not in _GIVEN:
            _GIVEN.add(chosen)
            return chosen


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _terminate_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies (even by SIGKILL), so no service
    outlives the run that started it (Linux's PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


class ServiceProcess:
    """One service run as its own OS process, as in production: ``python -m <service>``."""

    def __init__(self, service: str, env: dict[str, str], log_dir: Path) -> None:
        self.service = service
        self.port = free_port()
        self.env = {**os.environ, **env, f"{service.upper()}_PORT": str(self.port)}
        self.log_path = log_dir / f"{service}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.env.get("PYTHON", sys.executable), "-m", self.service],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_terminate_with_parent if sys.platform == "linux" else None,
        )
        return self

    async def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.service} exited with {self.proc.returncode}: {self.tail()}")
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=timeout, interval=0.2, what=f"{self.service} ready")

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        proc = self.proc

        async def exited() -> bool:
            return proc.poll() is not None

        await eventually(exited, timeout=timeout, what=f"{self.service} exit")
        return proc.returncode

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def services(names: Iterable[str], env: dict[str, str], log_dir: Path) -> dict[str, ServiceProcess]:
    """One process per named service, not started yet, each told where the others listen: the services
    that seal free text ask intake for patients' data keys (``CARELOOP_INTAKE_URL``)."""
    processes = {name: ServiceProcess(name, env, log_dir) for name in names}
    if "intake" in processes:
        for process in processes.values():
            process.env["CARELOOP_INTAKE_URL"] = processes["intake"].url
    return processes


def start_services(names: Iterable[str], env: dict[str, str], log_dir: Path) -> dict[str, ServiceProcess]:
    """``services`` started."""
    processes = services(names, env, log_dir)
    for process in processes.values():
        process.start()
    return processes


def route_permissions(app: Any, prefix: str) -> dict[tuple[str, str], str]:
    """The permission each operation under ``prefix`` names in ``app``'s OpenAPI document, by
    (method, path template)."""
    return {
        (method, path): operation[PERMISSION_KEY]
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(prefix)
        for method, operation in operations.items()
    }


def app_of(name: str, routers: list[Any], settings: Any = None) -> Any:
    """A service's app (``create_app``: authentication, permissions, error answers, middleware) around
    ``routers`` alone, with no database, context or store: for testing what the kernel does to a request."""
    from careloop_shared.app import create_app
    from careloop_shared.runtime import ServiceRuntime, ServiceSpec
    from careloop_shared.settings import ServiceSettings

    spec = ServiceSpec(name=name, migrations=Path("."), context=None, store=lambda _: None)
    return create_app(ServiceRuntime(spec, settings or ServiceSettings()), routers, description="test")


def settings_for(settings_type: type[T], infra: Infra, database_url: str, **extra: Any) -> T:
    """A service's settings under test: ``database_url``, the test broker and topics of its own (a fresh
    ``unique_prefix``), and ``extra`` for what the test wants otherwise."""
    return settings_type(  # type: ignore[call-arg]
        database_url=database_url,
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=unique_prefix(),
        **extra,
    )


def client_of(
    app: Any, base_url: str = "http://t", *, raise_app_exceptions: bool = True, **options: Any
) -> httpx.AsyncClient:
    """A client calling ``app`` in this process, no server or socket between (``options`` are the
    client's: a timeout, redirects)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url=base_url, **options)


@contextlib.asynccontextmanager
async def served(app: Any, base_url: str, **options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A service's app started as its process starts it (its runtime: pool, migrations, consumers, relay,
    background steps), with a client for its API (``client_of``); both stopped at the end."""
    from careloop_shared.runtime import running

    async with running(app.state.runtime) as runtime, client_of(app, base_url, **options) as client:
        yield client, runtime


def bearer(agency: str, role: str = "care-manager", subject: str = "dev-user") -> dict[str, str]:
    """The ``Authorization`` header of a development token: ``subject`` of ``agency``, acting as ``role``."""
    from careloop_shared.auth import issue_token
    from careloop_shared.settings import DEV_JWT_SECRET

    return {
        "Authorization": "Bearer " + issue_token(DEV_JWT_SECRET, agency=agency, role=role, subject=subject)
    }
