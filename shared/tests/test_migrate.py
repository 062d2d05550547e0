"""`python -m careloop_shared.migrate <service>`: what the chart's migration Job runs once per release."""

import os
import subprocess
import sys

import asyncpg
import pytest

from careloop_shared.migrate import migrations_for

pytestmark = pytest.mark.integration


def _migrate(service: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, f"{service.upper()}_DATABASE_URL": database_url, "CARELOOP_STARTUP_WAIT_S": "5"}
    return subprocess.run(
        [sys.executable, "-m", "careloop_shared.migrate", service],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def _applied(database_url: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    finally:
        await conn.close()


async def _record_schema(database_factory, name: str) -> asyncpg.Connection:  # type: ignore[no-untyped-def]
    """A connection to a new database holding record's schema, the kernel's tables with it."""
    url = await database_factory(name)
    done = _migrate("record", url)
    assert done.returncode == 0, done.stderr
    return await asyncpg.connect(url)


async def test_the_migrate_command_applies_a_service_schema_once(database_factory):
    url = await database_factory("migrate_record")
    first = _migrate("record", url)
    assert first.returncode == 0, first.stderr
    expected = {name for name, _ in migrations_for("record")}
    assert any(name.startswith("kernel/") for name in expected)
    assert await _applied(url) == expected

    again = _migrate("record", url)  # the next release, or a pod starting after the Job
    assert again.returncode == 0, again.stderr
    assert await _applied(url) == expected


async def test_autovacuum_collects_no_statistics_on_columns_no_statement_filters_on(database_factory):
    """The outbox's payload and headers and a record entry's body and hashes: what an ANALYZE spent most
    of its time on, for a planner that never uses them."""
    conn = await _record_schema(database_factory, "migrate_statistics")
    try:
        rows = await conn.fetch(
            "SELECT attrelid::regclass::text AS t, attname, attstattarget FROM pg_attribute"
            " WHERE attrelid IN ('outbox'::regclass, 'record_entries'::regclass) AND attnum > 0"
            " AND NOT attisdropped"
        )
        await conn.execute("INSERT INTO outbox (event_id, event_type, topic, key, headers, payload)"
                           " VALUES (gen_random_uuid(), 't', 't', 'k', '{}', '\\x00')")  # fmt: skip
        await conn.execute("ANALYZE outbox")
        stats = await conn.fetch("SELECT attname FROM pg_stats WHERE tablename = 'outbox'")
    finally:
        await conn.close()
    quiet = {(r["t"], r["attname"]) for r in rows if r["attstattarget"] == 0}
    assert quiet == {
        ("outbox", "payload"), ("outbox", "headers"),
        ("record_entries", "body"), ("record_entries", "prev_hash"), ("record_entries", "hash"),
    }  # fmt: skip
    kept = {r["attname"] for r in stats}
    assert "payload" not in kept and {"position", "event_type", "topic"} <= kept


async def test_autovacuum_analyzes_the_tables_read_only_by_key_when_they_have_doubled(database_factory):
    """The outbox, the inbox and the case record: each statement reads them by key, so a growing one is
    analyzed when it has doubled; tables whose plans follow their statistics keep the server's setting."""
    conn = await _record_schema(database_factory, "migrate_analyze")
    try:
        rows = await conn.fetch(
            "SELECT relname, reloptions FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
    finally:
        await conn.close()
    options = {r["relname"]: r["reloptions"] or [] for r in rows}
    doubled = {name for name, opts in options.items() if "autovacuum_analyze_scale_factor=1.0" in opts}
    assert doubled == {"outbox", "inbox", "record_entries"}
    tuned = {n for n, opts in options.items() if any(o.startswith("autovacuum_an") for o in opts)}
    assert tuned == doubled  # record_heads, outbox_pending and the rest keep the server's setting


async def test_the_workspace_gets_its_session_tables_without_the_kernel_tables(database_factory):
    url = await database_factory("migrate_workspace")
    done = _migrate("workspace", url)
    assert done.returncode == 0, done.stderr
    applied = await _applied(url)
    assert applied and all(name.startswith("workspace/") for name in applied)


def test_an_unknown_service_is_refused_with_the_usage():
    command = [sys.executable, "-m", "careloop_shared.migrate", "billing"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "usage: python -m careloop_shared.migrate" in done.stderr


async def test_a_database_restart_during_a_services_startup_is_waited_out_not_exited_on(database_factory):
    """The database going away after the pool opened (mid-migration, mid-startup step) is waited for
    like one down before it: the whole database phase is tried again, the steps being idempotent."""
    import time
    from pathlib import Path

    from careloop_shared.runtime import ServiceRuntime, ServiceSpec
    from careloop_shared.settings import ServiceSettings

    url = await database_factory("startup_restart")
    attempts: list[float] = []

    async def step(_ctx: object, uow: object) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:  # what a fast shutdown answers a connection in use
            raise asyncpg.AdminShutdownError("terminating connection due to administrator command")
        await uow.conn.execute("CREATE TABLE IF NOT EXISTS started (at float8)")  # type: ignore[attr-defined]

    spec = ServiceSpec(
        name="record",
        migrations=Path(__file__).parents[2] / "services" / "record" / "record" / "migrations",
        context=None,
        store=lambda _: None,
        startup=[step],
    )
    runtime = ServiceRuntime(spec, ServiceSettings(database_url=url, startup_wait_s=10))
    pool = await runtime.open_database(deadline=time.monotonic() + 10)
    try:
        assert len(attempts) == 2
        assert await pool.fetchval("SELECT count(*) FROM schema_migrations") == len(migrations_for("record"))
        assert await pool.fetchval("SELECT to_regclass('started') IS NOT NULL")
    finally:
        await pool.close()
