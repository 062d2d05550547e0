"""Commands that arrive together share a transaction; one that fails changes nothing for the others."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest

from careloop_shared.coalesce import SharedConnection
from careloop_shared.command_groups import CommandGroups
from careloop_shared.db import Store
from careloop_shared.metrics import REGISTRY

REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


class FakeConnection:
    """Records the statements sent; a set-based read answers each key with ten times it."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    async def fetch(self, sql: str, *args: Any) -> list[int]:
        await asyncio.sleep(0.001)
        self.statements.append((sql, args))
        return [k * 10 for k in args[0]]


async def _tenfold(db: Any, keys: list[int]) -> list[int]:
    result: list[int] = await db.fetch("tenfold", keys)
    return result


class Squares(Store):
    async def tenfold(self, key: int) -> int:
        result: int = await self.one(_tenfold, key)
        return result


class FakeUow:
    """One transaction: its store over a shared connection; what it wrote is kept only if it commits."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.conn = FakeConnection()
        self.shared = SharedConnection(self.conn)  # type: ignore[arg-type]
        self.store = Squares(self.shared)
        self.written: list[Any] = []
        self.flushed = False

    async def flush(self) -> None:
        self.flushed = True


class Transactions:
    """``open_uow`` for CommandGroups: numbers each transaction; committed ones keep what they wrote."""

    def __init__(self, fail_commit: bool = False) -> None:
        self.opened: list[FakeUow] = []
        self.committed: list[FakeUow] = []
        self.fail_commit = fail_commit
        self.fail_rollback = False

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[FakeUow]:
        uow = FakeUow(len(self.opened))
        self.opened.append(uow)
        try:
            yield uow
        except Exception:
            if self.fail_rollback:  # the connection is gone: ROLLBACK cannot be sent either
                raise ConnectionResetError("the connection was lost; no rollback") from None
            raise
        await asyncio.sleep(0.001)  # COMMIT's round trip
        if self.fail_commit:
            raise ConnectionResetError("the connection was lost at commit")
        self.committed.append(uow)


def write(value: Any, *, fail: bool = False, delay: float = 0.0) -> Any:
    """A command's operation: locks its key (a set-based read), writes, answers with its transaction."""

    async def operation(uow: FakeUow) -> tuple[Any, int, str]:
        tenfold = await uow.store.tenfold(value[1] if isinstance(value, tuple) else value)
        if delay:
            await asyncio.sleep(delay)
        if fail:
            raise LookupError(f"no such patient: {value}")
        uow.written.append(value)
        return tenfold, uow.number, REQUEST.get()

    return operation


def kept(transactions: Transactions) -> list[Any]:
    return [v for uow in transactions.committed for v in uow.written]


async def test_an_idle_service_runs_each_command_at_once_in_its_own_transaction() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=2)
    for value in (1, 2, 3):
        assert await groups.run("assess", value, write(value)) == (value * 10, value - 1, "none")
    assert [len(u.written) for u in tx.committed] == [1, 1, 1]


async def test_commands_arriving_while_the_slots_are_busy_share_the_next_transaction() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    first = asyncio.create_task(groups.run("assess", 0, write(0, delay=0.05)))
    await asyncio.sleep(0.01)  # the first holds the only slot
    rest = [asyncio.create_task(groups.run("assess", v, write(v))) for v in range(1, 9)]
    answers = await asyncio.gather(first, *rest)
    assert [a[0] for a in answers] == [v * 10 for v in range(9)]  # each its own answer
    assert [a[1] for a in answers] == [0] + [1] * 8  # the eight waiting shared transaction 1
    assert len(tx.opened) == 2 and sorted(kept(tx)) == list(range(9))
    group = tx.committed[1]
    # Their locks were one statement, their rows and events one flush.
    assert group.conn.statements == [("tenfold", ([1, 2, 3, 4, 5, 6, 7, 8],))] and group.flushed


async def test_one_patients_commands_in_a_group_run_one_after_another_in_the_order_they_came() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    first = asyncio.create_task(groups.run("assess", "p0", write(("p0", 0), delay=0.05)))
    await asyncio.sleep(0.01)
    values = [("p1", 1), ("p2", 2), ("p1", 3), ("p1", 4), ("p2", 5)]
    rest = [asyncio.create_task(groups.run("assess", v[0], write(v))) for v in values]
    await asyncio.gather(first, *rest)
    group = tx.committed[1]
    assert [v for v in group.written if v[0] == "p1"] == [("p1", 1), ("p1", 3), ("p1", 4)]
    assert [v for v in group.written if v[0] == "p2"] == [("p2", 2), ("p2", 5)]


async def test_a_failing_command_rolls_its_group_back_runs_again_alone_and_the_others_together() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1, service="test-rolled-back")
    first = asyncio.create_task(groups.run("assess", 0, write(0, delay=0.05)))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(groups.run("assess", v, write(v, fail=v == 3))) for v in range(1, 6)]
    answers = await asyncio.gather(first, *rest, return_exceptions=True)
    assert isinstance(answers[3], LookupError) and "3" in str(answers[3])  # its own refusal
    assert [a[0] for i, a in enumerate(answers) if i != 3] == [0, 10, 20, 40, 50]  # the others' answers
    group = tx.opened[1]
    assert group not in tx.committed  # the shared transaction rolled back...
    assert sorted(kept(tx)) == [0, 1, 2, 4, 5]
    # ...the failing command ran again alone (and failed again), the four others together in one
    assert [sorted(u.written) for u in tx.committed] == [[0], [1, 2, 4, 5]]
    assert len(tx.opened) == 4
    labels = {"service_name": "test-rolled-back"}
    assert REGISTRY.get_sample_value("careloop_command_group_rolled_back_total", labels) == 1
    # Transactions by their commands: 1 (the first), 5 (rolled back), 1 (the failing alone), 4.
    assert REGISTRY.get_sample_value("careloop_command_group_commands_count", labels) == 4
    assert REGISTRY.get_sample_value("careloop_command_group_commands_sum", labels) == 11


async def test_many_failing_commands_cost_a_few_runs_each_never_a_run_per_pair() -> None:
    """A group of failing commands (say, a client sending many refused requests) is tried together twice at
    most: the second time without the first failure, then each alone."""
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    runs: list[int] = []

    def refused(value: int) -> Any:
        async def operation(uow: FakeUow) -> Any:
            runs.append(value)
            return await write(value, fail=True)(uow)

        return operation

    first = asyncio.create_task(groups.run("assess", 0, write(0, delay=0.05)))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(groups.run("assess", v, refused(v))) for v in range(1, 41)]
    answers = await asyncio.gather(*rest, return_exceptions=True)
    await first
    assert all(isinstance(a, LookupError) for a in answers)  # each its own refusal
    assert len(runs) <= 3 * 40  # the group, the group less one, then each alone: not 40 * 41 / 2
    assert len(tx.opened) <= 1 + 2 + 40 + 1


async def test_when_a_groups_shared_write_fails_each_command_runs_again_alone() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    broken: list[FakeUow] = []

    async def failing_flush() -> None:
        raise ValueError("a kept row broke a constraint")

    def write_breaking(value: int) -> Any:
        async def operation(uow: FakeUow) -> Any:
            if uow.number == 1 and uow not in broken:  # the group's transaction: its flush fails
                broken.append(uow)
                uow.flush = failing_flush  # type: ignore[method-assign]
            return await write(value)(uow)

        return operation

    first = asyncio.create_task(groups.run("assess", 0, write(0, delay=0.05)))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(groups.run("assess", v, write_breaking(v))) for v in range(1, 4)]
    answers = await asyncio.gather(first, *rest)
    assert [a[0] for a in answers] == [0, 10, 20, 30]
    assert broken and broken[0] not in tx.committed
    assert sorted(u.written for u in tx.committed) == [[0], [1], [2], [3]]  # each in its own


async def test_a_group_whose_rollback_fails_runs_its_commands_again_as_after_a_rollback() -> None:
    """A lost connection fails a command and then the ROLLBACK: no COMMIT was sent, so nothing committed;
    each command gets its own answer from a run again, not the rollback's error."""
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    blocker = asyncio.Event()

    async def hold(uow: FakeUow) -> None:
        await blocker.wait()

    def lose_the_connection(value: int) -> Any:
        async def operation(uow: FakeUow) -> Any:
            if uow.number == 1:  # the group's transaction: its connection goes as this command runs
                tx.fail_rollback = True
                raise ConnectionResetError("the connection was lost")
            tx.fail_rollback = False
            return await write(value)(uow)

        return operation

    first = asyncio.create_task(groups.run("assess", 0, hold))
    await asyncio.sleep(0.01)
    rest = [
        asyncio.create_task(groups.run("assess", v, lose_the_connection(v) if v == 2 else write(v)))
        for v in range(1, 5)
    ]
    await asyncio.sleep(0.01)
    blocker.set()
    await first
    answers = await asyncio.gather(*rest)
    assert [a[0] for a in answers] == [10, 20, 30, 40]
    assert sorted(kept(tx)) == [1, 2, 3, 4]  # each once, none in the lost transaction
    assert 1 not in [u.number for u in tx.committed]


async def test_a_failed_commit_fails_every_command_of_the_group_and_none_runs_again() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    blocker = asyncio.Event()

    async def hold(uow: FakeUow) -> None:
        await blocker.wait()
        tx.fail_commit = True  # the transaction after this one loses its connection at commit

    first = asyncio.create_task(groups.run("assess", 0, hold))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(groups.run("assess", v, write(v))) for v in range(1, 4)]
    await asyncio.sleep(0.01)
    blocker.set()
    with pytest.raises(ConnectionResetError):
        await first
    for task in rest:
        with pytest.raises(ConnectionResetError):
            await task
    # Whether it committed is unknown: nothing is run twice behind the caller's back.
    assert len(tx.opened) == 2


async def test_commands_of_different_groups_never_share_a_transaction() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    first = asyncio.create_task(groups.run("agency-a", 0, write(0, delay=0.05)))
    await asyncio.sleep(0.01)
    a = [asyncio.create_task(groups.run("agency-a", v, write(v))) for v in (1, 2)]
    b = [asyncio.create_task(groups.run("agency-b", v, write(v))) for v in (3, 4)]
    await asyncio.gather(first, *a, *b)
    assert sorted(sorted(u.written) for u in tx.committed) == [[0], [1, 2], [3, 4]]


async def test_each_command_runs_in_its_own_requests_context() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)

    async def request(name: str, value: int, delay: float = 0.0) -> Any:
        REQUEST.set(name)
        return await groups.run("assess", value, write(value, delay=delay))

    first = asyncio.create_task(request("r0", 0, 0.05))
    await asyncio.sleep(0.01)
    answers = await asyncio.gather(first, *(request(f"r{v}", v) for v in range(1, 5)))
    assert [a[2] for a in answers] == ["r0", "r1", "r2", "r3", "r4"]
    assert [a[1] for a in answers] == [0, 1, 1, 1, 1]


async def test_a_command_whose_request_went_away_before_it_was_taken_never_runs() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1)
    first = asyncio.create_task(groups.run("assess", 0, write(0, delay=0.05)))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(groups.run("assess", 1, write(1)))
    stays = asyncio.create_task(groups.run("assess", 2, write(2)))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(first, stays)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert sorted(kept(tx)) == [0, 2]


async def test_a_group_takes_at_most_max_group_commands_and_the_rest_go_in_the_next() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1, max_group=3)
    first = asyncio.create_task(groups.run("assess", 0, write(0, delay=0.05)))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(groups.run("assess", v, write(v))) for v in range(1, 8)]
    await asyncio.gather(first, *rest)
    assert [sorted(u.written) for u in tx.committed] == [[0], [1, 2, 3], [4, 5, 6], [7]]


def _recording_lingers(monkeypatch: pytest.MonkeyPatch, linger: float) -> list[float]:
    """The linger's waits (asyncio.sleep of exactly ``linger`` in command_groups), recorded."""
    lingered: list[float] = []
    sleep = asyncio.sleep

    async def recorded_sleep(delay: float, *args: Any) -> Any:
        if delay == linger:
            lingered.append(delay)
        return await sleep(delay, *args)

    monkeypatch.setattr("careloop_shared.command_groups.asyncio.sleep", recorded_sleep)
    return lingered


async def test_while_commands_come_within_a_linger_of_each_other_a_group_waits_for_more(monkeypatch) -> None:
    """A command after a quiet spell starts at once; one that comes within the linger of the one before
    waits the linger before its group starts, though a slot is free, and those arriving meanwhile join."""
    lingered = _recording_lingers(monkeypatch, 0.2)
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=2, linger_s=0.2)
    assert (await groups.run("assess", 0, write(0)))[:2] == (0, 0)  # the first in a while: at once
    assert lingered == []
    second = asyncio.create_task(groups.run("assess", 1, write(1)))  # right after it: busy
    await asyncio.sleep(0.02)  # well within the linger, both slots free
    rest = [asyncio.create_task(groups.run("assess", v, write(v))) for v in (2, 3)]
    answers = await asyncio.gather(second, *rest)
    assert [a[:2] for a in answers] == [(10, 1), (20, 1), (30, 1)]  # one transaction, each its own answer
    assert lingered == [0.2] and len(tx.opened) == 2 and sorted(kept(tx)) == [0, 1, 2, 3]
    assert tx.committed[1].conn.statements == [("tenfold", ([1, 2, 3],))]


async def test_without_a_linger_the_same_arrivals_start_a_transaction_at_once() -> None:
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=2)
    first = asyncio.create_task(groups.run("assess", 0, write(0, delay=0.1)))
    await asyncio.sleep(0.02)
    rest = [asyncio.create_task(groups.run("assess", v, write(v))) for v in (1, 2)]
    await asyncio.gather(first, *rest)
    # The first ran alone, at once (and finished last); the two that came while it ran went together.
    assert [sorted(u.written) for u in tx.committed] == [[1, 2], [0]] and len(tx.opened) == 2


async def test_the_commands_left_over_a_full_group_do_not_linger_again(monkeypatch) -> None:
    lingered = _recording_lingers(monkeypatch, 0.05)
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1, max_group=3, linger_s=0.05)
    await groups.run("assess", 0, write(0))
    tasks = [asyncio.create_task(groups.run("assess", v, write(v))) for v in range(1, 8)]
    await asyncio.gather(*tasks)
    assert [sorted(u.written) for u in tx.committed] == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert lingered == [0.05]  # the first group's wait; the rest were already waiting


async def test_a_quiet_spell_longer_than_the_linger_means_no_wait(monkeypatch) -> None:
    lingered = _recording_lingers(monkeypatch, 0.05)
    tx = Transactions()
    groups = CommandGroups(tx.open, slots=1, linger_s=0.05)
    await groups.run("assess", 0, write(0))
    await asyncio.sleep(0.1)
    await groups.run("assess", 1, write(1))
    await groups.run("other", 2, write(2))  # another group's first command: nothing came before it
    assert lingered == [] and [u.written for u in tx.committed] == [[0], [1], [2]]


def test_slots_and_group_size_are_at_least_one_and_the_linger_not_negative() -> None:
    for slots, size in ((0, 1), (1, 0)):
        with pytest.raises(ValueError, match="at least 1"):
            CommandGroups(Transactions().open, slots=slots, max_group=size)
    with pytest.raises(ValueError, match="negative"):
        CommandGroups(Transactions().open, slots=1, linger_s=-0.001)
