"""Side by side: per-patient order, one statement for keys asked together, one statement at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from careloop_shared.coalesce import SharedConnection, each_side_by_side, rounds, run_side_by_side
from careloop_shared.db import Store


class FakeConnection:
    """Records statements; fails if two overlap (asyncpg allows one operation at a time)."""

    def __init__(self) -> None:
        self.busy = False
        self.statements: list[tuple[str, Any]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        assert not self.busy, "two statements at once on one connection"
        self.busy = True
        try:
            await asyncio.sleep(0.001)
            self.statements.append((sql, args))
            return [k * 10 for k in args[0]] if args and isinstance(args[0], list) else []
        finally:
            self.busy = False

    async def execute(self, sql: str, *args: Any) -> str:
        await self.fetch(sql, *args)
        return "OK"


class Squares(Store):
    async def tenfold(self, key: int) -> int:
        result: int = await self.one(_tenfold, key)
        return result


async def _tenfold(db: Any, keys: list[int]) -> list[int]:
    result: list[int] = await db.fetch("tenfold", keys)
    return result


def test_rounds_hold_each_keys_events_in_order() -> None:
    events = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)]
    assert rounds(events, key=lambda e: e[0]) == [
        [("a", 1), ("b", 1), ("c", 1)],
        [("a", 2), ("b", 2)],
        [("a", 3)],
    ]


async def test_keys_asked_at_once_share_one_statement_and_each_gets_its_answer() -> None:
    conn = FakeConnection()
    shared = SharedConnection(conn)  # type: ignore[arg-type]
    store = Squares(shared)
    answers = await asyncio.gather(*(store.tenfold(k) for k in range(1, 6)))
    assert answers == [10, 20, 30, 40, 50]
    assert conn.statements == [("tenfold", ([1, 2, 3, 4, 5],))]


async def test_without_a_shared_connection_a_call_is_a_one_key_statement() -> None:
    conn = FakeConnection()
    assert await Squares(conn).tenfold(7) == 70  # type: ignore[arg-type]
    assert conn.statements == [("tenfold", ([7],))]


async def test_side_by_side_keeps_each_patients_order_and_coalesces_across_patients() -> None:
    conn = FakeConnection()
    shared = SharedConnection(conn)  # type: ignore[arg-type]
    store = Squares(shared)
    seen: list[tuple[str, int]] = []

    async def handle(event: tuple[str, int]) -> None:
        await store.tenfold(event[1])
        await shared.execute("direct", event[1])  # a statement of its own, never overlapping
        seen.append(event)

    events = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5)]
    await run_side_by_side(shared, handle, events, key=lambda e: e[0])
    assert [e for e in seen if e[0] == "a"] == [("a", 1), ("a", 3), ("a", 5)]
    assert sorted(seen) == sorted(events)
    coalesced = [args for sql, args in conn.statements if sql == "tenfold"]
    # Round one asks for three patients at once, round two for one, round three for one.
    assert coalesced == [([1, 2, 4],), ([3],), ([5],)]


async def test_a_failure_cancels_the_round_and_leaves_the_connection_idle() -> None:
    conn = FakeConnection()
    shared = SharedConnection(conn)  # type: ignore[arg-type]
    store = Squares(shared)

    async def handle(key: int) -> None:
        if key == 2:
            raise ValueError("bad event")
        await store.tenfold(key)
        await store.tenfold(key + 100)

    with pytest.raises(ValueError, match="bad event"):
        await run_side_by_side(shared, handle, [1, 2, 3], key=lambda k: k)
    assert not conn.busy
    statements = len(conn.statements)
    await asyncio.sleep(0.01)
    assert len(conn.statements) == statements  # nothing runs after the failure was raised


async def test_a_failing_statement_fails_every_call_it_answered() -> None:
    class Broken(FakeConnection):
        async def fetch(self, sql: str, *args: Any) -> list[Any]:
            raise RuntimeError("database says no")

    shared = SharedConnection(Broken())  # type: ignore[arg-type]
    store = Squares(shared)
    results = await asyncio.gather(store.tenfold(1), store.tenfold(2), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]


async def test_each_side_by_side_runs_in_order_over_a_store_without_a_shared_connection() -> None:
    class FakeStore:  # a unit test's in-memory store has no connection at all
        pass

    seen: list[int] = []

    async def handle(item: int) -> None:
        await asyncio.sleep(0.001 * (5 - item))
        seen.append(item)

    await each_side_by_side(FakeStore(), [1, 2, 3, 4], handle, key=lambda i: i)
    assert seen == [1, 2, 3, 4]


async def test_rows_kept_for_the_commit_go_in_through_the_writer_before_the_next_statement() -> None:
    conn = FakeConnection()
    written: list[Any] = []

    async def write(raw: Any, rows: Any) -> None:
        assert raw is conn
        written.append(rows)

    shared = SharedConnection(conn, write)  # type: ignore[arg-type]
    await Store(shared).insert_at_commit("notes", {"id": 1}, conflict="(id) DO NOTHING")
    assert shared.keeps_rows and written == [] and conn.statements == []
    await shared.execute("next", 2)
    assert written == [[("notes", {"id": 1}, "(id) DO NOTHING")]]
    assert conn.statements == [("next", (2,))]


async def test_a_shared_connection_without_a_writer_keeps_no_rows_a_store_inserts_at_once() -> None:
    conn = FakeConnection()
    shared = SharedConnection(conn)  # type: ignore[arg-type]
    assert not shared.keeps_rows
    with pytest.raises(ValueError, match="keeps no rows"):
        shared.at_commit("notes", {"id": 1})
    await Store(shared).insert_at_commit("notes", {"id": 1})
    assert conn.statements == [("INSERT INTO notes (id) VALUES ($1)", (1,))]
