"""How long a busy topic's records wait when the consumer also reads a quiet topic and its batches are
slow: the stall behind ``careloop_shared.kafka.IDLE_FETCH_WAIT_MS``.

aiokafka leaves out of its next fetch a partition whose fetched records the consumer has not taken for
100 ms, and sends no second fetch to a broker while one is in flight. When only quiet partitions are
left to ask for, the broker holds that fetch for ``fetch_max_wait_ms``, and the busy partitions' new
records wait with it. Each run makes a busy and a quiet topic (6 partitions each), produces to the busy
one at a fixed rate and consumes both in one consumer whose batches take ``--work`` seconds, then prints
how long the records waited (produced to taken), for each fetch wait given, on the same broker:

    python -m tests.perf.fetch_stall --waits 500,100 --rate 300 --seconds 15 --work 0.15

Not a test (its figures are timings on a shared machine); the README's Performance section has runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def run(bootstrap: str, wait_ms: int, rate: float, seconds: float, work_s: float, batch: int) -> str:
    tag = uuid.uuid4().hex[:8]
    busy, quiet = f"fetch-stall-busy-{tag}", f"fetch-stall-quiet-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(busy, 6, 1), NewTopic(quiet, 6, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
        consumer = AIOKafkaConsumer(
            busy, quiet, bootstrap_servers=bootstrap, group_id=f"fetch-stall-{tag}", enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=wait_ms, fetch_min_bytes=1,
        )  # fmt: skip
        await producer.start()
        await consumer.start()
        try:
            waited = await _measure(producer, consumer, busy, rate, seconds, work_s, batch)
        finally:
            await consumer.stop()
            await producer.stop()
    finally:
        await admin.delete_topics([busy, quiet])
        await admin.close()
    waited.sort()
    n = len(waited)
    over = sum(1 for w in waited if w > 0.3)
    return (
        f"fetch wait {wait_ms:>4} ms: {n} records, waited p50 {1000 * waited[n // 2]:.0f} ms,"
        f" p99 {1000 * waited[int(n * 0.99)]:.0f} ms, max {1000 * waited[-1]:.0f} ms; over 300 ms: {over}"
    )


async def _measure(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str, rate: float, seconds: float,
    work_s: float, batch: int,
) -> list[float]:  # fmt: skip
    n = int(rate * seconds)
    waited: list[float] = []
    # The group's partitions assigned before the first record is produced.
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=100)
    if not consumer.assignment():
        raise RuntimeError("no partitions assigned within 30 s")

    async def produce() -> None:
        start = time.monotonic()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await producer.send(topic, str(time.time()).encode(), key=str(i).encode())
        await producer.flush()

    async def consume() -> None:
        deadline = time.monotonic() + seconds + 30
        while len(waited) < n and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=200, max_records=batch)
            now = time.time()
            waited.extend(now - float(r.value) for records in got.values() for r in records if r.value)
            if got:
                await asyncio.sleep(work_s)  # the batch's work, with the loop free as a service's is

    await asyncio.gather(produce(), consume())
    if len(waited) < n:
        raise RuntimeError(f"only {len(waited)} of {n} records consumed")
    return waited


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--waits", default="500,100", help="fetch_max_wait_ms values, one run each")
    parser.add_argument("--rate", type=float, default=300.0, help="records a second to the busy topic")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--work", type=float, default=0.15, help="seconds each consumed batch takes")
    parser.add_argument("--batch", type=int, default=100, help="records a poll takes at most")
    args = parser.parse_args()
    for wait in (int(w) for w in args.waits.split(",")):
        line = asyncio.run(run(args.bootstrap, wait, args.rate, args.seconds, args.work, args.batch))
        print(line, flush=True)


if __name__ == "__main__":
    main()
