"""Kafka for the bench: publishing, offset snapshots, reading what was published between two of them,
and waiting for the platform to settle (every consumer group caught up, every outbox published)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from careloop_shared.events import Message
from careloop_shared.kafka import topic_partitions
from tests.perf.bench_common import MARK, SERVICES, BenchConfig, fetchval


def kafka_headers(message: Message) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in message.envelope.headers().items()]


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5)


async def publish(bootstrap: str, topic: str, messages: Iterable[Message]) -> float:
    """Publish and wait for every delivery; returns the wall time just before the first send."""
    p = producer(bootstrap)
    await p.start()
    try:
        started = time.time()
        futures = [
            await p.send(topic, m.event.body(), key=m.key.encode(), headers=kafka_headers(m))
            for m in messages
        ]
        await asyncio.gather(*futures)
        return started
    finally:
        await p.stop()


# --- Kafka reads bounded by offsets --------------------------------------------------------------

Offsets = dict[TopicPartition, int]


_OFFSET_READERS: dict[str, AIOKafkaConsumer] = {}


async def offset_reader(bootstrap: str) -> AIOKafkaConsumer:
    """One consumer for every offset look-up of the run: its first look at a topic costs a metadata
    round (seconds for a few dozen topics), later ones are immediate."""
    consumer = _OFFSET_READERS.get(bootstrap)
    if consumer is None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        _OFFSET_READERS[bootstrap] = consumer
    return consumer


async def close_offset_readers() -> None:
    while _OFFSET_READERS:
        await _OFFSET_READERS.popitem()[1].stop()


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> Offsets:
    tps = await topic_partitions(bootstrap, topics)
    return dict(await (await offset_reader(bootstrap)).end_offsets(tps)) if tps else {}


async def read_range(
    bootstrap: str, start: Offsets, end: Offsets, keys: set[bytes] | None, timeout: float
) -> tuple[list[Any], bool]:
    """The records between two offset snapshots whose key is in ``keys``; (records, read to the end)."""
    todo = {tp: off for tp, off in end.items() if off > start.get(tp, 0)}
    if not todo:
        return [], True
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: list[Any] = []
    try:
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, start.get(tp, 0))
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                out.extend(r for r in records if r.offset < end[tp] and (keys is None or r.key in keys))
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
        return out, not todo
    finally:
        await consumer.stop()


def span(start: Offsets, end: Offsets) -> int:
    """Records published between two offset snapshots."""
    return sum(max(0, off - start.get(tp, 0)) for tp, off in end.items())


def header(record: Any, name: str) -> str | None:
    return next((v.decode() for k, v in record.headers if k == name), None)


def ce_time(record: Any) -> float:
    value = header(record, "ce_time")
    return datetime.fromisoformat(value).timestamp() if value else float("nan")


# --- settling: every consumer group caught up, every outbox published ----------------------------


async def settled(cfg: BenchConfig, timeout: float) -> dict[str, Any]:
    """Poll until the platform has nothing left to do (consumer lag 0 and no unpublished outbox rows in
    any service database) or the deadline passes; returns what was last seen."""
    started = time.monotonic()
    groups = [f"{cfg.prefix}{s}" for s in SERVICES]
    last: dict[str, Any] = {"lag": None, "outbox": None}
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap, client_id="careloop-bench")
    consumer = await offset_reader(cfg.bootstrap)
    await admin.start()
    try:
        while True:
            try:
                committed = [
                    (tp, c.offset)
                    for g in groups
                    for tp, c in (await admin.list_consumer_group_offsets(g)).items()
                ]
                # One request for every partition: a consumer's first look at a topic costs a metadata round.
                end = await consumer.end_offsets(list({tp for tp, _ in committed})) if committed else {}
                lag = sum(max(0, end[tp] - max(0, offset)) for tp, offset in committed)
                outbox = 0
                for url in cfg.db_urls.values():
                    outbox += int(await fetchval(url, MARK + "SELECT count(*) FROM outbox_pending") or 0)
                last = {"lag": lag, "outbox": outbox}
                if lag == 0 and outbox == 0:
                    return {"settled": True, "waited_s": round(time.monotonic() - started, 2), **last}
            except Exception as exc:  # a broker or database restarting: poll again
                last["error"] = type(exc).__name__
            if time.monotonic() - started > timeout:
                return {"settled": False, "waited_s": round(time.monotonic() - started, 2), **last}
            await asyncio.sleep(0.25)
    finally:
        await admin.close()
