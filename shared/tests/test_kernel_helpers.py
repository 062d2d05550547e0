"""The kernel's small helpers: refusals and their answers, SQL built from rows, rules files, periodic work."""

import asyncio
import contextlib
import gc
import itertools
import json
import uuid
import weakref

import asyncpg
import pytest

from careloop_shared.consumer import UNAVAILABLE_TYPES, EventConsumer, is_unavailable
from careloop_shared.db import _insert_sql
from careloop_shared.errors import Conflict, Forbidden, Invalid, NotFound
from careloop_shared.rules import InvalidRulesFile, Rule, RulesFile, load_rules
from careloop_shared.runtime import periodic, settle_heap
from careloop_shared.testing import app_of, client_of


def test_each_refusal_answers_with_its_status_and_a_body_that_quotes_no_input():
    assert (NotFound("patient not found").status_code, NotFound("patient not found").body()) == (
        404,
        {"detail": "patient not found"},
    )
    assert Forbidden("not yours").status_code == 403
    stale = Conflict("the plan is at version 3", current_version=3)
    assert stale.status_code == 409
    assert stale.body() == {"detail": "the plan is at version 3", "current_version": 3}
    invalid = Invalid.at(["body", "answers", "44250-9"], "invalid_answer", "must be between 0 and 3")
    assert invalid.status_code == 422
    [problem] = invalid.body()["detail"]
    assert problem == {
        "loc": ["body", "answers", "44250-9"],
        "type": "invalid_answer",
        "msg": "must be between 0 and 3",
    }
    assert str(invalid) == "body.answers.44250-9: must be between 0 and 3"


def test_an_insert_is_built_from_the_rows_keys_in_one_stable_order():
    assert _insert_sql("patients", ["agency_id", "id"], "", "") == (
        "INSERT INTO patients (agency_id, id) VALUES ($1, $2)"
    )
    assert _insert_sql("gaps", ["id"], "(id) DO NOTHING", "true") == (
        "INSERT INTO gaps (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING true"
    )


def test_names_that_are_not_plain_identifiers_never_reach_the_sql():
    with pytest.raises(ValueError, match="not a column or table name"):
        _insert_sql("patients", ["id; DROP TABLE patients"], "", "")


class _Band(Rule):
    min: int
    max: int


class _Rules(RulesFile):
    bands: list[_Band]


def test_a_rules_file_is_read_into_its_typed_model(tmp_path):
    path = tmp_path / "rules.v1.json"
    path.write_text(json.dumps({"version": "7", "bands": [{"min": 0, "max": 4}]}))
    rules = load_rules(_Rules, path)
    assert (rules.version, rules.bands[0].max) == ("7", 4)


def test_a_rules_file_that_does_not_fit_stops_the_service_saying_where(tmp_path):
    path = tmp_path / "rules.v1.json"
    path.write_text(json.dumps({"version": "7", "bands": [{"min": 0, "maximum": 4}]}))
    with pytest.raises(InvalidRulesFile) as failed:
        load_rules(_Rules, path)
    assert "bands.0.max" in str(failed.value) and "bands.0.maximum" in str(failed.value)


class _Connection:
    """A unit of work's connection: its plans old enough to be made again every ``every`` rounds."""

    def __init__(self, every: int = 0) -> None:
        self.every, self.asked, self.executed = every, 0, []

    def plans_due(self, every_s: float) -> bool:
        self.asked += 1
        return bool(self.every) and self.asked % self.every == 0

    async def execute(self, sql: str) -> None:
        self.executed.append(sql)


class _Uow:
    conn = _Connection()


class _Runtime:
    """What ``periodic`` needs of a runtime: the context and units of work."""

    context = "ctx"

    def __init__(self) -> None:
        self.committed = 0

    @contextlib.asynccontextmanager
    async def uow(self):
        yield _Uow()
        self.committed += 1


async def _run_until(loop, runtime: _Runtime, event: asyncio.Event) -> None:
    task = asyncio.create_task(loop(runtime))
    await asyncio.wait_for(event.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("workers", [1, 2])
async def test_periodic_work_repeats_at_once_while_there_is_more_and_survives_a_failed_round(workers):
    runtime, calls = _Runtime(), []
    answers = iter([True, True, False, RuntimeError("database restarting"), False])
    done = asyncio.Event()

    async def step(ctx, uow) -> bool:
        calls.append((ctx, type(uow).__name__))
        answer = next(answers, None)
        if answer is None:
            done.set()
            return False
        if isinstance(answer, Exception):
            raise answer
        return answer

    await _run_until(periodic(step, every_s=0.01, workers=workers), runtime, done)
    assert calls[:5] == [("ctx", "_Uow")] * 5
    # Three rounds in the first tick (more, more, done), the failed one rolled back, then one per tick;
    # with two workers the failure ends one worker's rounds, and the loop goes on.
    assert runtime.committed >= 4


async def test_periodic_workers_share_a_backlog_and_an_idle_tick_asks_once():
    runtime = _Runtime()
    backlog, running, most, ticks_idle = [5], [0], [0], []
    drained = asyncio.Event()

    async def step(ctx, uow) -> bool:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.01)  # a round's statements: another worker's round runs meanwhile
        running[0] -= 1
        if backlog[0] == 0:
            ticks_idle.append(running[0])
            if len(ticks_idle) >= 3:
                drained.set()
            return False
        backlog[0] -= 1
        return True

    await _run_until(periodic(step, every_s=0.01, workers=3), runtime, drained)
    assert backlog == [0]
    assert most[0] == 3  # the backlog was worked by three rounds at once
    # Once drained, one round a tick: nothing else ran beside the ones that found no more.
    assert ticks_idle[-1] == 0
    assert runtime.committed >= 5 + 3


async def test_a_periodic_tick_counts_from_when_its_round_began():
    """A round longer than the tick is followed by the next at once; a short one by the rest of the tick;
    a failed one by a whole tick, however long it took."""
    runtime, began, lasted = _Runtime(), [], [0.3, 0.3, 0.0, 0.0, -0.3]
    done = asyncio.Event()

    async def step(ctx, uow) -> bool:
        began.append(asyncio.get_running_loop().time())
        if len(began) > len(lasted):
            done.set()
            return False
        await asyncio.sleep(abs(lasted[len(began) - 1]))
        if lasted[len(began) - 1] < 0:
            raise RuntimeError("database restarting")
        return False  # never more: every round is followed by a tick's wait (or none)

    await _run_until(periodic(step, every_s=0.4, workers=1), runtime, done)
    gaps = [b - a for a, b in itertools.pairwise(began)]
    # 0.3 s rounds: the next began after 0.3 s, not 0.3 + 0.4 (bounds loose for a busy machine).
    assert all(0.29 <= gap < 0.6 for gap in gaps[:2]), gaps
    # Instant rounds: a tick apart.
    assert all(0.39 <= gap < 0.6 for gap in gaps[2:4]), gaps
    assert gaps[4] >= 0.69, gaps  # 0.3 s to fail, then the tick


def test_periodic_needs_a_worker():
    with pytest.raises(ValueError):
        periodic(lambda ctx, uow: None, every_s=1, workers=0)  # type: ignore[arg-type,return-value]


def test_the_relays_partitioner_picks_what_kafkas_default_partitioner_picks():
    import os

    from aiokafka.partitioner import DefaultPartitioner

    from careloop_shared.outbox import key_partition

    kafka_default = DefaultPartitioner()
    for n in range(5000):
        key = os.urandom(n % 61) if n % 2 else str(uuid.uuid4()).encode()
        partitions = list(range(1 + n % 12))
        assert key_partition(key, partitions, partitions) == kafka_default(key, partitions, partitions)
    assert key_partition(None, [0, 1, 2], [2]) == 2  # no key: an available partition


def test_a_setting_that_does_not_fit_is_named_without_its_value(monkeypatch):
    from pydantic import ValidationError

    from careloop_shared.settings import ServiceSettings

    monkeypatch.setenv("CARELOOP_TOPIC_PARTITIONS", "hunter2-secret")
    with pytest.raises(ValidationError) as refused:
        ServiceSettings()
    assert "CARELOOP_TOPIC_PARTITIONS" in str(refused.value) and "hunter2" not in str(refused.value)


async def test_a_starting_service_waits_for_a_server_that_is_down_then_gives_up_at_its_deadline():
    import time

    from careloop_shared.runtime import until_reachable

    calls = []

    async def comes_up_third_time() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("down")
        return "up"

    assert await until_reachable("x", comes_up_third_time, deadline=time.monotonic() + 10) == "up"
    assert len(calls) == 3

    async def never() -> None:
        raise ConnectionRefusedError("down")

    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await until_reachable("x", never, deadline=time.monotonic() + 1.2)
    assert time.monotonic() - started < 2.5

    async def broken() -> None:
        raise ValueError("not a connection problem")

    with pytest.raises(ValueError):  # at once: only an unreachable server is waited for
        await until_reachable("x", broken, deadline=time.monotonic() + 10)


async def test_a_database_socket_that_is_not_there_is_a_refused_connection_retried_not_a_bug(tmp_path):
    """The local server is reached through its Unix socket, which is gone while it restarts: a pool, the
    relay's connection and a tool's all see what a TCP port with no server gives, so consumers retry the
    batch (never dead-letter it) and a starting service waits."""
    from urllib.parse import quote

    from careloop_shared import db
    from careloop_shared.consumer import is_transient

    url = f"postgresql://careloop@{quote(str(tmp_path / 'no-server'), safe='')}:5432/careloop_intake"
    for connecting in (db.connect(url), db.connect_for(url), db.create_pool(url, min_size=1, max_size=1)):
        with pytest.raises(ConnectionRefusedError) as refused:
            await connecting
        assert is_transient(refused.value)
        assert isinstance(refused.value.__cause__, FileNotFoundError)


def test_a_url_naming_the_local_servers_socket_has_a_loopback_twin_for_tls_and_images():
    from careloop_shared.settings import over_loopback

    socket = "postgresql://careloop@%2Fvar%2Ftmp%2Fcareloop-pg%2Fsock:55432"
    assert over_loopback(socket + "/careloop_intake?sslmode=disable") == (
        "postgresql://careloop@127.0.0.1:55432/careloop_intake?sslmode=disable"
    )
    for tcp in ("postgresql://u@db:5432/x", "postgresql://u@127.0.0.1:55432", "postgresql://u@[::1]:5/x"):
        assert over_loopback(tcp) == tcp


@pytest.fixture
def collector_restored():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_a_started_service_keeps_the_garbage_collector_off_what_lives_as_long_as_it(collector_restored):
    older = gc.get_threshold()[1:]
    at_start = _Node()  # alive at start-up, as modules, rules and pools are

    settle_heap(12_345)

    assert gc.get_freeze_count() > 0 and not any(o is at_start for o in gc.get_objects())
    assert gc.get_threshold() == (12_345, *older)
    # What is made afterwards is collected as before: a cycle of garbage goes at a collection.
    later = _Node()
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None


def _raised(exc: BaseException, cause: BaseException) -> BaseException:
    """``exc`` as asyncpg raises it: while handling ``cause``."""
    try:
        try:
            raise cause
        except BaseException:
            raise exc  # noqa: B904 (the implicit context is what asyncpg leaves)
    except BaseException as raised:
        return raised


def test_a_server_that_is_down_or_dropped_the_connection_is_unavailable_and_a_misuse_is_not():
    down = [
        ConnectionRefusedError(),  # the socket or port of a stopped server
        OSError("connect failed"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        # A server in trouble rather than a request at fault: its disk full (a PANIC of a local run with
        # /tmp full, 2026-12-06), its memory or connections used up, its files unwritable, or every
        # session ended because another of its processes crashed.
        asyncpg.DiskFullError('could not extend file "base/16384/16385": No space left on device'),
        asyncpg.OutOfMemoryError("out of memory"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.PostgresIOError('could not write to file "pg_wal/xlogtemp.9905": No space left on device'),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        _raised(asyncpg.InterfaceError("connection is closed"), BrokenPipeError()),
        TimeoutError(),
        # A statement on a connection lost a moment before (seen in a chaos run's database restart), on its
        # own and under the rollback that then finds the connection closed.
        asyncpg.InternalClientError('cannot switch to state 15; protocol is in the "failed" state'),
        _raised(
            asyncpg.InterfaceError("connection is closed"),
            asyncpg.InternalClientError('cannot switch to state 15; protocol is in the "failed" state'),
        ),
        asyncpg.InternalClientError("not connected"),
        # The server's last answer on it never finished (an error it sent as it shut down): the likeliest
        # reading of another chaos run's 500, whose message the log withholds.
        _raised(
            asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the connection is closed"),
            asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        ),
        # A database restart under a unit of work (a chaos run's 500, 2026-12-05): asyncpg closed the lost
        # connection and detached it from the pool's proxy, so the statement was refused as if released,
        # and the rollback found the connection closed.
        _raised(
            asyncpg.InterfaceError(
                "cannot call Transaction.__aexit__(): the underlying connection is closed"
            ),
            asyncpg.InterfaceError(
                "cannot call Connection.fetch(): connection has been released back to the pool"
            ),
        ),
    ]
    for exc in down:
        assert is_unavailable(exc), exc
        assert isinstance(exc, UNAVAILABLE_TYPES), exc  # so an HTTP handler registered by class sees it
    defects = [
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        # Used after its own release, with the connection still open: a defect.
        asyncpg.InterfaceError(
            "cannot call Connection.fetch(): connection has been released back to the pool"
        ),
        asyncpg.InternalClientError("unexpected message"),
        _raised(asyncpg.InterfaceError("bad use"), ValueError()),
        FileNotFoundError(),
        PermissionError(),
        ValueError(),
    ]
    for exc in defects:
        assert not is_unavailable(exc), exc


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.DiskFullError('could not extend file "base/16384/16385": No space left on device'),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
    ],
)
async def test_a_request_meeting_a_server_out_of_disk_or_recovering_from_a_crash_is_told_503_not_500(exc):

    from fastapi import APIRouter

    from careloop_shared.auth import issue_token
    from careloop_shared.http import needs
    from careloop_shared.settings import DEV_JWT_SECRET

    router = APIRouter()

    @router.post("/write", openapi_extra=needs("patient:read"))
    async def write() -> None:
        raise exc

    app = app_of("test-server-trouble", [router])
    async with client_of(app, "http://t") as client:
        token = issue_token(DEV_JWT_SECRET, agency="agency-a", role="care-manager")
        answer = await client.post("/write", headers={"Authorization": f"Bearer {token}"})
    assert (answer.status_code, answer.headers.get("retry-after")) == (503, "2")
    assert "base/16384" not in answer.text and "crash" not in answer.text  # the server's words stay inside


@pytest.mark.integration
async def test_connections_plan_statements_as_the_setting_says(database_factory, monkeypatch):
    """PostgreSQL's own plan cache mode (``auto``) unless CARELOOP_PG_PLAN_CACHE_MODE says each statement
    is planned for its own parameters (tests/test_plans_as_tables_grow.py shows what ``auto`` does as tables
    grow)."""
    from pydantic import ValidationError

    from careloop_shared import db
    from careloop_shared.settings import ServiceSettings

    url = await database_factory("plan_mode")
    for mode in (None, "force_custom_plan"):
        chosen = {} if mode is None else {"plan_cache_mode": mode}
        pool = await db.create_pool(url, min_size=1, max_size=1, **chosen)
        relay = await db.connect(url, **chosen)
        try:
            async with pool.acquire() as pooled:
                seen = {await c.fetchval("SHOW plan_cache_mode") for c in (pooled, relay)}
        finally:
            await relay.close()
            await pool.close()
        assert seen == {mode or "auto"}

    assert ServiceSettings().pg_plan_cache_mode == "auto"
    monkeypatch.setenv("CARELOOP_PG_PLAN_CACHE_MODE", "force_custom_plan")
    assert ServiceSettings().pg_plan_cache_mode == "force_custom_plan"
    monkeypatch.setenv("CARELOOP_PG_PLAN_CACHE_MODE", "force_generic_plan")
    with pytest.raises(ValidationError, match="CARELOOP_PG_PLAN_CACHE_MODE"):
        ServiceSettings()


@pytest.mark.parametrize(
    "applied_in", ["record_entries", "record_entries.event_id; DROP TABLE inbox", ".event_id"]
)
def test_a_consumer_finds_applied_events_only_in_a_named_tables_column(applied_in):
    """``applied_in`` goes into the consumer's SQL: only "table.column", two plain names, is taken."""
    with pytest.raises(ValueError, match=r"\(table\.column\)"):
        EventConsumer(
            "c",
            None,  # type: ignore[arg-type]
            str,
            {},
            None,  # type: ignore[arg-type]
            context=None,
            store=lambda _: None,
            dead_letter_topic="dlq",
            applied_in=applied_in,
        )


async def test_a_periodic_round_has_its_connections_plans_made_again_once_they_are_old():
    """A step asks the same question of a growing table every tick: a generic plan made while the table
    held a few dozen rows would scan it (the scheduler's claims, tests/test_plans_as_tables_grow.py)."""
    runtime, conn, rounds = _Runtime(), _Connection(every=3), []
    _Uow.conn = conn
    done = asyncio.Event()

    async def step(ctx, uow) -> bool:
        rounds.append(len(uow.conn.executed))
        if len(rounds) == 7:
            done.set()
        return len(rounds) < 7  # more, at once: seven rounds without a tick between

    try:
        await _run_until(periodic(step, every_s=60), runtime, done)
    finally:
        _Uow.conn = _Connection()
    assert conn.asked >= 7 and conn.executed == ["DISCARD PLANS"] * (conn.asked // 3)
    assert rounds[:7] == [0, 0, 1, 1, 1, 2, 2]
