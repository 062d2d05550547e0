"""Row-level security by agency: the kernel's mechanism, on the kernel's own tables, as the services'
role (no SUPERUSER, no BYPASSRLS)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from fastapi import FastAPI, Request

from careloop_shared import db
from careloop_shared.app import AccessLog
from careloop_shared.db import AGENCY, ALL_AGENCIES, NO_AGENCY, as_agency
from careloop_shared.testing import client_of

pytestmark = pytest.mark.integration

INSERT = "INSERT INTO idempotency_keys (scope, key, fingerprint) VALUES ($1, $2, '\\x00')"


@pytest.fixture
async def pool(database_factory):
    url = await database_factory("row_security")
    pool = await db.create_pool(url, min_size=1, max_size=2)
    await db.migrate(pool, db.kernel_migrations())
    with as_agency(ALL_AGENCIES):
        for agency in ("agency-a", "agency-b"):
            await pool.execute(INSERT, agency, f"key-{agency}")
    yield pool, url
    await pool.close()


async def test_the_services_role_is_held_by_row_security(pool):
    pool, _ = pool
    assert await db.bypasses_row_security(pool) is False
    tables = await pool.fetch(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE relname IN ('audit_log', 'idempotency_keys')"
    )
    assert {(r["relname"], r["relrowsecurity"], r["relforcerowsecurity"]) for r in tables} == {
        ("audit_log", True, True),
        ("idempotency_keys", True, True),
    }


async def test_a_query_without_an_agency_filter_sees_only_the_agencys_rows(pool):
    pool, url = pool
    unfiltered = "SELECT scope FROM idempotency_keys ORDER BY scope"
    with as_agency("agency-a"):
        assert [r["scope"] for r in await pool.fetch(unfiltered)] == ["agency-a"]
    with as_agency("agency-b"):  # the same pooled connections, switched at checkout
        assert [r["scope"] for r in await pool.fetch(unfiltered)] == ["agency-b"]
    with as_agency(ALL_AGENCIES):
        assert [r["scope"] for r in await pool.fetch(unfiltered)] == ["agency-a", "agency-b"]
    with as_agency(NO_AGENCY):
        assert await pool.fetch(unfiltered) == []
    # A connection that never said which agency it acts for (psql, a tool) sees nothing either.
    plain = await asyncpg.connect(url)
    try:
        assert await plain.fetch(unfiltered) == []
    finally:
        await plain.close()


async def test_acting_for_one_agency_cannot_write_anothers_rows(pool):
    pool, _ = pool
    with as_agency("agency-a"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await pool.execute(INSERT, "agency-b", "smuggled")
        # Another agency's row is not there to change.
        assert await pool.execute(
            "UPDATE idempotency_keys SET status_code = 200 WHERE scope = 'agency-b'"
        ) == ("UPDATE 0")


async def test_concurrent_tasks_each_see_their_own_agency(pool):
    pool, _ = pool

    async def scopes(agency: str) -> list[str]:
        with as_agency(agency):
            seen = []
            for _ in range(20):
                seen += [r["scope"] for r in await pool.fetch("SELECT scope FROM idempotency_keys")]
                await asyncio.sleep(0)
            return seen

    a, b = await asyncio.gather(scopes("agency-a"), scopes("agency-b"))
    assert set(a) == {"agency-a"} and set(b) == {"agency-b"}


async def test_a_request_acts_for_no_agency_until_its_caller_is_known_and_leaves_the_variable_as_it_was():
    app = FastAPI()
    seen: list[str] = []

    @app.get("/x")
    async def x(request: Request) -> dict[str, str]:
        seen.append(AGENCY.get())
        return {}

    wrapped = AccessLog(app, service="test-row-security")
    with as_agency("agency-a"):
        async with client_of(wrapped, "http://t") as c:
            assert (await c.get("/x")).status_code == 200
        assert AGENCY.get() == "agency-a"
    assert seen == [NO_AGENCY]
