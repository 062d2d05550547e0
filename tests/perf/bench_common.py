"""What every bench stage shares: the configuration, careloop's events, polls with deadlines and
HdrHistogram summaries (Kafka is in bench_kafka).

Every SQL statement the bench runs carries the ``careloop-bench`` marker, so the statement counts
read from pg_stat_statements leave the bench's own polling out.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from hdrh.histogram import HdrHistogram

from careloop_shared.contracts import ConsentRecorded
from careloop_shared.db import connect_for
from careloop_shared.events import Message, new_message
from careloop_shared.testing import phq2_positive

SERVICES = ("intake", "careplan", "referral", "followup", "record")
DEFAULT_PORTS = {"intake": 8001, "careplan": 8002, "referral": 8003, "followup": 8004, "record": 8005}
MARK = "/* careloop-bench */ "  # leading every bench statement: pg_stat_statements readers skip them
T = TypeVar("T")


@dataclass
class BenchConfig:
    run: str
    bootstrap: str
    prefix: str
    pg_url: str  # server URL, no database
    db_urls: dict[str, str]
    service_urls: dict[str, str]
    out: Path
    partitions: int = 6
    events: int = 10_000
    rates: list[float] = field(default_factory=lambda: [50.0, 100.0, 250.0, 500.0])
    duration: float = 20.0
    followups: int = 100_000
    sched_window: float = 20.0
    sched_lead: float = 10.0  # seconds between the insert starting and the first follow-up falling due
    consent: bool = True  # consent per patient, so referral sends (ReferralMade) instead of drafting
    stage_timeout: float = 300.0
    settle_timeout: float = 60.0
    register_concurrency: int = 16
    inflight_cap: int = 5000
    request_timeout: float = 30.0
    pids: dict[str, list[int]] = field(default_factory=dict)  # process group -> pids, overrides discovery

    @property
    def intake_url(self) -> str:
        return self.service_urls["intake"]

    def agency(self, stage: str) -> str:
        return f"bench-{self.run}-{stage}"

    def topic(self, event_type: str) -> str:
        return f"{self.prefix}{event_type}"

    def admin_url(self) -> str:
        """A superuser's (pg_stat_statements needs one): CARELOOP_PG_ADMIN_URL, else the services' role."""
        return f"{os.environ.get('CARELOOP_PG_ADMIN_URL', self.pg_url).rstrip('/')}/postgres"


def config_from_env(out: Path, run: str | None = None) -> BenchConfig:
    pg_url = os.environ.get("CARELOOP_PG_URL", "postgresql://careloop@127.0.0.1:55432").rstrip("/")
    return BenchConfig(
        run=run or uuid.uuid4().hex[:8],
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        prefix=os.environ.get("CARELOOP_TOPIC_PREFIX", ""),
        pg_url=pg_url,
        db_urls={s: os.environ.get(f"{s.upper()}_DATABASE_URL", f"{pg_url}/careloop_{s}") for s in SERVICES},
        service_urls={
            s: os.environ.get(f"{s.upper()}_URL")
            or os.environ.get(f"CARELOOP_{s.upper()}_URL")
            or f"http://127.0.0.1:{DEFAULT_PORTS[s]}"
            for s in SERVICES
        },
        out=out,
        partitions=int(os.environ.get("CARELOOP_TOPIC_PARTITIONS", "6")),
    )


# --- events --------------------------------------------------------------------------------------


def assessed(patient: uuid.UUID, agency: str) -> Message:
    """The PatientAssessed the load scripts publish: a positive PHQ-2 (need: depression)."""
    return new_message(phq2_positive(patient, agency, rules_version="bench"))


def consent(patient: uuid.UUID, agency: str) -> Message:
    """Consent to refer to behavioral-health programs: without it referral only drafts the referral."""
    now = datetime.now(UTC)
    return new_message(
        ConsentRecorded(
            patient_id=patient,
            agency_id=agency,
            consent_id=uuid.uuid4(),
            purpose="referral",
            agencies=[],
            program_categories=["behavioral-health"],
            period_start=now - timedelta(minutes=5),
            recorded_at=now,
        )
    )


# --- databases and polls -------------------------------------------------------------------------


async def _once(url: str, method: str, query: str, *args: Any) -> Any:
    """One query on a fresh connection: the database may be restarted under the bench."""
    conn = await connect_for(url, timeout=10)  # every agency's rows (row-level security)
    try:
        return await getattr(conn, method)(query, *args)
    finally:
        await conn.close()


async def fetchval(url: str, query: str, *args: Any) -> Any:
    return await _once(url, "fetchval", query, *args)


async def fetchrow(url: str, query: str, *args: Any) -> Any:
    return await _once(url, "fetchrow", query, *args)


async def poll(
    probe: Callable[[], Awaitable[T]], done: Callable[[Any], bool], timeout: float, interval: float = 0.2
) -> tuple[T | None, bool]:
    """Call ``probe`` until ``done`` says so or the deadline passes; (last value, done). A probe that
    raises (a service or database restarting) counts as not done yet."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        try:
            last = await probe()
            if done(last):
                return last, True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass
        if time.monotonic() >= deadline:
            return last, False
        await asyncio.sleep(interval)


# How often a stage asks followup whether its journeys are done. A stage ends at the last follow-up's own
# creation time, so the interval only delays noticing it; each probe counts the agency's follow-ups (a
# scan that grows with the table, 13 ms of PostgreSQL's time at 20,000 rows on a slow day), so probing
# five times a second took 6-8% of PostgreSQL's CPU in a chain stage from the work being measured.
CADENCE_POLL_S = 1.0


async def cadence_done(cfg: BenchConfig, agency: str) -> tuple[int, float | None]:
    """How many plan-cadence follow-ups followup has scheduled for the agency, and when the last was."""
    row = await fetchrow(
        cfg.db_urls["followup"],
        MARK + "SELECT count(*) AS n, max(created_at) AS last FROM follow_ups"
        " WHERE agency_id = $1 AND reason = 'plan-cadence'",
        agency,
    )
    return int(row["n"]), (row["last"].timestamp() if row["last"] else None)


# --- histograms ----------------------------------------------------------------------------------

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


HIGHEST_US = 24 * 3600 * 1_000_000  # a day


def histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, 3)  # microseconds, 3 significant digits


def latencies(seconds: Iterable[float]) -> dict[str, Any]:
    """HdrHistogram of latencies given in seconds, summarised in milliseconds (with the encoded
    histogram, for merging later). Negative values (clock resolution) are recorded as 1 us; those
    below -1 ms are counted."""
    h = histogram()
    negative = 0
    for s in seconds:
        if s != s:  # NaN: no time for that one
            continue
        if s < -0.001:  # beyond the millisecond resolution of Kafka timestamps
            negative += 1
        h.record_value(min(max(1, int(s * 1_000_000)), HIGHEST_US))
    return summarise(h, negative)


def summarise(h: HdrHistogram, negative: int = 0) -> dict[str, Any]:
    n = h.get_total_count()
    out: dict[str, Any] = {"count": n}
    if n:
        for name, p in PERCENTILES.items():
            out[f"{name}_ms"] = round(h.get_value_at_percentile(p) / 1000, 2)
        out["max_ms"] = round(h.get_max_value() / 1000, 2)
        out["mean_ms"] = round(h.get_mean_value() / 1000, 2)
        encoded = h.encode()  # compressed, base64 already
        out["hdr"] = encoded.decode() if isinstance(encoded, bytes) else base64.b64encode(encoded).decode()
    if negative:
        out["negative"] = negative
    return out


def steady_state(
    sent_at: dict[int, float], done_at: dict[int, float], start: float, duration: float
) -> dict[str, Any]:
    """Whether a stage's arrival rate was kept up, not only finally served: follow-ups scheduled per
    second in the middle half of the arrival window (the pipeline filled, the last arrivals' drain not
    counted, which a rate over the whole stage always includes), and the follow-up latency of the requests
    that arrived in each quarter of it (a queue that grows shows as a p50 that climbs quarter by quarter).
    ``sent_at``/``done_at``: request -> its scheduled arrival and its follow-up's time, wall seconds."""
    lo, hi = start + duration / 4, start + 3 * duration / 4
    in_middle = sum(1 for t in done_at.values() if lo <= t < hi)
    quarters: list[dict[str, Any]] = []
    for q in range(4):
        a, b = start + q * duration / 4, start + (q + 1) * duration / 4
        lat = latencies(done_at[i] - sent_at[i] for i in done_at if a <= sent_at[i] < b)
        quarters.append({k: lat[k] for k in ("count", "p50_ms", "p99_ms") if k in lat})
    return {"sustained_rate_per_s": round(in_middle / (hi - lo), 1), "latency_by_quarter": quarters}
