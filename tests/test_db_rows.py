"""Multi-row inserts against PostgreSQL: each row says whether it went in, values arrive intact, and
concurrent calls of a set-based store query share one statement inside a real transaction."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from careloop_shared import db
from careloop_shared.coalesce import SharedConnection

pytestmark = pytest.mark.integration

TABLE = """CREATE TABLE things (
    id uuid PRIMARY KEY, name text NOT NULL UNIQUE, at timestamptz, score double precision,
    detail jsonb, tags text[] DEFAULT '{}'
)"""


async def _connection(database_factory) -> asyncpg.Connection:
    conn = await asyncpg.connect(await database_factory("rows"))
    await db.init_connection(conn)
    await conn.execute(TABLE)
    return conn


def _row(name: str, **extra) -> dict:
    return {"id": uuid.uuid4(), "name": name, "at": datetime.now(UTC), "score": 1.5, **extra}


async def test_each_row_says_whether_it_went_in_and_values_arrive_intact(database_factory):
    conn = await _connection(database_factory)
    try:
        first = [_row("a", detail={"k": [1]}), _row("b", detail=None)]
        assert await db.insert_rows_returning(conn, "things", first, key="id", conflict="DO NOTHING") == [
            True,
            True,
        ]
        # "a" is taken; "c" is new; a second "c" in the same statement loses to the first.
        later = [_row("a", detail=None), _row("c", detail={}), _row("c", detail=None)]
        inserted = await db.insert_rows_returning(conn, "things", later, key="id", conflict="DO NOTHING")
        assert inserted == [False, True, False]
        stored = {r["name"]: r for r in await conn.fetch("SELECT * FROM things")}
        assert sorted(stored) == ["a", "b", "c"]
        assert stored["a"]["id"] == first[0]["id"] and stored["a"]["detail"] == {"k": [1]}
        assert abs(stored["a"]["at"] - first[0]["at"]) < timedelta(microseconds=1)
        assert stored["b"]["tags"] == []  # a column no row sets keeps its default
    finally:
        await conn.close()


async def test_rows_with_an_array_column_and_different_columns_go_in_too(database_factory):
    conn = await _connection(database_factory)
    try:
        rows = [_row("x", tags=["one", "two"]), {"id": uuid.uuid4(), "name": "y"}]
        assert await db.insert_rows_returning(conn, "things", rows, key="id") == [True, True]
        stored = {r["name"]: r for r in await conn.fetch("SELECT name, tags, score FROM things")}
        assert stored["x"]["tags"] == ["one", "two"] and stored["y"]["score"] is None
    finally:
        await conn.close()


async def test_concurrent_calls_share_one_statement_in_a_real_transaction(database_factory):
    conn = await _connection(database_factory)
    try:
        await db.insert_rows(conn, "things", [_row(n) for n in ("p", "q", "r")])
        statements: list[int] = []

        async def by_name(c, names: list[str]) -> list:
            statements.append(len(names))
            rows = await c.fetch("SELECT name, id FROM things WHERE name = ANY($1::text[])", names)
            return db.by_key(names, rows, "name")

        class Things(db.Store):
            async def named(self, name: str):
                return await self.one(by_name, name)

        async with conn.transaction():
            things = Things(SharedConnection(conn))
            found = await asyncio.gather(*(things.named(n) for n in ("p", "q", "nope", "r")))
        assert [f["name"] if f else None for f in found] == ["p", "q", None, "r"]
        assert statements == [4]
    finally:
        await conn.close()


class _Counting:
    """A connection that notes which of its methods were called."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn, self.calls = conn, []

    def __getattr__(self, name: str):
        self.calls.append(name)
        return getattr(self.conn, name)


async def test_many_rows_go_in_as_one_statement_in_the_order_given(database_factory):
    conn = await _connection(database_factory)
    try:
        await conn.execute("ALTER TABLE things ADD COLUMN position bigint GENERATED ALWAYS AS IDENTITY")
        names = [f"n{i:03}" for i in range(200)]
        rows = [_row(n, detail={"i": i}, tags=[n] if i % 2 else None) for i, n in enumerate(names)]
        for row in rows:
            if row["tags"] is None:
                del row["tags"]  # two sets of columns: with and without the array column
        counting = _Counting(conn)
        await db.insert_rows(counting, "things", rows, conflict="DO NOTHING")  # type: ignore[arg-type]
        assert [m for m in counting.calls if m != "fetch"] == ["execute", "execute"]  # fetch: column types
        stored = await conn.fetch("SELECT name, detail, tags FROM things ORDER BY position")
        # Each set of columns keeps its rows' order (positions are taken as the rows go in).
        assert [r["name"] for r in stored] == names[0::2] + names[1::2]
        assert all(r["detail"] == {"i": int(r["name"][1:])} for r in stored)
        assert all(r["tags"] == ([r["name"]] if int(r["name"][1:]) % 2 else []) for r in stored)
        # A taken name is skipped, a new one goes in.
        await db.insert_rows(conn, "things", [_row("n000"), _row("fresh")], conflict="(name) DO NOTHING")
        assert await conn.fetchval("SELECT count(*) FROM things") == 201
    finally:
        await conn.close()


async def test_an_upsert_given_one_key_twice_keeps_the_later_row(database_factory):
    """One statement cannot update a row twice (PostgreSQL refuses it); one row after the other, the
    later wins."""
    conn = await _connection(database_factory)
    try:
        first, later = _row("k", score=1.0), _row("k", score=2.0)
        counting = _Counting(conn)
        await db.insert_rows(
            counting,
            "things",
            [first, later],
            conflict="(name) DO UPDATE SET score = EXCLUDED.score",  # type: ignore[arg-type]
        )
        assert await conn.fetchval("SELECT score FROM things WHERE name = 'k'") == 2.0
        assert counting.calls == ["executemany"]
    finally:
        await conn.close()
