"""What a consumer commits after a batch: per partition the batch read, the offset after its last record;
partitions it did not read are left alone (their committed offsets stay as they were). Commits leave the
hop's path: one in flight at a time, no more than one an interval when given, later batches' offsets merged
into the next; a flush or a stopping service does not wait the interval out."""

import asyncio
import gc
import weakref
from types import SimpleNamespace

import structlog.testing
from aiokafka import TopicPartition
from aiokafka.errors import ConsumerStoppedError
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaAckableMessage

from careloop_shared.kafka import (
    FETCH_GATHER_BYTES,
    IDLE_FETCH_WAIT_MS,
    POLL_WAIT_MS,
    Committer,
    _records_as_read,
    _the_message_itself,
    batch_handler,
    next_offsets,
    subscribe,
    waiting_poll,
)


def _record(topic: str, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset)


def test_each_partition_read_commits_the_offset_after_its_last_record():
    batch = [_record("a", 0, 7), _record("b", 2, 40), _record("a", 0, 8), _record("a", 1, 3)]
    assert next_offsets(batch) == {
        TopicPartition("a", 0): 9,
        TopicPartition("a", 1): 4,
        TopicPartition("b", 2): 41,
    }


def test_records_out_of_order_within_a_partition_still_commit_past_the_highest():
    assert next_offsets([_record("a", 0, 12), _record("a", 0, 10)]) == {TopicPartition("a", 0): 13}


def test_an_empty_batch_commits_nothing():
    assert next_offsets([]) == {}


class _FakeConsumer:
    """Records each commit; a commit waits until ``release`` is set, as one in flight to the broker."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.times: list[float] = []  # when each commit began, on the loop's clock
        self.release = asyncio.Event()
        self.release.set()
        self._fail_first = fail_first

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.times.append(asyncio.get_running_loop().time())
        await self.release.wait()
        if self._fail_first:
            self._fail_first = False
            raise ConnectionError("coordinator not available")
        self.commits.append(dict(offsets))


A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


async def test_batches_processed_while_a_commit_is_in_flight_go_together_in_the_next():
    committer, consumer = Committer(), _FakeConsumer()
    consumer.release.clear()
    await committer.add(consumer, {A0: 5})  # returns at once
    await asyncio.sleep(0)  # its commit is in flight
    await committer.add(consumer, {A0: 9, A1: 2})
    await committer.add(consumer, {A0: 12})
    assert consumer.commits == []
    consumer.release.set()
    await committer.flush()
    assert consumer.commits == [{A0: 5}, {A0: 12, A1: 2}]


async def _until(condition, deadline_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, "not within the deadline"
        await asyncio.sleep(0.005)


async def test_with_an_interval_commits_begin_that_far_apart_and_batches_meanwhile_merge():
    interval = 0.2
    committer, consumer = Committer(interval), _FakeConsumer()
    await committer.add(consumer, {A0: 1})
    await _until(lambda: consumer.commits == [{A0: 1}])  # the first after a quiet spell: at once
    for offset in range(2, 12):
        await committer.add(consumer, {A0: offset, A1: offset * 10})
        await asyncio.sleep(0.005)
    await _until(lambda: len(consumer.commits) == 2)
    assert consumer.commits == [{A0: 1}, {A0: 11, A1: 110}]
    assert consumer.times[1] - consumer.times[0] >= interval
    # Nothing came meanwhile: the committer goes quiet, and the next batch's commit goes at once again.
    await asyncio.sleep(interval * 1.5)
    added = asyncio.get_running_loop().time()
    await committer.add(consumer, {A0: 12})
    await _until(lambda: len(consumer.commits) == 3)
    assert consumer.times[2] - added < interval and consumer.commits[2] == {A0: 12}


async def test_a_flush_and_a_stopping_service_do_not_wait_the_interval_out():
    committer, consumer = Committer(60.0), _FakeConsumer()
    await committer.add(consumer, {A0: 1})
    await _until(lambda: len(consumer.commits) == 1)
    await committer.add(consumer, {A0: 2})
    await asyncio.wait_for(committer.flush(), 5)
    assert consumer.commits == [{A0: 1}, {A0: 2}]
    committer.closing = True
    await asyncio.wait_for(committer.add(consumer, {A0: 3}), 5)
    assert consumer.commits == [{A0: 1}, {A0: 2}, {A0: 3}]


async def test_a_merged_commit_never_goes_back():
    committer, consumer = Committer(), _FakeConsumer()
    consumer.release.clear()
    await committer.add(consumer, {A0: 1})
    await asyncio.sleep(0)
    await committer.add(consumer, {A0: 30})
    await committer.add(consumer, {A0: 20})  # a rewound partition read again: never commit below 30
    consumer.release.set()
    await committer.flush()
    assert consumer.commits == [{A0: 1}, {A0: 30}]


async def test_a_failed_commit_is_reported_and_the_next_batch_commits_past_it():
    committer, consumer = Committer(), _FakeConsumer(fail_first=True)
    with structlog.testing.capture_logs() as logs:
        await committer.add(consumer, {A0: 4})
        await committer.flush()
    assert consumer.commits == []
    assert [e["event"] for e in logs] == ["offset commit failed; those records may be delivered again"]
    assert logs[0]["log_level"] == "warning" and "coordinator not available" in logs[0]["error"]
    await committer.add(consumer, {A0: 8})
    await committer.flush()
    assert consumer.commits == [{A0: 8}]


async def test_once_closing_a_batch_returns_only_when_its_offsets_are_committed():
    committer, consumer = Committer(), _FakeConsumer()
    committer.closing = True
    await committer.add(consumer, {A0: 3, A1: 7})
    assert consumer.commits == [{A0: 3, A1: 7}]


async def test_offsets_a_previous_consumer_processed_are_not_committed_by_the_next():
    committer, old, new = Committer(), _FakeConsumer(), _FakeConsumer()
    old.release.clear()
    await committer.add(old, {A0: 5})
    await asyncio.sleep(0)
    await committer.add(old, {A0: 6})  # pending behind the commit in flight
    await committer.add(new, {A1: 1})  # the subscriber started again with another consumer
    old.release.set()
    await committer.flush()
    assert old.commits == [{A0: 5}]
    assert new.commits == [{A1: 1}]


class _Processed:
    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int, int]]] = []

    async def process(self, records) -> None:
        self.batches.append([(r.topic, r.partition, r.offset) for r in records])


async def test_a_handled_batch_is_freed_at_once_not_left_to_the_cyclic_garbage_collector():
    records = tuple(
        ConsumerRecord("a", 0, offset, 0, 0, None, b"{}", None, 2, -1, [("ce_id", b"x")]) for offset in (4, 5)
    )
    msg = KafkaAckableMessage(records, body=b"", consumer=_FakeConsumer())
    msg.set_decoder(_the_message_itself)
    assert await msg.decode() is msg  # as FastStream decodes a batch before its handler: a cycle
    processed, committer = _Processed(), Committer()

    await batch_handler(processed, committer)(msg)
    await committer.flush()

    assert processed.batches == [[("a", 0, 4), ("a", 0, 5)]] and msg.consumer.commits == [{A0: 6}]
    batch, record = weakref.ref(msg), weakref.ref(records[0])
    gc.disable()  # what goes now goes by reference counting alone
    try:
        del msg, records
        assert batch() is None and record() is None
    finally:
        gc.enable()


class _SeekingConsumer:
    def __init__(self) -> None:
        self.seeks: dict[tuple[str, int], int] = {}

    def seek(self, *, partition: TopicPartition, offset: int) -> None:
        self.seeks[(partition.topic, partition.partition)] = offset


async def test_a_batch_reaches_the_consumer_as_read_and_a_failed_one_is_rewound_where_it_began():
    """No header is decoded on the way (FastStream's parser decoded them all, and failed the whole batch
    on one that is not UTF-8): the consumer reads them, and dead-letters such a record alone."""

    def record(topic: str, partition: int, offset: int, headers: list) -> ConsumerRecord:
        return ConsumerRecord(topic, partition, offset, 0, 0, None, b"{}", None, 2, -1, headers)

    records = (
        record("a", 0, 4, [("ce_source", b"\xff\xfe")]),
        record("b", 1, 9, [("ce_id", b"x")]),
        record("a", 0, 5, []),
    )
    consumer = _SeekingConsumer()
    msg = await _records_as_read(lambda: consumer)(records, None)
    assert msg.raw_message is records and msg.consumer is consumer and msg.headers == {}
    assert msg.message_id == "4-5-0"
    await msg.nack()
    assert consumer.seeks == {("a", 0): 4, ("b", 1): 9}


def _subscribed(**options):
    """The subscriber ``subscribe`` builds on a broker never connected, with these options."""
    broker = KafkaBroker("127.0.0.1:9")
    service = SimpleNamespace(name="svc", topics=["careloop.t.v1"])
    subscribe(broker, service, "group", **options)  # type: ignore[arg-type]
    (subscriber,) = broker.subscribers
    return subscriber


def _subscribed_consumer_options(fetch_wait_ms: int) -> dict:
    """What the subscriber's consumer would be built with."""
    return dict(_subscribed(max_records=10, fetch_wait_ms=fetch_wait_ms)._connection_args)


def test_a_service_off_the_journeys_path_lets_the_broker_gather_its_fetches():
    """record waits up to its setting for about a batch's worth of bytes a fetch (fewer, fuller
    batches); a service on the journey's path leaves the fetch as aiokafka makes it, answered as soon as
    one record is there."""
    waiting = _subscribed_consumer_options(100)
    assert (waiting["fetch_max_wait_ms"], waiting["fetch_min_bytes"]) == (100, FETCH_GATHER_BYTES)
    at_once = _subscribed_consumer_options(0)
    assert at_once["fetch_min_bytes"] == 1
    # Held no longer than that when nothing comes: such a fetch can keep a busy partition waiting (kafka.py).
    assert at_once["fetch_max_wait_ms"] == IDLE_FETCH_WAIT_MS == 100


class _PollingConsumer:
    """Answers each ``getmany`` with the next of ``answers`` ({} for nothing), then says it stopped."""

    def __init__(self, answers: list[dict]) -> None:
        self.answers = answers
        self.asked: list[tuple[int, int]] = []
        self.asked_at: list[float] = []  # the event loop's time of each ask

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict:
        self.asked.append((timeout_ms, max_records))
        self.asked_at.append(asyncio.get_running_loop().time())
        if not self.answers:
            raise ConsumerStoppedError()
        return self.answers.pop(0)


async def test_a_quiet_subscriber_polls_again_at_once_and_hands_on_records_as_they_come():
    """FastStream's own poll slept its timeout again after finding nothing, so a record arriving then
    waited for the sleep (up to 10 ms a hop at low rates, and 50 polls a second for an idle service).
    careloop's subscriber polls through ``waiting_poll``: aiokafka answers as soon as records arrive,
    and after a poll that found nothing the next one starts at once."""
    subscriber = _subscribed(max_records=7)
    a, b, c = (_record("careloop.t.v1", 0, offset) for offset in range(3))
    consumer = _PollingConsumer([{}, {}, {A0: [a, b]}, {}, {A1: [c]}])
    handed: list[tuple] = []

    async def consume_one(batch: tuple) -> None:
        handed.append(batch)

    subscriber.consume_one = consume_one  # type: ignore[method-assign]
    subscriber.running = True
    await asyncio.wait_for(subscriber._run_consume_loop(consumer), 1)  # FastStream's loop, ending at the stop
    assert handed == [(a, b), (c,)]
    assert consumer.asked == [(POLL_WAIT_MS, 7)] * 6
    # No sleep after the empty polls (FastStream's slept 10 ms after each): from the first ask to the
    # last, only the loop's own steps. What FastStream does once the consumer says it stopped is not timed.
    assert consumer.asked_at[-1] - consumer.asked_at[0] < 0.05


async def test_a_poll_that_found_fewer_than_a_batch_lingers_and_takes_what_came_meanwhile():
    """A hop's transaction, relay cycle and offset commit are paid per batch: a poll that found fewer
    records than a batch's worth waits ``linger_ms`` and hands on those that came meanwhile with them, in
    the order each partition gave them. A full poll, or one that found nothing, waits for nothing."""
    a, b, c = (_record("careloop.t.v1", 0, offset) for offset in range(3))
    d = _record("careloop.t.v1", 1, 0)
    loop = asyncio.get_running_loop()

    consumer = _PollingConsumer([{A0: [a]}, {A0: [b, c], A1: [d]}])
    assert await waiting_poll(7, linger_ms=40)(consumer) == (a, b, c, d)
    assert consumer.asked_at[1] - consumer.asked_at[0] >= 0.035
    assert consumer.asked == [(POLL_WAIT_MS, 7), (0, 6)]  # the rest of the batch, without waiting again

    full = _PollingConsumer([{A0: [a, b]}])
    assert await waiting_poll(2, linger_ms=40)(full) == (a, b)
    assert full.asked == [(POLL_WAIT_MS, 2)]

    empty = _PollingConsumer([{}])
    started = loop.time()
    assert await waiting_poll(7, linger_ms=5000)(empty) == ()
    assert loop.time() - started < 1
    assert empty.asked == [(POLL_WAIT_MS, 7)]

    nothing_more = _PollingConsumer([{A0: [a]}, {}])
    assert await waiting_poll(7, linger_ms=10)(nothing_more) == (a,)


async def test_a_subscriber_polls_with_the_linger_it_was_given():
    a, b = (_record("careloop.t.v1", 0, offset) for offset in range(2))
    consumer = _PollingConsumer([{A0: [a]}, {A0: [b]}])
    assert await _subscribed(max_records=7, linger_ms=5).get_msg(consumer) == (a, b)
    assert consumer.asked == [(POLL_WAIT_MS, 7), (0, 6)]
