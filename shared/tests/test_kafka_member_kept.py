"""A dynamic group member killed outright cannot leave its group: until its session expires, the partitions
it held are read by no one. ``MemberKept`` keeps its member id in a file, and the process after it makes
it leave (``evict_predecessor``) before joining, so it is assigned at once. Against the real broker: the
killed member is a process of its own, SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from careloop_shared.kafka import MemberKept, connection, ensure_topics, evict_predecessor
from careloop_shared.testing import unique_prefix, until

pytestmark = pytest.mark.integration

# Long, so that an assignment well within it can only come from the predecessor having left.
KILLED_SESSION_MS = 30_000

MEMBER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from aiokafka import AIOKafkaConsumer
    from careloop_shared.kafka import MemberKept, client_options
    from careloop_shared.settings import KafkaSettings

    async def main(bootstrap, topic, group, path, session_ms):
        options = client_options(KafkaSettings(kafka_bootstrap_servers=bootstrap))
        session_ms = int(session_ms)
        consumer = AIOKafkaConsumer(
            **options, group_id=group, session_timeout_ms=session_ms, rebalance_timeout_ms=session_ms
        )
        consumer.subscribe([topic], listener=MemberKept(Path(path), lambda: consumer))
        await consumer.start()
        while True:
            await consumer.getmany(timeout_ms=100)
            if Path(path).exists():
                print("kept", flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def _killed_member(bootstrap: str, topic: str, group: str, path: Path) -> str:
    """A member of ``group`` in a process of its own, SIGKILLed once it kept its member id; the id."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", MEMBER, bootstrap, topic, group, str(path), str(KILLED_SESSION_MS)),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        assert line.strip() == b"kept", line
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
    return await asyncio.to_thread(path.read_text)


async def test_the_process_after_a_killed_member_makes_it_leave_and_is_assigned_at_once(infra, tmp_path):
    topic, group = f"{unique_prefix()}member-kept", f"member-kept-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka, [topic], partitions=2)
    path = tmp_path / "member"
    killed = await _killed_member(infra.bootstrap_servers, topic, group, path)
    assert killed.startswith("aiokafka-")

    assert await evict_predecessor(infra.kafka, group, path) == "left"
    successor = AIOKafkaConsumer(**connection(infra.kafka), group_id=group, session_timeout_ms=10_000)
    successor.subscribe([topic], listener=MemberKept(path, lambda: successor))
    started = time.monotonic()
    await successor.start()
    try:
        while not successor.assignment():
            await successor.getmany(timeout_ms=100)
        # Without the eviction this took the killed member's whole session (30.5 s, start included).
        assert time.monotonic() - started < KILLED_SESSION_MS / 3000, "waited for the killed member"
        assert len(successor.assignment()) == 2
        await until(lambda: path.read_text() != killed, "the successor's member id kept")
    finally:
        await successor.stop()  # a dynamic member leaves as it stops
    # Its id is still kept; it left as it stopped, so there is no one to evict.
    assert await evict_predecessor(infra.kafka, group, path) == "gone"


async def test_nothing_kept_is_nothing_to_evict_and_an_unreachable_broker_is_not_an_error(infra, tmp_path):
    assert await evict_predecessor(infra.kafka, "any-group", tmp_path / "absent") == "none kept"
    (tmp_path / "empty").write_text("")
    assert await evict_predecessor(infra.kafka, "any-group", tmp_path / "empty") == "none kept"
    (tmp_path / "kept").write_text("aiokafka-0")
    outcome = await evict_predecessor("127.0.0.1:9", "any-group", tmp_path / "kept", timeout_s=2)
    assert outcome not in ("left", "gone")
