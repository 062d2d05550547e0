"""Time the event chain alone: PatientAssessed straight onto Kafka -> careplan -> referral -> followup.

    .venv/bin/python -m tests.perf.chain_load --events 5000

Needs the platform running (``make up``). Publishes the events as fast as an idempotent producer can,
then waits until followup has scheduled a cadence follow-up for every patient (read from its database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaProducer

from careloop_shared.contracts import PatientAssessed
from careloop_shared.db import connect_for
from careloop_shared.events import new_message
from careloop_shared.testing import phq2_positive


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--topic-prefix", default=os.environ.get("CARELOOP_TOPIC_PREFIX", ""))
    parser.add_argument(
        "--followup-db",
        default=os.environ.get(
            "FOLLOWUP_DATABASE_URL", "postgresql://careloop@127.0.0.1:55432/careloop_followup"
        ),
    )
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    topic = f"{args.topic_prefix}{PatientAssessed.type}"
    patients = [uuid.uuid4() for _ in range(args.events)]
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, enable_idempotence=True, acks="all", linger_ms=5
    )
    await producer.start()
    started = time.monotonic()
    futures = []
    for patient in patients:
        message = new_message(phq2_positive(patient, "agency-load", rules_version="load"))
        futures.append(
            await producer.send(
                topic,
                message.event.body(),
                key=message.key.encode(),
                headers=[(k, v.encode()) for k, v in message.envelope.headers().items()],
            )
        )
    await asyncio.gather(*futures)
    await producer.stop()
    published = time.monotonic()

    ids = [str(p) for p in patients]
    done = 0
    while done < len(ids) and time.monotonic() < started + args.timeout:
        try:  # a fresh connection each poll: the database may be restarted under the test
            conn = await connect_for(args.followup_db)  # every agency (row-level security)
            try:
                done = await conn.fetchval(
                    "SELECT count(*) FROM follow_ups"
                    " WHERE reason = 'plan-cadence' AND patient_id = ANY($1::uuid[])",
                    ids,
                )
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass
        await asyncio.sleep(0.2)
    finished = time.monotonic()
    print(f"published {len(ids)} PatientAssessed in {published - started:.2f}s")
    print(
        f"journeys completed: {done}; chain throughput {done / (finished - started):.0f} events/s;"
        f" all done {finished - started:.1f}s after the first publish"
    )


if __name__ == "__main__":
    asyncio.run(main())
