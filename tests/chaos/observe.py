"""What a chaos run watches once a second while the faults land: each consumer group's committed offset
on every partition against the partition's end (a partition stalls while it has work and its offset
does not move), how many case-record entries exist (work finished end to end), and each service's
memory. A sample that cannot be taken (the broker or the database is down) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from careloop_shared.db import connect_for
from careloop_shared.kafka import topic_partitions
from tests.chaos.fleet import Fleet


@dataclass
class Stall:
    since: float | None = None  # when the offset last moved while work waited
    last_offset: int = -1
    longest: float = 0.0
    longest_at: float = 0.0


@dataclass
class Watch:
    bootstrap: str
    groups: Mapping[str, Sequence[str]]  # group id -> the topics it consumes
    record_dsn: str
    fleet: Fleet
    stalls: dict[tuple[str, str, int], Stall] = field(default_factory=dict)
    appended: list[tuple[float, int]] = field(default_factory=list)  # (t, record entries)
    samples: int = 0
    skipped: int = 0
    _parts: list[TopicPartition] | None = None
    _reader: AIOKafkaConsumer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.fleet.supervise()
            self.fleet.sample_memory()
            try:
                await asyncio.wait_for(self._offsets(), 5)
                self.samples += 1
            except Exception:  # the broker restarting: this second is not sampled
                self.skipped += 1
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._appended(), 3)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader.stop()

    async def _appended(self) -> None:
        conn = await connect_for(self.record_dsn, timeout=2)  # every agency's entries
        try:
            self.appended.append(
                (self.fleet.now(), await conn.fetchval("SELECT count(*) FROM record_entries"))
            )
        finally:
            await conn.close()

    async def _offsets(self) -> None:
        if self._parts is None:
            self._parts = await topic_partitions(
                self.bootstrap, sorted({t for ts in self.groups.values() for t in ts})
            )
        parts = self._parts
        if self._reader is None:
            self._reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
            await self._reader.start()
        end = await self._reader.end_offsets(parts) if parts else {}
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=4000)
        await admin.start()
        try:
            committed = {group: await admin.list_consumer_group_offsets(group) for group in self.groups}
        finally:
            await admin.close()
        now = self.fleet.now()
        for group, topics in self.groups.items():
            for tp in (p for p in parts if p.topic in topics):
                meta = committed[group].get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else 0
                self._note(group, tp, offset, end.get(tp, 0), now)

    def _note(self, group: str, tp: TopicPartition, offset: int, end: int, now: float) -> None:
        stall = self.stalls.setdefault((group, tp.topic, tp.partition), Stall())
        if offset >= end or offset != stall.last_offset:
            stall.since = None if offset >= end else now
        elif stall.since is None:
            stall.since = now
        stall.last_offset = offset
        if stall.since is not None and now - stall.since > stall.longest:
            stall.longest, stall.longest_at = round(now - stall.since, 2), stall.since

    def longest_stall(self) -> dict[str, Any]:
        if not self.stalls:
            return {"seconds": 0.0}
        (group, topic, partition), stall = max(self.stalls.items(), key=lambda kv: kv[1].longest)
        return {"seconds": stall.longest, "group": group, "topic": topic, "partition": partition,
                "at": stall.longest_at}  # fmt: skip
