"""Load the running platform (``make up``) with assessments and time the whole journey.

    .venv/bin/python -m tests.perf.journey_load --patients 1000 --concurrency 32

Registers patients and posts a positive PHQ-2 for each over HTTP, then waits until followup has
scheduled a cadence follow-up for every one of them (read from followup's database). Prints the HTTP
rate and the end-to-end rate and latency. Only loopback traffic; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import aiohttp

from careloop_shared.auth import issue_token
from careloop_shared.db import connect_for
from careloop_shared.settings import DEV_JWT_SECRET


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--intake", default="http://127.0.0.1:8001")
    parser.add_argument(
        "--followup-db",
        default=os.environ.get(
            "FOLLOWUP_DATABASE_URL", "postgresql://careloop@127.0.0.1:55432/careloop_followup"
        ),
    )
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    headers = {
        "Authorization": "Bearer " + issue_token(DEV_JWT_SECRET, agency="agency-load", role="care-manager")
    }
    run = uuid.uuid4().hex[:8]  # names unique to this run: a rerun registers new patients, not duplicates
    sent_at: dict[str, float] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.patients):
        queue.put_nowait(i)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            patient = {
                "given_name": f"Load{run}-{i}",
                "family_name": "Test",
                "birth_date": "1980-01-01",
                "phone": "+1 555 0100",
            }
            async with http.post("/v1/patients", headers=headers, json=patient) as r:
                r.raise_for_status()
                patient_id = (await r.json())["id"]
            # Latency runs from the assessment: that is what starts the journey.
            sent_at[patient_id] = time.monotonic()
            assessment = {"instrument": "phq-2", "answers": {"44250-9": 2, "44255-8": 2}}
            async with http.post(
                f"/v1/patients/{patient_id}/assessments", headers=headers, json=assessment
            ) as r:
                r.raise_for_status()

    started = time.monotonic()
    # aiohttp, not httpx: on this 2-core box httpx spent more CPU per request than intake itself.
    async with aiohttp.ClientSession(base_url=args.intake, timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(worker(http) for _ in range(args.concurrency)))
    http_done = time.monotonic()

    conn = await connect_for(args.followup_db)  # every agency (row-level security)
    seen_at: dict[str, float] = {}
    ids = list(sent_at)
    deadline = started + args.timeout
    while len(seen_at) < len(ids) and time.monotonic() < deadline:
        rows = await conn.fetch(
            "SELECT patient_id::text AS p FROM follow_ups WHERE reason = 'plan-cadence'"
            " AND patient_id = ANY($1::uuid[])",
            [p for p in ids if p not in seen_at],
        )
        now = time.monotonic()
        for row in rows:
            seen_at.setdefault(row["p"], now)
        await asyncio.sleep(0.05)
    await conn.close()
    finished = max(seen_at.values(), default=time.monotonic())
    latencies = sorted(seen_at[p] - sent_at[p] for p in seen_at)
    print(f"patients: {len(ids)}, journeys completed: {len(seen_at)}")
    print(f"HTTP (register + assess): {len(ids) / (http_done - started):.0f} patients/s")
    print(f"end to end: {len(seen_at) / (finished - started):.0f} assessments/s")
    if latencies:
        print(
            f"assessment -> follow-up scheduled: p50 {statistics.median(latencies) * 1000:.0f} ms,"
            f" p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms,"
            f" max {latencies[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
