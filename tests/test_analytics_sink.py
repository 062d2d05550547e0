"""The analytics sink killed in the middle: started again, it has every event exactly once."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from careloop_cli.analytics import store
from careloop_cli.analytics.sink import run_sink
from careloop_shared.contracts import PatientRegistered
from careloop_shared.events import new_message
from careloop_shared.testing import eventually, phq2_positive, unique_prefix
from tests.analytics_caseload import publish

pytestmark = pytest.mark.integration

EVENTS = 3000


def synthetic(n: int) -> list:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n // 2):
        patient = uuid.uuid4()
        registered = PatientRegistered(
            patient_id=patient, agency_id="agency-a", preferred_language="en", registered_at=start
        )
        out += [
            new_message(registered),
            new_message(phq2_positive(patient, "agency-a"), time=start + timedelta(i)),
        ]
    return out


def sink_process(infra, db: str, prefix: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "careloop_cli.main",
            "sink",
            "--db",
            db,
            "--topic-prefix",
            prefix,
            "--bootstrap",
            infra.bootstrap_servers,
            *extra,
        ],
        env={**os.environ, "CARELOOP_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stored(db: str) -> int:
    if not os.path.exists(db):
        return 0
    try:
        with store.opened(db, read_only=True, wait_s=5) as con:
            row = con.execute("SELECT count(*) FROM events").fetchone()
    except duckdb.CatalogException:  # the sink has not made its tables yet
        return 0
    return int(row[0]) if row else 0


async def has_stored(db: str, at_least: int) -> bool:
    return await asyncio.to_thread(stored, db) >= at_least


async def test_a_sink_killed_in_the_middle_gives_every_event_once(infra, tmp_path):
    prefix, messages = unique_prefix(), synthetic(EVENTS)
    await publish(infra.kafka, prefix, messages)
    db = str(tmp_path / "analytics.duckdb")

    sink = sink_process(infra, db, prefix, "--batch", "10")  # 300 transactions
    try:
        await eventually(lambda: has_stored(db, 300), timeout=60, what="some rows stored")
        sink.send_signal(signal.SIGKILL)
    finally:
        sink.wait(timeout=30)
    before = stored(db)
    assert 0 < before < EVENTS, f"the sink was not killed in the middle ({before} of {EVENTS}): raise EVENTS"

    counts = await run_sink(infra.kafka, db, topic_prefix=prefix, until_caught_up=True)
    # It resumed at the offsets the file holds: read exactly what was missing, and nothing twice.
    assert (counts.read, counts.stored, counts.duplicates) == (EVENTS - before, EVENTS - before, 0)
    with store.opened(db, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (
            EVENTS,
            EVENTS,
        )
        assert {r[0] for r in con.execute("SELECT event_id FROM events").fetchall()} == {
            m.envelope.id for m in messages
        }
        assert sum(last + 1 for last in store.stored_offsets(con).values()) == EVENTS


async def test_a_running_sink_takes_new_events_and_stops_cleanly_on_sigterm(infra, tmp_path):
    prefix, messages = unique_prefix(), synthetic(40)
    await publish(infra.kafka, prefix, messages[:20])
    db = str(tmp_path / "analytics.duckdb")
    sink = sink_process(infra, db, prefix)
    try:
        await eventually(lambda: has_stored(db, 20), timeout=60, what="the first events stored")
        await publish(infra.kafka, prefix, messages[20:])
        await eventually(lambda: has_stored(db, 40), timeout=60, what="the new events stored")
        sink.send_signal(signal.SIGTERM)
        output, _ = sink.communicate(timeout=30)
    finally:
        if sink.poll() is None:
            sink.kill()
    assert sink.returncode == 0, output.decode()[-2000:]
    assert b"0 not careloop events" in output
    assert stored(db) == 40


async def test_a_running_sink_reads_topics_created_after_it_started(infra, tmp_path):
    prefix, messages = unique_prefix(), synthetic(10)
    db, stop = str(tmp_path / "analytics.duckdb"), asyncio.Event()
    sink = asyncio.create_task(run_sink(infra.kafka, db, topic_prefix=prefix, refresh_s=0.5, stop=stop))
    try:
        await eventually(lambda: asyncio.to_thread(os.path.exists, db), timeout=30, what="the file made")
        await publish(infra.kafka, prefix, messages)  # creates the topics now
        await eventually(lambda: has_stored(db, 10), timeout=60, what="the events of the new topics stored")
    finally:
        stop.set()
        counts = await asyncio.wait_for(sink, timeout=30)
    assert (counts.read, counts.stored, counts.duplicates) == (10, 10, 0)
