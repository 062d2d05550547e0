"""HTTP commands that arrive together share one transaction.

Alone, a command's transaction is mostly round trips: BEGIN, the patient's lock, the write with its
outbox, COMMIT. A handler marked ``shares_transactions`` has its commands go through ``CommandGroups``
(an Idempotency-Key is claimed and answered in the shared transaction: ``idempotency.at_most_once``): at
most ``slots`` transactions of such commands run at once, and the commands that arrived meanwhile, for
one handler and one agency (row-level security is set per connection), are carried out together in the
next: their handlers side by side on its shared connection (``careloop_shared.coalesce``; one patient's
commands one after another, in the order they came), the store's set-based reads (``Store.one``)
answered by one statement for all of them, their rows and events written by one. An idle service runs
each command at once, in a transaction of its own. With a ``linger``, a command that comes within the
linger of the one before it (for its handler and agency: they are arriving fast) has its group wait that
long before it starts, though a slot is free, so that those arriving meanwhile go in with it; a command
after a quiet spell starts at once.

A group commits only when every command in it succeeded. When one fails before the commit (a refusal,
a broken constraint, a lost connection), the transaction rolls back (or its ROLLBACK fails with the lost
connection: no COMMIT was sent, so nothing committed either way); the command that failed runs again
in a transaction of its own, as it would have without grouping, and the others together in another (when
their shared write failed, or they fail together again, each alone): what one request sends never
changes what another gets back.
When the commit itself fails, each command fails with it (whether it committed is unknown, as for a
command alone). Each handler runs in its request's context (its log fields, its trace).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from careloop_shared.coalesce import run_side_by_side
from careloop_shared.metrics import CommandGroupMetrics

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])
T = TypeVar("T")

# Commands taken into one transaction at most: a group's statements stay a few, whatever waited.
MAX_GROUP = 64


def shares_transactions(handler: H) -> H:
    """Mark a command handler whose commands for different patients may share one transaction: it
    locks what it changes through the store's set-based reads, and its writes go in with the outbox."""
    handler.shares_transactions = True  # type: ignore[attr-defined]
    return handler


def grouped(handler: Any) -> bool:
    return bool(getattr(handler, "shares_transactions", False))


@dataclass(eq=False)
class _Command:
    operation: Callable[[Any], Coroutine[Any, Any, Any]]  # operation(unit of work) -> its result
    patient: Hashable
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class _Rollback(Exception):
    """A grouped command failed before the commit: the group's transaction is rolled back."""


class CommandGroups:
    """Runs grouped commands, ``slots`` transactions at a time (``open_uow()`` opens one)."""

    def __init__(
        self,
        open_uow: Callable[[], Any],
        *,
        slots: int,
        max_group: int = MAX_GROUP,
        linger_s: float = 0.0,
        service: str = "careloop",
    ) -> None:
        if slots < 1 or max_group < 1:
            raise ValueError("slots and max_group must be at least 1")
        if linger_s < 0:
            raise ValueError("linger_s must not be negative")
        self._open_uow = open_uow
        self._linger_s = linger_s
        self._last_arrival: dict[Hashable, float] = {}
        self._metrics = CommandGroupMetrics(service)
        self._slots = asyncio.Semaphore(slots)
        self._max_group = max_group
        self._waiting: dict[Hashable, list[_Command]] = {}
        self._starters: set[asyncio.Task[None]] = set()

    async def run(
        self, group: Hashable, patient: Hashable, operation: Callable[[Any], Coroutine[Any, Any, T]]
    ) -> T:
        """``operation(unit of work)`` in a transaction it may share with others of ``group``."""
        command = _Command(operation, patient)
        waiting = self._waiting.setdefault(group, [])
        waiting.append(command)
        now = asyncio.get_running_loop().time()
        busy = now - self._last_arrival.get(group, -math.inf) < self._linger_s
        self._last_arrival[group] = now
        if len(waiting) == 1:  # the first to wait starts the group; the others join it
            self._start(group, linger=busy)
        try:
            return await asyncio.shield(command.future)
        except asyncio.CancelledError:
            # Not taken yet: it never runs. Taken: it runs on, as a command alone would have run to
            # its commit had its request gone away mid-statement.
            command.future.cancel()
            raise

    def _start(self, group: Hashable, *, linger: bool = False) -> None:
        starter = asyncio.create_task(self._next(group, linger))
        self._starters.add(starter)
        starter.add_done_callback(self._starters.discard)

    async def _next(self, group: Hashable, linger: bool) -> None:
        if linger:  # only ever asked for with a linger set (``run``'s ``busy``)
            await asyncio.sleep(self._linger_s)
        async with self._slots:
            waiting = [c for c in self._waiting.pop(group, []) if not c.future.done()]
            taken, rest = waiting[: self._max_group], waiting[self._max_group :]
            if rest:
                self._waiting[group] = rest
                self._start(group)
            if taken:
                await self._run(taken)

    async def _run(self, commands: list[_Command], *, regroup: bool = True) -> None:
        if len(commands) == 1:
            await self._alone(commands[0])
        else:
            await self._together(commands, regroup=regroup)

    async def _alone(self, command: _Command) -> None:
        self._metrics.commands.observe(1)

        async def run() -> Any:
            async with self._open_uow() as uow:
                return await command.operation(uow)

        await _settle(command, asyncio.create_task(run(), context=command.context))

    async def _together(self, commands: list[_Command], *, regroup: bool) -> None:
        self._metrics.commands.observe(len(commands))
        results: dict[_Command, Any] = {}
        failed: list[_Command] = []
        try:
            async with self._open_uow() as uow:
                try:

                    async def handle(command: _Command) -> None:
                        task: asyncio.Task[Any] = asyncio.create_task(
                            command.operation(uow), context=command.context
                        )
                        try:
                            results[command] = await task
                        except Exception:
                            failed.append(command)
                            raise

                    shared = uow.shared
                    assert shared is not None, "unit_of_work shares its connection"
                    await run_side_by_side(shared, handle, commands, key=lambda c: c.patient)
                    await uow.flush()  # here, so that a failing write rolls back
                except Exception as exc:
                    raise _Rollback from exc
        except _Rollback:
            await self._again(commands, failed, regroup=regroup)
            return
        except Exception as exc:
            if isinstance(exc.__context__, _Rollback):
                # The rollback itself failed (the connection was lost as a command failed): no COMMIT was
                # sent, so nothing committed; they run again as after a rollback, each to its own answer.
                await self._again(commands, failed, regroup=regroup)
                return
            # The commit failed: whether it committed is unknown.
            for command in commands:
                if not command.future.done():
                    command.future.set_exception(exc)
            return
        except BaseException:  # the service is stopping
            for command in commands:
                command.future.cancel()
            raise
        for command in commands:
            if not command.future.done():
                command.future.set_result(results[command])

    async def _again(self, commands: list[_Command], failed: list[_Command], *, regroup: bool) -> None:
        """A group rolled back: the command that failed runs again alone, the others together again."""
        self._metrics.rolled_back.inc()
        if failed and regroup:
            others = [c for c in commands if c is not failed[0]]
            await asyncio.gather(self._alone(failed[0]), self._run(others, regroup=False))
        else:  # their shared write failed, or they failed together twice: each alone (so that many
            # failing commands cost a few times their number of runs, never its square)
            await asyncio.gather(*(self._alone(c) for c in commands))

    async def close(self) -> None:
        """Let the groups already started finish (a stopping service answers what it has taken)."""
        while self._starters:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._starters)


async def _settle(command: _Command, task: asyncio.Task[Any]) -> None:
    try:
        result = await task
    except Exception as exc:
        if not command.future.done():
            command.future.set_exception(exc)
        return
    except BaseException:
        command.future.cancel()
        raise
    if not command.future.done():
        command.future.set_result(result)
