"""Multi-row inserts against PostgreSQL: each row says whether it went in, values arrive intact, and
concurrent calls of a set-based store query share one statement inside a real transaction."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from careloop_shared import db
from careloop_shared.app import _on_row_type_changed
from careloop_shared.coalesce import SharedConnection
from careloop_shared.consumer import is_transient

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


def _detail(i: int) -> object:
    return [i, {"i": i}] if i % 3 == 0 else {"i": i}


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
        # A JSON value may be a list: it stays one value, not a dimension of the column's array.
        rows = [_row(n, detail=_detail(i), tags=[n] if i % 2 else None) for i, n in enumerate(names)]
        for row in rows:
            if row["tags"] is None:
                del row["tags"]  # two sets of columns: with and without the array column
        counting = _Counting(conn)
        await db.insert_rows(counting, "things", rows, conflict="DO NOTHING")  # type: ignore[arg-type]
        assert counting.calls == ["execute", "execute"]
        stored = await conn.fetch("SELECT name, detail, tags FROM things ORDER BY position")
        # Each set of columns keeps its rows' order (positions are taken as the rows go in).
        assert [r["name"] for r in stored] == names[0::2] + names[1::2]
        assert all(r["detail"] == _detail(int(r["name"][1:])) for r in stored)
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


async def test_an_upsert_of_distinct_keys_goes_as_one_statement(database_factory):
    conn = await _connection(database_factory)
    try:
        await db.insert_rows(conn, "things", [_row("u", score=1.0)])
        rows = [_row("u", score=5.0, tags=["t"]), _row("v", score=6.0, tags=[])]
        counting = _Counting(conn)
        conflict = "(name) DO UPDATE SET score = EXCLUDED.score, tags = EXCLUDED.tags"
        await db.insert_rows(counting, "things", rows, conflict=conflict, upsert_key="name")  # type: ignore[arg-type]
        assert [m for m in counting.calls if m != "fetch"] == ["execute"]
        stored = {r["name"]: (r["score"], r["tags"]) for r in await conn.fetch("SELECT * FROM things")}
        assert stored == {"u": (5.0, ["t"]), "v": (6.0, [])}
    finally:
        await conn.close()


async def test_rows_given_column_by_column_update_in_one_statement(database_factory):
    conn = await _connection(database_factory)
    try:
        await db.insert_rows(conn, "things", [_row(n, score=0.0) for n in ("a", "b", "c")])
        columns = {"name": "text", "score": "double precision", "detail": "jsonb"}
        update = (
            f"UPDATE things t SET score = r.score, detail = r.detail FROM {db.rows_from(columns)}"
            " WHERE t.name = r.name"
        )
        changes = [("a", 1.0, {"x": 1}), ("c", 3.0, None), ("absent", 9.0, {}), ("b", 0.0, [])]
        assert await conn.execute(update, *db.columns_of(changes, columns)) == "UPDATE 3"
        stored = {r["name"]: (r["score"], r["detail"]) for r in await conn.fetch("SELECT * FROM things")}
        assert stored == {"a": (1.0, {"x": 1}), "b": (0.0, []), "c": (3.0, None)}
        assert await conn.execute(update, *db.columns_of([], columns)) == "UPDATE 0"
        assert db.all_distinct(["a", "b"]) and not db.all_distinct(["a", "b", "a"])
    finally:
        await conn.close()


async def test_an_upsert_returning_says_per_row_and_a_key_given_twice_goes_row_by_row(database_factory):
    conn = await _connection(database_factory)
    try:
        await db.insert_rows(conn, "things", [_row("a", score=None)])
        conflict = "(name) DO UPDATE SET score = EXCLUDED.score WHERE things.score IS NULL"
        twice = [_row("a", score=1.0), _row("a", score=2.0), _row("b", score=3.0), _row("b", score=4.0)]
        went_in = await db.insert_rows_returning(conn, "things", twice, key="name", conflict=conflict)
        assert went_in == [True, False, True, False]  # the first of each name, one statement after the other
        counting = _Counting(conn)
        distinct = [_row("c", score=5.0), _row("a", score=6.0)]
        went_in = await db.insert_rows_returning(counting, "things", distinct, key="name", conflict=conflict)  # type: ignore[arg-type]
        assert went_in == [True, False]
        assert counting.calls in (["fetch"], ["fetch", "fetch"])  # one statement (and the column types once)
        stored = {r["name"]: r["score"] for r in await conn.fetch("SELECT name, score FROM things")}
        assert stored == {"a": 1.0, "b": 3.0, "c": 5.0}
    finally:
        await conn.close()


PLAIN = """CREATE TABLE plain (
    id uuid PRIMARY KEY, name text NOT NULL UNIQUE, at timestamptz, score double precision,
    tags text[] DEFAULT '{}', kept text DEFAULT 'default',
    position bigint GENERATED ALWAYS AS IDENTITY
)"""


def _doc(i: int) -> object:
    """JSON of every shape, SQL NULL among them."""
    shapes = [None, [i, "é", None], {"i": i, "nested": {"ok": True, "x": [1.5, {"deep": "ü"}]}}, "text", i]
    return shapes[i % len(shapes)]


class _Statements:
    """A connection that notes the SQL of each statement it runs."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn, self.sql = conn, []

    async def execute(self, sql: str, *args):
        self.sql.append(sql)
        return await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args):
        self.sql.append(sql)
        return await self.conn.fetch(sql, *args)

    async def executemany(self, sql: str, args):
        self.sql.append(sql)
        return await self.conn.executemany(sql, args)


async def test_a_table_takes_its_rows_as_one_array_of_its_row_type(database_factory):
    """Rows that set different columns, an array column among them, go in as one statement per set of
    columns, in order, with every value intact and the columns no row sets at their defaults; a JSON
    column's values too (jsonb travels in binary, so a row holding one is a row like any other)."""
    conn = await _connection(database_factory)
    try:
        await conn.execute(PLAIN)
        names = [f"n{i:03}" for i in range(200)]
        await conn.execute("ALTER TABLE plain ADD COLUMN doc jsonb")
        rows = [
            _row(n, tags=[n, "x"] if i % 2 else None, score=i / 2, doc=_doc(i)) for i, n in enumerate(names)
        ]
        for i, row in enumerate(rows):
            if i % 2 == 0:
                del row["tags"]
        statements = _Statements(conn)
        await db.insert_rows(statements, "plain", rows, conflict="DO NOTHING")  # type: ignore[arg-type]
        assert len(statements.sql) == 2 and all("unnest($1::plain[])" in s for s in statements.sql)
        stored = await conn.fetch("SELECT * FROM plain ORDER BY position")
        assert [r["name"] for r in stored] == names[0::2] + names[1::2]
        given = {r["name"]: r for r in rows}
        for r in stored:
            row = given[r["name"]]
            assert (r["id"], r["score"], r["kept"]) == (row["id"], row["score"], "default")
            assert abs(r["at"] - row["at"]) < timedelta(microseconds=1)
            assert r["tags"] == row.get("tags", [])
            assert r["doc"] == row["doc"]
        # Whether each went in: a taken name is skipped (ON CONFLICT), a new one goes in.
        again = [_row("n001"), _row("new", tags=[]), _row("n002")]
        went_in = await db.insert_rows_returning(conn, "plain", again, key="id", conflict="(name) DO NOTHING")
        assert went_in == [False, True, False]
        assert await conn.fetchval("SELECT tags FROM plain WHERE name = 'new'") == []
    finally:
        await conn.close()


async def test_a_table_changed_under_a_pool_fails_one_insert_as_one_to_try_again(database_factory):
    """asyncpg learns a table's row type once per connection. After a migration adds a column (a newer
    version's, while this one runs), the next insert fails, writes nothing and says to try again; the
    pool has forgotten the old columns, so the next try goes through, the new column at its default."""
    url = await database_factory("rows")
    pool = await db.create_pool(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(PLAIN)
            async with conn.transaction():
                await db.insert_rows(SharedConnection(conn), "plain", [_row("a"), _row("b")])
            await conn.execute("ALTER TABLE plain ADD COLUMN added text NOT NULL DEFAULT 'new'")
            with pytest.raises(db.RowTypeChanged) as changed:
                async with conn.transaction():
                    await db.insert_rows(SharedConnection(conn), "plain", [_row("c"), _row("d")])
            assert is_transient(changed.value)  # a consumer has the batch redelivered, not dead-lettered
            answer = await _on_row_type_changed(None, changed.value)  # type: ignore[arg-type]
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
            assert await conn.fetchval("SELECT count(*) FROM plain") == 2
            async with conn.transaction():
                went_in = await db.insert_rows_returning(
                    SharedConnection(conn), "plain", [_row("c"), _row("d")], key="id"
                )
            assert went_in == [True, True]
            stored = {r["name"]: r["added"] for r in await conn.fetch("SELECT name, added FROM plain")}
            assert stored == {"a": "new", "b": "new", "c": "new", "d": "new"}
            # A JSON column comes: the same once, then the rows go in with their JSON values.
            await conn.execute("ALTER TABLE plain ADD COLUMN doc jsonb")
            with pytest.raises(db.RowTypeChanged):
                async with conn.transaction():
                    await db.insert_rows(SharedConnection(conn), "plain", [_row("e"), _row("f")])
            async with conn.transaction():
                rows = [_row("e", doc=None), _row("f", doc={"k": 1})]
                await db.insert_rows(SharedConnection(conn), "plain", rows)
            docs = {r["name"]: r["doc"] for r in await conn.fetch("SELECT name, doc FROM plain")}
            assert len(docs) == 6 and docs["f"] == {"k": 1} and docs["e"] is None
    finally:
        await pool.close()


async def test_rows_go_in_with_a_query_in_one_statement_the_query_not_seeing_them(database_factory):
    """``fetch_inserting``: the rows and the query in one round trip (the query plain or a WITH query),
    the query reading the table as it was; rows setting different columns, or none, go apart."""
    conn = await _connection(database_factory)
    try:
        await conn.execute(PLAIN)
        await db.insert_rows(conn, "things", [_row("seen")])
        statements = _Statements(conn)
        query = "SELECT name FROM things WHERE score > $1 ORDER BY name"
        found = await db.fetch_inserting(
            statements,  # type: ignore[arg-type]
            query,
            [1.0],
            "plain",
            [_row("a"), _row("b")],
            conflict="DO NOTHING",
        )
        assert [r["name"] for r in found] == ["seen"] and len(statements.sql) == 1
        assert "unnest($2::plain[])" in statements.sql[0]
        assert await conn.fetchval("SELECT array_agg(name ORDER BY position) FROM plain") == ["a", "b"]

        # Into the table the query reads: it sees the table without them; what follows sees them.
        with_query = (
            "WITH big AS (SELECT name FROM things WHERE score > $1) SELECT name FROM big ORDER BY name"
        )
        found = await db.fetch_inserting(
            statements,  # type: ignore[arg-type]
            with_query,
            [1.0],
            "things",
            [_row("new"), _row("seen")],
            conflict="(name) DO NOTHING",
        )
        assert [r["name"] for r in found] == ["seen"] and len(statements.sql) == 2
        assert await conn.fetchval("SELECT array_agg(name ORDER BY name) FROM things") == ["new", "seen"]

        # Rows setting different columns go before the query; no rows, the query alone.
        mixed = [_row("c"), {"id": uuid.uuid4(), "name": "d"}]
        found = await db.fetch_inserting(statements, query, [1.0], "plain", mixed)  # type: ignore[arg-type]
        assert [r["name"] for r in found] == ["new", "seen"] and len(statements.sql) == 5
        assert await db.fetch_inserting(statements, query, [9.0], "plain", []) == []  # type: ignore[arg-type]
        assert statements.sql[-1] == query
        assert await conn.fetchval("SELECT count(*) FROM plain") == 4
    finally:
        await conn.close()


async def test_rows_going_in_with_a_query_after_the_table_changed_say_to_try_again(database_factory):
    pool = await db.create_pool(await database_factory("rows"), min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(PLAIN)
            query = "SELECT count(*) AS n FROM plain"
            assert (await db.fetch_inserting(conn, query, [], "plain", [_row("a")]))[0]["n"] == 0
            await conn.execute("ALTER TABLE plain ADD COLUMN added text NOT NULL DEFAULT 'new'")
            with pytest.raises(db.RowTypeChanged):
                async with conn.transaction():
                    await db.fetch_inserting(conn, query, [], "plain", [_row("b")])
            assert (await db.fetch_inserting(conn, query, [], "plain", [_row("b")]))[0]["n"] == 1
            assert await conn.fetchval("SELECT array_agg(added) FROM plain") == ["new", "new"]
    finally:
        await pool.close()
