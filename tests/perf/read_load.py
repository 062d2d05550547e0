"""Load intake's most common PHI read, ``GET /v1/patients/{id}``, and report its rate and latency.

    .venv/bin/python -m tests.perf.read_load --patients 200 --seconds 15 --concurrency 32

Needs intake running (``make up``). Registers patients, then reads them round-robin for a fixed time;
every read is audited, so this measures what auditing costs a read. Only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
import uuid

import aiohttp

from careloop_shared.auth import issue_token
from careloop_shared.settings import DEV_JWT_SECRET


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--intake", default="http://127.0.0.1:8001")
    args = parser.parse_args()
    headers = {
        "Authorization": "Bearer "
        + issue_token(DEV_JWT_SECRET, agency="agency-load", role="care-manager", subject="load-reader")
    }
    run = uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession(base_url=args.intake) as http:
        ids = []
        for i in range(args.patients):
            body = {"given_name": f"Read{run}-{i}", "family_name": "Test", "birth_date": "1980-01-01"}
            body |= {"contact_preference": "do-not-contact"}
            async with http.post("/v1/patients", headers=headers, json=body) as r:
                r.raise_for_status()
                ids.append((await r.json())["id"])
        targets = itertools.cycle(ids)
        latencies: list[float] = []
        deadline = time.monotonic() + args.seconds

        async def reader() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with http.get(f"/v1/patients/{next(targets)}", headers=headers) as r:
                    r.raise_for_status()
                    await r.read()
                latencies.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(*(reader() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - began
    latencies.sort()
    print(
        f"reads: {len(latencies)} in {elapsed:.1f}s = {len(latencies) / elapsed:.0f}/s;"
        f" p50 {statistics.median(latencies) * 1000:.1f} ms,"
        f" p95 {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
