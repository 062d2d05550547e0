"""Kafka plumbing every service shares: topics, the FastStream broker and the batch subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.protocol.group import LeaveGroupRequest
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.message import KafkaAckableMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from careloop_shared.events import Record
from careloop_shared.logging import get_logger
from careloop_shared.settings import KafkaSettings

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36
# The topics are the case-management log: keep every event for as long as the cluster lives.
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}

# Where to find the cluster: ``client_options(settings)``, or a bare bootstrap list (plaintext, for tests).
Kafka = str | Mapping[str, Any]


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments every aiokafka client needs to reach the cluster: bootstrap servers,
    security protocol, a TLS context from the CA/cert/key files, SASL mechanism and credentials."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        ca = settings.kafka_ssl_ca_file
        # Verifies the brokers' certificates and host names (against the system's CAs without a CA file).
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if settings.kafka_ssl_cert_file and settings.kafka_ssl_key_file:
            context.load_cert_chain(settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file)
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def connection(kafka: Kafka) -> dict[str, Any]:
    """``kafka`` as client keyword arguments."""
    return {"bootstrap_servers": kafka} if isinstance(kafka, str) else dict(kafka)


def faststream_security(options: Mapping[str, Any]) -> BaseSecurity | None:
    """The same options the way FastStream's ``KafkaBroker`` takes them (it has no SASL keywords)."""
    protocol = options.get("security_protocol", "PLAINTEXT")
    context = options.get("ssl_context")
    if not protocol.startswith("SASL_"):
        return BaseSecurity(context, use_ssl=True) if protocol == "SSL" else None
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return sasl[options["sasl_mechanism"]](
        options["sasl_plain_username"],
        options["sasl_plain_password"],
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


class MissingTopics(RuntimeError):
    """Topics this service needs are not on the cluster and it may not create them."""

    retriable = True  # whoever owns them (Strimzi's topic operator) may create them in a moment

    def __init__(self, topics: list[str]) -> None:
        super().__init__(
            "topics missing on the Kafka cluster (CARELOOP_KAFKA_CREATE_TOPICS=false: create them first,"
            f" e.g. as KafkaTopic resources): {', '.join(topics)}"
        )
        self.topics = topics


async def ensure_topics(
    kafka: Kafka,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
    create: bool = True,
) -> list[str]:
    """Create the topics that do not exist yet (or, with ``create=False``, raise ``MissingTopics``
    naming them); return the ones created."""
    admin = AIOKafkaAdminClient(**connection(kafka), client_id="careloop-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if missing and not create:
            raise MissingTopics(missing)
        if missing:
            config = dict(TOPIC_CONFIG)
            if min_insync_replicas is not None:
                config["min.insync.replicas"] = str(min_insync_replicas)
            response = await admin.create_topics(
                [NewTopic(t, partitions, replication_factor, topic_configs=config) for t in missing]
            )
            for topic_error in getattr(response, "topic_errors", []):
                name, code = topic_error[0], topic_error[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"could not create topic {name}: error code {code}")
            log.info("topics created", topics=missing, replication_factor=replication_factor)
        # Another replica or service may have created some of them a moment ago: wait for all.
        await _wait_for_leaders(admin, sorted(set(topics)), replication_factor)
        return missing
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], replication_factor: int, timeout_s: float = 15.0
) -> None:
    """Until every partition of these topics has a leader: a consumer that starts earlier gets
    NotLeaderForPartition and may wait for a metadata refresh before it reads them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(topics)
        if all(
            d.get("error_code", 0) == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
            for d in described
        ):
            fewer = [d["topic"] for d in described if _replicas(d) < replication_factor]
            if fewer:  # made earlier, or by someone else: not changed here, but worth knowing
                log.warning(
                    "topics with fewer replicas than configured", topics=fewer, wanted=replication_factor
                )
            return
        if asyncio.get_running_loop().time() > deadline:
            log.warning("new topics still have partitions without a leader", topics=topics)
            return
        await asyncio.sleep(0.1)


def _replicas(described: dict[str, Any]) -> int:
    return min(len(p["replicas"]) for p in described["partitions"])


def new_broker(kafka: Kafka, client_id: str) -> KafkaBroker:
    # Idempotent producer (acks=all) for everything the broker publishes (dead letters).
    options = connection(kafka)
    servers = options["bootstrap_servers"]
    return KafkaBroker(
        # FastStream takes a string as one address; aiokafka's clients split "a:9092,b:9092" themselves.
        [s.strip() for s in servers.split(",") if s.strip()] if isinstance(servers, str) else servers,
        security=faststream_security(options),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        graceful_timeout=15.0,
        logger=logging.getLogger("careloop.faststream"),
        log_level=logging.DEBUG,  # per-message "Received"/"Processed" lines
    )


def _records_as_read(consumer_of: Callable[[], Any]) -> Callable[[Any, Any], Awaitable[Any]]:
    """A batch subscriber's parser: the batch as FastStream's message, its records as aiokafka read
    them, ``consumer_of()`` the consumer that read them (to rewind them, to commit them). FastStream's own
    parser decoded every header of every record, 2.5 µs a record, for nothing the consumer reads, and
    strictly: one header not UTF-8 failed the whole batch. The consumer reads each record's headers
    itself, and dead-letters one with a header that is not UTF-8 (``events.decode``)."""

    async def parse(records: Any, _faststreams: Any) -> Any:
        first, last = (records[0], records[-1]) if records else (None, None)
        return KafkaAckableMessage(
            raw_message=records,
            body=b"",
            message_id=f"{first.offset}-{last.offset}-{first.timestamp}" if first and last else None,
            consumer=consumer_of(),
        )

    return parse


class Processor(Protocol):
    """What a subscriber feeds its batches to (``consumer.EventConsumer``): named, reading its topics."""

    @property
    def name(self) -> str: ...

    @property
    def topics(self) -> list[str]: ...

    async def process(self, records: Sequence[Record]) -> None: ...


def next_offsets(records: Iterable[Any]) -> dict[TopicPartition, int]:
    """What to commit once ``records`` are processed: per partition, the offset after its last one."""
    after: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        after[tp] = max(after.get(tp, 0), r.offset + 1)
    return after


class Committer:
    """Commits what a subscriber's batches processed, off the hop's path: one commit in flight at a time,
    the next no sooner than ``interval_s`` after the last began, and the offsets of batches processed
    meanwhile merge into it. A commit that never lands (a crash, a rebalance, the broker away) only means
    those records are delivered again, and the inbox drops them. Once ``closing``, each batch's commit is
    awaited in the batch, so a stopping service leaves nothing it processed uncommitted."""

    def __init__(self, interval_s: float = 0.0) -> None:
        self.closing = False
        self._interval_s = interval_s
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # a flush: commit what is pending without waiting out the interval

    async def add(self, consumer: AIOKafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
        if consumer is not self._consumer:
            # Another consumer (the subscriber started again): what the old one processed comes again.
            self._consumer, self._pending = consumer, {}
        for tp, offset in offsets.items():
            if offset > self._pending.get(tp, -1):
                self._pending[tp] = offset
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="offset-commits")
        if self.closing:
            await self.flush()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending and self._consumer is not None:
            began = loop.time()
            consumer, offsets, self._pending = self._consumer, self._pending, {}
            try:
                await consumer.commit(offsets)
            except Exception as exc:
                log.warning("offset commit failed; those records may be delivered again", error=repr(exc))
            rest = began + self._interval_s - loop.time()
            if rest > 0 and not self.closing and not self._hurry.is_set():
                # The batches processed meanwhile go in the next commit: at most one an interval.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), rest)

    async def flush(self) -> None:
        """Until what was processed so far is committed (or its commit failed)."""
        self._hurry.set()
        try:
            while self._task is not None and not self._task.done():
                await asyncio.shield(self._task)
        finally:
            self._hurry.clear()


async def _the_message_itself(msg: Any) -> Any:
    """The batch's "body" is its message, records undecoded: the consumer decodes them and dead-letters
    what it cannot. A coroutine, and the handler asks for no ``Context``: FastStream runs a plain
    function (a decoder, a context field's getter) in a worker thread, two thread hand-offs per batch."""
    return msg


def batch_handler(consumer: Processor, committer: Committer) -> Callable[[Any], Awaitable[None]]:
    """What a subscriber runs for each batch FastStream hands it: the records to ``consumer``, then their
    offsets to ``committer``; a batch that fails is rewound to be delivered again."""

    async def on_batch(msg: Any) -> None:
        records = msg.raw_message
        try:
            await consumer.process(
                [Record(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers)) for r in records]
            )
        except BaseException:
            await msg.nack()  # each partition of the batch rewound to its first record: redelivered
            raise
        finally:
            # FastStream caches the decoded body on the message, and that body is the message itself
            # (_the_message_itself): a cycle that kept every batch, its records and their headers, until
            # the cyclic garbage collector found them (each of record's collections then walked about
            # 80,000 such objects). Cleared, a batch is freed as soon as FastStream lets go of it.
            msg.clear_cache()
        # Only the partitions this batch read. consumer.commit() with no offsets commits every assigned
        # partition (about 150 for record), encoded and written to __consumer_offsets on every batch.
        kafka_consumer: AIOKafkaConsumer = msg.consumer  # type: ignore[assignment]
        await committer.add(kafka_consumer, next_offsets(records))

    return on_batch


# What a waiting fetch gathers before the broker answers early: about a full batch (500 records of up to
# 2 KiB), so below a few hundred events a second the wait, not the size, ends a fetch (README, Performance).
FETCH_GATHER_BYTES = 1024 * 1024

# How long the broker may hold the fetch of a consumer that asked for no gathering (fetch_wait_ms 0): it
# answers as soon as one record is there, or after this. It also bounds a stall aiokafka can make. While a
# partition holds fetched records the consumer has not taken for 100 ms (a batch slower than that), the
# next fetch leaves that partition out and asks only for the others, and no second fetch to the same
# broker goes out until that one is answered. When the others are quiet (a service's topics of rare
# events beside its busy one), that fetch is held this long, and the busy partitions' new records with
# it: at aiokafka's 500 ms, half-second stalls in the open loop at 250 a second (README, Performance).
IDLE_FETCH_WAIT_MS = 100

# How long a subscriber's poll waits for records that are not there yet. aiokafka answers the poll as
# soon as any arrive, so this bounds only how long an idle consumer sleeps, never what a record waits.
POLL_WAIT_MS = 1000


def waiting_poll(
    max_records: int, linger_ms: int = 0
) -> Callable[[AIOKafkaConsumer], Coroutine[Any, Any, tuple[Any, ...]]]:
    """A batch subscriber's poll: records as soon as there are some, up to ``max_records``; with
    ``linger_ms``, a poll that found fewer waits that long and takes what came meanwhile.

    FastStream's own waits ``batch_timeout_ms`` for records and, when none came, sleeps that long again
    before the next poll; records arriving during the sleep wait for it. With 10 ms both ways, an idle
    service polled 50 times a second, and at low rates each hop could add up to 10 ms. The linger waits
    only once records have come: a hop's fixed costs (its transaction, relay cycle and offset commit)
    are then shared by the events of those milliseconds instead of paid by each (README, Performance)."""
    linger_s = linger_ms / 1000

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[Any, ...]:
        found = _in_order(await consumer.getmany(timeout_ms=POLL_WAIT_MS, max_records=max_records))
        if found and linger_s and len(found) < max_records:
            await asyncio.sleep(linger_s)
            found += _in_order(await consumer.getmany(timeout_ms=0, max_records=max_records - len(found)))
        return tuple(found)

    return get_msg


def _in_order(batches: Mapping[TopicPartition, list[Any]]) -> list[Any]:
    """What one ``getmany`` gave, partition after partition, each in its own order."""
    return [record for records in batches.values() for record in records]


def subscribe(
    broker: KafkaBroker,
    consumer: Processor,
    group_id: str,
    *,
    max_records: int,
    instance_id: str | None = None,
    member_file: Path | None = None,
    fetch_wait_ms: int = 0,
    linger_ms: int = 0,
    commit_interval_ms: int = 0,
) -> Committer:
    """Feed batches of raw records to ``consumer``; a batch's offsets are committed only after it
    returns (by the returned ``Committer``). With an ``instance_id`` the consumer is a static member of
    its group; a dynamic one keeps its member id in ``member_file``, where given, for the process after
    it (``MemberKept``). ``fetch_wait_ms``: how long the broker may hold a fetch to gather up to
    ``FETCH_GATHER_BYTES``; 0, it answers as soon as one record is there. ``linger_ms``: how long a poll
    that found fewer than ``max_records`` waits for more (``waiting_poll``). ``commit_interval_ms``: how
    long after a commit began the next may begin (``Committer``)."""
    committer = Committer(commit_interval_ms / 1000)
    on_batch = batch_handler(consumer, committer)

    def reading() -> Any:  # the subscriber's consumer: built as the subscriber starts, gone as it stops
        return getattr(subscriber, "consumer", None)

    kept = MemberKept(member_file, reading) if member_file is not None else None
    subscriber = broker.subscriber(
        # ensure_topics owns topic creation: a subscriber asking the broker again would be refused where
        # the topics belong to someone else (Strimzi's KafkaTopics; the chart's KafkaUsers have no Create).
        *(Topic(topic, declare=False) for topic in consumer.topics),
        group_id=group_id,
        group_instance_id=instance_id,
        listener=kept,
        auto_offset_reset="earliest",
        batch=True,
        max_records=max_records,
        # FastStream's own poll (replaced below by ``waiting_poll``) waited this long and slept it again.
        batch_timeout_ms=10,
        # Without a wait: answered as soon as one byte is there, an idle fetch every IDLE_FETCH_WAIT_MS.
        fetch_max_wait_ms=fetch_wait_ms or IDLE_FETCH_WAIT_MS,
        fetch_min_bytes=FETCH_GATHER_BYTES if fetch_wait_ms else 1,
        ack_policy=AckPolicy.MANUAL,  # on_batch commits what it processed and rewinds what failed
        decoder=_the_message_itself,
        parser=_records_as_read(reading),
        title=f"{consumer.name}:events",
    )
    # FastStream's consume loop asks its subscriber's ``get_msg`` for each batch: this one's, on this
    # subscriber only (shared/tests/test_kafka_commits.py holds FastStream to it).
    subscriber.get_msg = waiting_poll(max_records, linger_ms)  # type: ignore[method-assign,assignment]
    subscriber(on_batch)
    return committer


class MemberKept(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps a dynamic member's id in ``path`` after each assignment (when it changed), so the process
    started after this one is killed can make it leave its group at once (``evict_predecessor``): a
    killed member cannot leave, and its group would wait out the session timeout and a rebalance before
    its partitions are read again. aiokafka keeps the id on the consumer's coordinator (private)."""

    def __init__(self, path: Path, consumer: Callable[[], AIOKafkaConsumer | None]) -> None:
        self._path, self._consumer, self._kept = path, consumer, ""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        member = getattr(getattr(self._consumer(), "_coordinator", None), "member_id", "")
        if not member or member == self._kept:
            return
        try:
            await asyncio.to_thread(_write_atomically, self._path, member)
        except OSError as exc:  # the next process will wait out the session timeout, as without it
            log.warning("group member id not kept", path=str(self._path), error=type(exc).__name__)
            return
        self._kept = member


def _write_atomically(path: Path, text: str) -> None:
    scratch = path.with_name(path.name + ".new")
    scratch.write_text(text)
    os.replace(scratch, path)


async def evict_predecessor(kafka: Kafka, group_id: str, path: Path, timeout_s: float = 10.0) -> str:
    """Make the member whose id ``path`` keeps (this process's predecessor, ``MemberKept``) leave the
    group, so that this one is assigned partitions without waiting for the predecessor's session to
    expire. What happened: "left" (it was killed and still held its partitions), "gone" (it had left
    or expired), "none kept", or the error; best effort, never raises."""
    try:
        member = (await asyncio.to_thread(path.read_text)).strip()
    except FileNotFoundError:
        return "none kept"
    except OSError as exc:
        return type(exc).__name__
    if not member:
        return "none kept"
    client = AIOKafkaClient(**connection(kafka), client_id="careloop-member-leave")
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            while True:  # a broker just restarted loads its groups, or moved this one, for a moment
                try:
                    node = await client.coordinator_lookup(CoordinationType.GROUP, group_id)
                    response = await client.send(node, LeaveGroupRequest(group_id, member))
                    error = kafka_errors.for_code(response.error_code)
                except kafka_errors.KafkaError as exc:
                    if not exc.retriable:
                        raise
                    error = type(exc)
                if not error.retriable:
                    break
                await asyncio.sleep(0.2)
    except Exception as exc:  # the broker unreachable, a timeout: this process waits it out as before
        return type(exc).__name__
    finally:
        await client.close()
    if error is kafka_errors.NoError:
        return "left"
    if error is kafka_errors.UnknownMemberIdError:
        return "gone"
    return error.__name__


async def publish_dead_letter(
    broker: KafkaBroker, topic: str, value: bytes | None, headers: dict[str, str], key: bytes | None
) -> None:
    await broker.publish(value or b"", topic, key=key, headers=headers)


async def topic_partitions(kafka: Kafka, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of those of ``topics`` that exist, in order (asked of the broker, not of a
    client's metadata cache, which knows only the topics it was asked about)."""
    admin = AIOKafkaAdminClient(**connection(kafka), client_id="careloop-admin")
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


async def consumer_lag(kafka: Kafka, group_id: str, topics: Iterable[str]) -> int:
    """Records on these topics that the group has not committed yet (0 when it is caught up)."""
    partitions = await topic_partitions(kafka, topics)
    admin = AIOKafkaAdminClient(**connection(kafka), client_id="careloop-health")
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    if not partitions:
        return 0
    reader = AIOKafkaConsumer(**connection(kafka), group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        end = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
    return sum(max(0, end[tp] - max(0, committed[tp].offset if tp in committed else 0)) for tp in partitions)
