"""The ceiling: a chain of three bare aiokafka + asyncpg hops, each its own OS process.

Hop i consumes ``<topic prefix>bench.raw.<run>.h<i>`` in its own consumer group (no auto-commit),
takes a batch with ``getmany``, inserts it with one ``executemany`` in one transaction into
``raw_events`` in its own database (``careloop_bench_raw<i>``), produces the batch to ``h<i+1>``
(idempotent producer, acks=all, waiting for delivery) and only then commits its offsets: the same
at-least-once shape as a careloop service, without anything else a service does. The stage warms the
chain up with a few events first, then times N from the first publish until hop 3 has inserted all.

    .venv/bin/python -m tests.perf.raw_chain hop --hop 1 --run abc --db-url ... (started by the bench)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer

from careloop_shared.kafka import ensure_topics
from careloop_shared.settings import with_tls
from tests.perf.bench_common import MARK, BenchConfig, assessed, fetchrow, poll
from tests.perf.bench_kafka import producer, publish

HOPS = 3
WARM_UP = 100  # events through the chain before the timed ones
REPO = Path(__file__).resolve().parents[2]
TABLE = """CREATE TABLE IF NOT EXISTS raw_events (
    id          uuid        PRIMARY KEY,
    run         text        NOT NULL,
    key         text        NOT NULL,
    payload     jsonb       NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
INSERT = (
    "INSERT INTO raw_events (id, run, key, payload) VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING"
)


def _ce_id(record: Any) -> uuid.UUID:
    value = next((v for k, v in record.headers if k == "ce_id"), None)
    return uuid.UUID(value.decode()) if value else uuid.uuid4()


async def hop(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(args.max_seconds, stop.set)  # never outlive a bench that died
    conn = await asyncpg.connect(args.db_url)
    consumer = AIOKafkaConsumer(
        args.in_topic,
        bootstrap_servers=args.bootstrap,
        group_id=f"{args.in_topic}.hop{args.hop}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    out = producer(args.bootstrap)
    await consumer.start()
    await out.start()
    try:
        while not consumer.assignment() and not stop.is_set():
            await consumer.getmany(timeout_ms=100)  # joins the group
        await out.partitions_for(args.out_topic)  # the output topic's metadata, before the first batch
        await conn.prepare(INSERT)
        print("ready", flush=True)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=args.max_records)
            records = [r for batch in batches.values() for r in batch]
            if not records:
                continue
            rows = [(_ce_id(r), args.run, r.key.decode(), r.value.decode()) for r in records]
            async with conn.transaction():
                await conn.executemany(INSERT, rows)
            futures = [
                await out.send(args.out_topic, r.value, key=r.key, headers=list(r.headers)) for r in records
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
    finally:
        await out.stop()
        await consumer.stop()
        await conn.close()


# --- the stage, run by the bench ----------------------------------------------------------------


def _db_url(cfg: BenchConfig, i: int) -> str:
    # Connected as the services are (TLS or not: CARELOOP_PG_SSLMODE), so the ceiling is like for like.
    url = f"{cfg.pg_url}/careloop_bench_raw{i}"
    return with_tls(url, os.environ.get("CARELOOP_PG_SSLMODE"), os.environ.get("CARELOOP_PG_SSLROOTCERT"))


async def _prepare_databases(cfg: BenchConfig) -> None:
    # As the services' role (it may create databases): a database it owns is one it may create tables in.
    admin = await asyncpg.connect(f"{cfg.pg_url}/postgres", timeout=10)
    try:
        for i in range(1, HOPS + 1):
            if not await admin.fetchval(
                MARK + "SELECT 1 FROM pg_database WHERE datname = $1", f"careloop_bench_raw{i}"
            ):
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await admin.execute(f'CREATE DATABASE "careloop_bench_raw{i}"')
    finally:
        await admin.close()
    for i in range(1, HOPS + 1):
        conn = await asyncpg.connect(_db_url(cfg, i), timeout=10)
        try:
            await conn.execute(MARK + TABLE)
        finally:
            await conn.close()


async def _start_hops(cfg: BenchConfig, topics: list[str], lifetime: float) -> list[Any]:
    procs = []
    for i in range(1, HOPS + 1):
        argv = ["-m", "tests.perf.raw_chain", "hop", "--hop", str(i), "--run", cfg.run]
        argv += ["--bootstrap", cfg.bootstrap, "--db-url", _db_url(cfg, i), "--max-seconds", str(lifetime)]
        argv += ["--in-topic", topics[i - 1], "--out-topic", topics[i]]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, *argv, cwd=REPO, stdout=asyncio.subprocess.PIPE
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(f"raw hop did not start (exit {proc.returncode})")
    except BaseException:
        await _stop_hops(procs)
        raise
    return procs


async def _stop_hops(procs: list[Any]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _cleanup(cfg: BenchConfig, topics: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    for i in range(1, HOPS + 1):
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(_db_url(cfg, i), timeout=10)
            try:
                await conn.execute(MARK + "DELETE FROM raw_events WHERE run = $1", cfg.run)
            finally:
                await conn.close()
    with contextlib.suppress(Exception):
        admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap, client_id="careloop-bench")
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()


async def run_raw(cfg: BenchConfig, metrics: Any) -> dict[str, Any]:
    n = cfg.events
    topics = [f"{cfg.prefix}bench.raw.{cfg.run}.h{i}" for i in range(1, HOPS + 2)]
    await _prepare_databases(cfg)
    await ensure_topics(cfg.bootstrap, topics, partitions=cfg.partitions)
    procs = await _start_hops(cfg, topics, lifetime=cfg.stage_timeout + 180)
    try:
        last = _db_url(cfg, HOPS)

        async def inserted() -> Any:
            return await fetchrow(
                last,
                MARK + "SELECT count(*) AS n, max(inserted_at) AS at FROM raw_events WHERE run = $1",
                cfg.run,
            )

        # Warm-up, untimed: every hop's first batch (connections, statements, metadata) behind it.
        warm = min(WARM_UP, n)
        await publish(
            cfg.bootstrap, topics[0], (assessed(uuid.uuid4(), cfg.agency("raw")) for _ in range(warm))
        )
        _, warmed = await poll(inserted, lambda r: r["n"] >= warm, 60, interval=0.1)
        if not warmed:
            raise RuntimeError("the raw chain did not pass its warm-up events")
        await metrics.begin(extra={f"raw-hop{i + 1}": [p.pid] for i, p in enumerate(procs)})
        # Built as they are sent, as in the chain stage: the publisher does the same work in both.
        started = await publish(
            cfg.bootstrap, topics[0], (assessed(uuid.uuid4(), cfg.agency("raw")) for _ in range(n))
        )
        published = time.time()
        row, done = await poll(inserted, lambda r: r["n"] >= warm + n, cfg.stage_timeout, interval=0.1)
        count = int(row["n"]) - warm if row else 0
        finished = row["at"].timestamp() if row and row["at"] else time.time()
        dbs = {f"raw{i}": f"careloop_bench_raw{i}" for i in range(1, HOPS + 1)}
        measured = await metrics.end(n, dbs)
    finally:
        await _stop_hops(procs)
        await _cleanup(cfg, topics)
    elapsed = finished - started
    return {
        "events": n,
        "warm_up_events": warm,
        "completed": count,
        "complete": done,
        "publish_s": round(published - started, 3),
        "elapsed_s": round(elapsed, 3),
        "throughput_per_s": round(count / elapsed, 1) if elapsed > 0 else None,
        "metrics": measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hop")
    h.add_argument("--hop", type=int, required=True)
    h.add_argument("--run", required=True)
    h.add_argument("--bootstrap", required=True)
    h.add_argument("--db-url", required=True)
    h.add_argument("--in-topic", required=True)
    h.add_argument("--out-topic", required=True)
    h.add_argument("--max-records", type=int, default=500)
    h.add_argument("--max-seconds", type=float, default=600)
    # The services' event loop (uvicorn runs them on uvloop): the ceiling is not lowered by a slower one.
    uvloop.run(hop(parser.parse_args()))


if __name__ == "__main__":
    main()
