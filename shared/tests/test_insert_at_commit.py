"""Rows a store inserts at commit: in the statement that writes the outbox when nothing follows them,
before the next statement when one does, dropped with a savepoint that fails (real database)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from careloop_shared import db
from careloop_shared.db import Store
from careloop_shared.events import Event
from careloop_shared.outbox import unit_of_work
from careloop_shared.testing.batches import FRAME, statements_sent

pytestmark = pytest.mark.integration


class NoteKept(Event):  # not registered: no service consumes it
    type = "test.note_kept.v1"
    source = "test"


class Notes(Store):
    async def keep(self, note_id: uuid.UUID, text: str) -> None:
        await self.insert_at_commit("notes", {"id": note_id, "text": text}, conflict="(id) DO NOTHING")

    async def mark(self, note_id: uuid.UUID) -> None:
        await self.insert_at_commit("marks", {"note": note_id})

    async def text_of(self, note_id: uuid.UUID) -> str | None:
        text: str | None = await self.db.fetchval("SELECT text FROM notes WHERE id = $1", note_id)
        return text


@pytest.fixture
async def pool(database_factory):
    pool = await db.create_pool(await database_factory("at_commit"), min_size=1, max_size=1)
    await db.migrate(pool, db.kernel_migrations())
    await pool.execute("CREATE TABLE notes (id uuid PRIMARY KEY, text text NOT NULL CHECK (text <> ''))")
    await pool.execute(
        "CREATE TABLE marks (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note uuid)"
    )
    yield pool
    await pool.close()


async def _sent(pool: asyncpg.Pool, work: Any) -> list[str]:
    """The statements ``work(uow)`` sends in a unit of work, but BEGIN and COMMIT."""
    async with statements_sent(pool) as sent:
        async with unit_of_work(pool, lambda t: t, store=Notes) as uow:
            await work(uow)
    return [q for q in sent if q.strip() not in FRAME and not _learning(q)]


def _learning(query: str) -> bool:
    """asyncpg asking about a type the first time it sends one (an outbox row), with JIT set aside."""
    return "typeinfo_tree" in query or "'jit'" in query


def _emit(uow: Any, note_id: uuid.UUID) -> None:
    uow.emit(NoteKept(patient_id=note_id, agency_id="agency-a"))


async def _outbox(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox"))


async def test_rows_kept_at_commit_go_in_with_the_outbox_in_one_statement(pool):
    first, second = uuid.uuid4(), uuid.uuid4()

    async def work(uow: Any) -> None:
        await uow.store.keep(first, "one")
        await uow.store.keep(second, "two")
        _emit(uow, first)

    [statement] = await _sent(pool, work)
    assert statement.startswith("WITH w0 AS (INSERT INTO notes") and "INSERT INTO outbox" in statement
    assert await pool.fetchval("SELECT count(*) FROM notes WHERE id = ANY($1::uuid[])", [first, second]) == 2
    assert await _outbox(pool) == 1


async def test_many_kept_rows_go_in_with_one_insert_a_table_in_the_order_kept(pool):
    notes = [uuid.uuid4() for _ in range(6)]

    async def work(uow: Any) -> None:
        for i, note in enumerate(notes):  # as commands sharing a transaction keep theirs: interleaved
            await uow.store.keep(note, f"note {i}")
            await uow.store.mark(note)
            _emit(uow, note)

    [statement] = await _sent(pool, work)
    assert statement.count("INSERT INTO notes") == statement.count("INSERT INTO marks") == 1
    assert statement.count("INSERT INTO outbox") == 1
    texts = {r["id"]: r["text"] for r in await pool.fetch("SELECT id, text FROM notes")}
    assert [texts[n] for n in notes] == [f"note {i}" for i in range(6)]
    marked = [r["note"] for r in await pool.fetch("SELECT note FROM marks ORDER BY position")]
    assert marked == notes  # positions taken in the order the rows were kept
    assert await _outbox(pool) == 6


async def test_a_statement_after_a_kept_row_sees_it_and_nothing_is_written_twice(pool):
    note = uuid.uuid4()
    seen = []

    async def work(uow: Any) -> None:
        await uow.store.keep(note, "read back")
        seen.append(await uow.store.text_of(note))
        _emit(uow, note)

    sent = await _sent(pool, work)
    assert seen == ["read back"]
    assert [s.split(" ")[0] for s in sent] == ["INSERT", "SELECT", "INSERT"]  # the row, the read, the outbox
    assert await pool.fetchval("SELECT count(*) FROM notes") == 1


async def test_a_kept_row_with_nothing_emitted_is_still_written(pool):
    note = uuid.uuid4()
    assert len(await _sent(pool, lambda uow: uow.store.keep(note, "quiet"))) == 1
    assert await pool.fetchval("SELECT text FROM notes WHERE id = $1", note) == "quiet"
    assert await _outbox(pool) == 0


async def test_a_failed_savepoint_drops_the_rows_kept_within_it_and_keeps_those_before(pool):
    before, within = uuid.uuid4(), uuid.uuid4()

    async def work(uow: Any) -> None:
        await uow.store.keep(before, "before")
        with pytest.raises(RuntimeError):
            async with uow.store.db.transaction():
                await uow.store.keep(within, "within")
                raise RuntimeError("refused")
        _emit(uow, before)

    await _sent(pool, work)
    assert {r["id"] for r in await pool.fetch("SELECT id FROM notes")} == {before}


async def test_a_kept_row_that_breaks_a_constraint_fails_the_unit_of_work_and_writes_nothing(pool):
    async def work(uow: Any) -> None:
        await uow.store.keep(uuid.uuid4(), "")  # the check refuses an empty text
        _emit(uow, uuid.uuid4())

    with pytest.raises(asyncpg.CheckViolationError):
        await _sent(pool, work)
    assert await pool.fetchval("SELECT count(*) FROM notes") == 0
    assert await _outbox(pool) == 0


async def test_outside_a_unit_of_work_a_kept_row_goes_in_at_once(pool):
    note = uuid.uuid4()
    await Notes(pool).keep(note, "at once")
    assert await pool.fetchval("SELECT text FROM notes WHERE id = $1", note) == "at once"
