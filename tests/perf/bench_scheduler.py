"""Scheduler stage: K follow-ups falling due over a window; how late is each FollowUpDue, and is there
exactly one per follow-up?

The follow-ups are written straight into followup's ``follow_ups`` table in one INSERT, in a bench agency
of this run's own (one patient each: followup allows one open plan-cadence follow-up per patient),
status ``scheduled``, due over ``sched_window`` seconds starting ``sched_lead`` seconds after the insert
begins. Lateness = the FollowUpDue record's Kafka timestamp (CreateTime: when followup's outbox relay
sent it, i.e. published it) minus the follow-up's due_at; ``claim_lateness`` is its ce_time (when the
scheduler claimed it) minus due_at. Afterwards the bench's follow-ups, and the tasks followup opened
for them, are deleted, so no care manager ever sees them; their events stay on Kafka (in the bench
agency, for patients nobody knows).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from careloop_shared.contracts import FollowUpDue
from careloop_shared.db import connect_for, insert_rows_returning
from careloop_shared.kafka import ensure_topics
from tests.perf.bench_common import CADENCE_POLL_S, MARK, BenchConfig, fetchval, latencies, poll
from tests.perf.bench_kafka import ce_time, end_offsets, read_range, settled, span

COLUMNS = (
    "id", "patient_id", "agency_id", "reason", "plan_id", "priority", "due_at", "overdue_at", "status",
    "attempt", "due_point", "every_days", "cadence_anchor_at", "created_at", "updated_at",
)  # fmt: skip


def follow_up_rows(cfg: BenchConfig, agency: str, first_due: datetime) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    k = cfg.followups
    rows = []
    for i in range(k):
        due = first_due + timedelta(seconds=cfg.sched_window * i / k)
        rows.append((
            uuid.uuid4(), uuid.uuid4(), agency, "plan-cadence", uuid.uuid4(), "moderate", due,
            due + timedelta(days=1), "scheduled", 1, 1, 14.0, due, now, now,
        ))  # fmt: skip
    return rows


def moved(rows: list[tuple[Any, ...]], by: timedelta) -> list[tuple[Any, ...]]:
    """The rows with their due, overdue and cadence times ``by`` later."""
    return [(*r[:6], r[6] + by, r[7] + by, *r[8:12], r[12] + by, *r[13:]) for r in rows]


async def insert(cfg: BenchConfig, rows: list[tuple[Any, ...]]) -> None:
    conn = await connect_for(cfg.db_urls["followup"], timeout=10)  # every agency (row-level security)
    try:
        async with conn.transaction():
            # One INSERT of unnested columns: COPY FROM is refused on a table under row-level security.
            await insert_rows_returning(
                conn, "follow_ups", [dict(zip(COLUMNS, r, strict=True)) for r in rows], key="id"
            )
    finally:
        await conn.close()


async def cleanup(cfg: BenchConfig, agency: str, patients: list[uuid.UUID]) -> dict[str, int]:
    conn = await connect_for(cfg.db_urls["followup"], timeout=10)  # every agency (row-level security)
    try:
        async with conn.transaction():
            tasks = await conn.execute(MARK + "DELETE FROM tasks WHERE agency_id = $1", agency)
            resolutions = await conn.execute(
                MARK + "DELETE FROM task_resolutions WHERE patient_id = ANY($1::uuid[])", patients
            )
            follow_ups = await conn.execute(MARK + "DELETE FROM follow_ups WHERE agency_id = $1", agency)
    finally:
        await conn.close()
    return {
        "follow_ups_deleted": int(follow_ups.split()[-1]),
        "tasks_deleted": int(tasks.split()[-1]),
        "task_resolutions_deleted": int(resolutions.split()[-1]),
    }


async def run_scheduler(cfg: BenchConfig, metrics: Any) -> dict[str, Any]:
    k = cfg.followups
    agency = cfg.agency("sched")
    topic = cfg.topic(FollowUpDue.type)
    await ensure_topics(cfg.bootstrap, [topic], partitions=cfg.partitions)
    prep: dict[str, Any] = {"settle_before": await settled(cfg, cfg.settle_timeout)}
    start = await end_offsets(cfg.bootstrap, [topic])
    built_for = datetime.now(UTC)
    rows = follow_up_rows(cfg, agency, built_for)
    patients = [r[1] for r in rows]

    await metrics.begin()
    try:
        # The lead counts from the insert starting, not from building the rows (seconds at 100,000 on a
        # slow machine) or reading the services' metrics: their times are moved to it.
        t = time.time()
        first_due = datetime.fromtimestamp(t, UTC) + timedelta(seconds=cfg.sched_lead)
        rows = moved(rows, first_due - built_for)
        due_at = {r[0]: r[6].timestamp() for r in rows}
        await insert(cfg, rows)
        prep["insert_s"] = round(time.time() - t, 3)
        # > 0: the insert committed after the first follow-ups were due; they are late from the start.
        prep["insert_committed_after_first_due_s"] = round(time.time() - first_due.timestamp(), 3)

        async def waiting() -> int:
            q = MARK + "SELECT count(*) FROM follow_ups WHERE agency_id = $1 AND status = 'scheduled'"
            return int(await fetchval(cfg.db_urls["followup"], q, agency))

        # Not all can be claimed before the last falls due, and each probe scans the agency's follow-ups
        # (35-75 ms at 100,000, on a connection of its own): probing four times a second from the insert
        # on was about a fifth of the statement time pg_stat_statements counted in the stage, taken from the
        # scheduler being measured. So: wait until the last is due, then probe once a second.
        last_due = first_due + timedelta(seconds=cfg.sched_window)
        await asyncio.sleep(max(0.0, last_due.timestamp() - time.time()))
        left, claimed_all = await poll(waiting, lambda n: n == 0, cfg.stage_timeout, interval=CADENCE_POLL_S)
        prep["settle_after"] = await settled(cfg, cfg.settle_timeout)
        measured = await metrics.end(k)

        stop = await end_offsets(cfg.bootstrap, [topic])
        records, read_all = await read_range(
            cfg.bootstrap, start, stop, {str(p).encode() for p in patients}, cfg.stage_timeout
        )
    finally:
        removed = await cleanup(cfg, agency, patients)

    per_follow_up: dict[uuid.UUID, list[Any]] = {}
    for r in records:
        fid = uuid.UUID(json.loads(r.value)["follow_up_id"])
        if fid in due_at:
            per_follow_up.setdefault(fid, []).append(r)
    firsts = {fid: min(rs, key=lambda r: r.timestamp) for fid, rs in per_follow_up.items()}
    duplicates = sum(len(rs) - 1 for rs in per_follow_up.values())
    missing = k - len(per_follow_up)
    return {
        "follow_ups": k,
        "agency": agency,
        "window_s": cfg.sched_window,
        "lead_s": cfg.sched_lead,
        "due_events": len(per_follow_up),
        "duplicates": duplicates,
        "duplicates_distinct_event_ids": duplicates
        - sum(len(rs) - len({_ce_id(r) for r in rs}) for rs in per_follow_up.values()),
        "missing": missing,
        "still_scheduled": left,
        "complete": claimed_all and missing == 0 and duplicates == 0,
        "kafka_read": {"complete": read_all, "foreign_records": span(start, stop) - len(records)},
        "lateness": latencies(r.timestamp / 1000 - due_at[f] for f, r in firsts.items()),
        "claim_lateness": latencies(ce_time(r) - due_at[f] for f, r in firsts.items()),
        "prep": prep,
        "cleanup": removed,
        "metrics": measured,
    }


def _ce_id(record: Any) -> str | None:
    return next((v.decode() for k, v in record.headers if k == "ce_id"), None)
