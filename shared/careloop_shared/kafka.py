"""Kafka plumbing every service shares: topics, the FastStream broker and the batch subscriber."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from careloop_shared.consumer import EventConsumer, Record
from careloop_shared.logging import get_logger

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36
# The topics are the case-management log: keep every event for as long as the cluster lives.
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], *, partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="careloop-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, partitions, replication_factor, topic_configs=TOPIC_CONFIG) for t in missing]
            )
            for topic_error in getattr(response, "topic_errors", []):
                name, code = topic_error[0], topic_error[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"could not create topic {name}: error code {code}")
            log.info("topics created", topics=missing)
        # Another replica or service may have created some of them a moment ago: wait for all.
        await _wait_for_leaders(admin, sorted(set(topics)))
        return missing
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 15.0) -> None:
    """Until every partition of these topics has a leader: a consumer that starts earlier gets
    NotLeaderForPartition and may wait for a metadata refresh before it reads them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(topics)
        if all(
            d.get("error_code", 0) == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
            for d in described
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            log.warning("new topics still have partitions without a leader", topics=topics)
            return
        await asyncio.sleep(0.1)


def new_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    # Idempotent producer (acks=all) for everything the broker publishes (dead letters).
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        graceful_timeout=15.0,
        logger=logging.getLogger("careloop.faststream"),
        log_level=logging.DEBUG,  # per-message "Received"/"Processed" lines
    )


async def _tolerant_parser(records: Any, original: Any) -> Any:
    """FastStream decodes headers strictly; a non-UTF-8 header must not wedge the partition."""
    try:
        return await original(records)
    except UnicodeDecodeError:
        return await original(tuple(_with_printable_headers(r) for r in records))


def _with_printable_headers(record: Any) -> Any:
    headers = [(k, v.decode(errors="replace").encode()) for k, v in record.headers]
    return dataclasses.replace(record, headers=headers)


def _raw(msg: Any) -> Any:
    """Leave decoding to the consumer, which dead-letters what it cannot decode."""
    return None


def subscribe(
    broker: KafkaBroker,
    consumer: EventConsumer,
    group_id: str,
    *,
    max_records: int,
    instance_id: str | None = None,
) -> None:
    """Feed batches of raw records to ``consumer``; offsets commit only after it returns. With an
    ``instance_id`` the consumer is a static member of its group."""

    async def on_batch(msg: KafkaMessage) -> None:
        await consumer.process(
            [Record(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers)) for r in msg.raw_message]
        )

    broker.subscriber(
        *consumer.topics,
        group_id=group_id,
        group_instance_id=instance_id,
        auto_offset_reset="earliest",
        batch=True,
        max_records=max_records,
        batch_timeout_ms=100,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw,
        parser=_tolerant_parser,
        title=f"{consumer.name}:events",
    )(on_batch)


async def publish_dead_letter(
    broker: KafkaBroker, topic: str, value: bytes | None, headers: dict[str, str], key: bytes | None
) -> None:
    await broker.publish(value or b"", topic, key=key, headers=headers)


async def topic_partitions(bootstrap_servers: str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of those of ``topics`` that exist, in order (asked of the broker, not of a
    client's metadata cache, which knows only the topics it was asked about)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="careloop-admin")
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d.get("error_code", 0) == 0
        for p in sorted(d["partitions"], key=lambda p: p["partition"])
    ]


async def consumer_lag(bootstrap_servers: str, group_id: str, topics: Iterable[str]) -> int:
    """Records on these topics that the group has not committed yet (0 when it is caught up)."""
    partitions = await topic_partitions(bootstrap_servers, topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="careloop-health")
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    if not partitions:
        return 0
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        end = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
    return sum(max(0, end[tp] - max(0, committed[tp].offset if tp in committed else 0)) for tp in partitions)
