"""Side by side: one patient's events in order, different patients' at once, their queries coalesced.

A consumed batch holds many patients' events. Run one after another, a handler's few queries per
event become a few round trips per event; run side by side (one event per patient at a time, each in
its own task on the batch's one connection), the same handler code calls the same store methods at
about the same moment, and a store method written over a *list* of keys (``Store.one``) answers all of
them with one set-based statement. The handler and the domain stay as they are; only the store's
hot queries are written set-based.

Order: each patient's events run in their order (round ``i`` holds every patient's ``i``-th event),
so per-patient effects and emitted events keep the order they had; patients never wait on each
other's rows. A handler that reads or writes across patients must not be marked ``side_by_side``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from typing import Any, TypeVar

import asyncpg

V = TypeVar("V")
H = TypeVar("H", bound=Callable[..., Awaitable[None]])

# many(connection, keys) -> one result per key, in the keys' order: one set-based statement.
Many = Callable[[Any, list[Any]], Awaitable[Sequence[Any]]]
# Rows kept for the commit, a row each: (table, row, conflict clause).
KeptRows = list[tuple[str, dict[str, Any], str]]
# write(connection, rows) -> None: the kept rows in one statement (``careloop_shared.db.insert_with``).
WriteRows = Callable[[asyncpg.Connection, KeptRows], Awaitable[None]]


def side_by_side(handler: H) -> H:
    """Mark a per-event handler whose events for different patients may run at once."""
    handler.side_by_side = True  # type: ignore[attr-defined]
    return handler


def runs_side_by_side(handler: Any) -> bool:
    return bool(getattr(handler, "side_by_side", False))


def _one_at_a_time(method: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: SharedConnection, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            await self._write_kept()
            return await getattr(self.raw, method)(*args, **kwargs)

    call.__name__ = method
    return call


class SharedConnection:
    """One transaction's connection shared by concurrent handler tasks: one statement at a time, and
    calls of the same set-based query made at about the same moment answered by one statement."""

    def __init__(self, conn: asyncpg.Connection, write_kept: WriteRows | None = None) -> None:
        self.raw = conn
        self._write_rows = write_kept  # without it no row is kept for the commit (``keeps_rows``)
        self._lock = asyncio.Lock()
        self._pending: dict[Many, list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._scheduled = False
        self._at_commit: KeptRows = []

    # What a store calls on its connection, one statement at a time.
    execute = _one_at_a_time("execute")
    executemany = _one_at_a_time("executemany")
    fetch = _one_at_a_time("fetch")
    fetchrow = _one_at_a_time("fetchrow")
    fetchval = _one_at_a_time("fetchval")

    def transaction(self, **kwargs: Any) -> Any:
        return _Savepoint(self, kwargs)

    @property
    def keeps_rows(self) -> bool:
        """Whether a row may be kept for the commit (``at_commit``): only with a way to write it."""
        return self._write_rows is not None

    def at_commit(self, table: str, row: dict[str, Any], conflict: str = "") -> None:
        """Keep a row to insert with the unit of work's outbox, in its statement, or before this
        connection's next statement, whichever comes first (``Store.insert_at_commit``)."""
        if self._write_rows is None:
            raise ValueError(
                "this shared connection keeps no rows for the commit: it has no way to write them"
            )
        self._at_commit.append((table, row, conflict))

    def take_at_commit(self) -> KeptRows:
        taken, self._at_commit = self._at_commit, []
        return taken

    async def _write_kept(self) -> None:
        """The rows kept for the commit go in before any other statement: whatever follows sees them.
        Called holding the lock."""
        if self._at_commit and self._write_rows is not None:
            await self._write_rows(self.raw, self.take_at_commit())

    async def load(self, many: Many, key: Any) -> Any:
        """``many``'s answer for ``key``, asked together with every other key asked right now."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(many, []).append((key, future))
        if not self._scheduled:
            # After every task that is ready now has asked (they run before this callback).
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        async with self._lock:
            try:
                await self._write_kept()
            except BaseException as exc:  # every call waiting now fails with the rows before it
                _fail([call for calls in pending.values() for call in calls], exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for many, calls in pending.items():
                try:
                    results = await many(self.raw, [key for key, _ in calls])
                except BaseException as exc:
                    _fail(calls, exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(calls, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def drain(self) -> None:
        """Wait for a statement still running for tasks that were cancelled, before the transaction
        ends (asyncpg allows one operation at a time on a connection)."""
        while self._flushing is not None and not self._flushing.done():
            await asyncio.wait([self._flushing])
        for calls in self._pending.values():
            for _, future in calls:
                future.cancel()
        self._pending.clear()


def _fail(calls: Sequence[tuple[Any, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, future in calls:
        if not future.done():
            future.set_exception(exc)


class _Savepoint:
    """A savepoint on a shared connection: the rows kept for the commit before it go in before it
    begins; those kept within it go in before it is released, or are dropped with it."""

    def __init__(self, shared: SharedConnection, options: dict[str, Any]) -> None:
        self._shared = shared
        self._transaction = shared.raw.transaction(**options)

    async def __aenter__(self) -> Any:
        async with self._shared._lock:
            await self._shared._write_kept()
        return await self._transaction.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> Any:
        if exc_info[0] is None:
            async with self._shared._lock:
                await self._shared._write_kept()
        else:
            self._shared.take_at_commit()
        return await self._transaction.__aexit__(*exc_info)


def rounds(events: Sequence[V], key: Callable[[V], Hashable]) -> list[list[V]]:
    """Round ``i`` holds each key's ``i``-th event, in the order they came."""
    seen: dict[Hashable, int] = {}
    out: list[list[V]] = []
    for event in events:
        i = seen.get(key(event), 0)
        seen[key(event)] = i + 1
        if i == len(out):
            out.append([])
        out[i].append(event)
    return out


def handler_runs(
    events: Sequence[V], handler_of: Callable[[V], Any], streams_of: Callable[[V], tuple[Hashable, ...]]
) -> list[tuple[Any, list[V]]]:
    """The events as runs of one handler each, fewer than their consecutive runs where order allows.

    An event joins an earlier run of its handler only when no event it must follow is left behind:
    two events sharing a stream (their partition, their patient) keep the order they came in. A batch
    read from several topics comes partition after partition; one handler's events for different
    patients, split by another topic's partition between them, then go to it together (each run of a
    handler is a few set-based statements, whatever its length). Each run walks the events left, so a
    batch costs runs times events steps: a few runs a batch in practice, never more than groupby's."""
    runs: list[tuple[Any, list[V]]] = []
    left = list(events)
    while left:
        handler = handler_of(left[0])
        taken: list[V] = []
        rest: list[V] = []
        blocked: set[Hashable] = set()
        for event in left:
            streams = streams_of(event)
            if handler_of(event) is handler and blocked.isdisjoint(streams):
                taken.append(event)
            else:
                rest.append(event)
                blocked.update(streams)
        runs.append((handler, taken))
        left = rest
    return runs


async def run_side_by_side(
    shared: SharedConnection,
    handle: Callable[[V], Coroutine[Any, Any, None]],
    events: Sequence[V],
    key: Callable[[V], Hashable],
) -> None:
    """``handle`` every event: each key's in order, different keys' at once. The first failure cancels
    the round's other tasks and is raised once nothing runs on the connection any more."""
    try:
        for round_ in rounds(events, key):
            if len(round_) == 1:
                await handle(round_[0])
                continue
            async with asyncio.TaskGroup() as group:
                for event in round_:
                    group.create_task(handle(event))
    except BaseExceptionGroup as group_error:
        await shared.drain()
        # One cause is enough for the caller (the consumer retries event by event to find it).
        raise group_error.exceptions[0] from None
    except BaseException:
        await shared.drain()
        raise


async def each_side_by_side(
    store: object,
    items: Sequence[V],
    handle: Callable[[V], Coroutine[Any, Any, None]],
    key: Callable[[V], Hashable],
) -> None:
    """For a batch handler: ``handle`` each item, different keys' at once when ``store`` works over the
    consumer's shared connection; one after another otherwise (a command, a unit test's fake store)."""
    db = getattr(store, "db", None)
    if isinstance(db, SharedConnection):
        await run_side_by_side(db, handle, items, key)
        return
    for item in items:
        await handle(item)
