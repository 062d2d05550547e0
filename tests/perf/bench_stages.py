"""The chain stage (PatientAssessed straight onto Kafka) and what the journey stages share: reading each
patient's events back from Kafka and turning their times into per-hop latencies.

Each patient's journey, as careloop runs it (the plan-cadence follow-up and the referral hang off the
plan side by side, not one after the other)::

    PatientAssessed -> PlanUpdated -+-> FollowUpScheduled (plan-cadence)          the journey's end
                                    +-> ReferralMade -> FollowUpScheduled (referral-check-in)

Hop latencies are differences of ``ce_time`` (when each service decided, inside its transaction).
``publish_delay`` is the Kafka record timestamp (CreateTime: set by the outbox relay's producer when it
sends, i.e. the moment the event was published) minus ``ce_time``: commit plus outbox relay.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpScheduled,
    PatientAssessed,
    PlanUpdated,
    ReferralMade,
)
from careloop_shared.kafka import ensure_topics
from tests.perf.bench_common import (
    CADENCE_POLL_S,
    MARK,
    BenchConfig,
    assessed,
    cadence_done,
    consent,
    fetchval,
    latencies,
    poll,
)
from tests.perf.bench_kafka import ce_time, end_offsets, publish, read_range, settled, span

KINDS = {
    PatientAssessed.type: "assessed",
    PlanUpdated.type: "plan",
    ReferralMade.type: "referral",
    FollowUpScheduled.type: "scheduled",
}
SCHEDULED_REASONS = {"plan-cadence": "fu_plan", "referral-check-in": "fu_checkin"}
HOPS = {
    "assessed->plan_updated": ("assessed", "plan"),
    "plan_updated->referral_made": ("plan", "referral"),
    "plan_updated->follow_up_scheduled(plan-cadence)": ("plan", "fu_plan"),
    "referral_made->follow_up_scheduled(referral-check-in)": ("referral", "fu_checkin"),
    "assessed->follow_up_scheduled(plan-cadence)": ("assessed", "fu_plan"),
}
Journeys = dict[str, dict[str, tuple[float, float]]]  # patient -> kind -> (ce_time, record timestamp)


def journey_topics(cfg: BenchConfig) -> list[str]:
    return [cfg.topic(t) for t in KINDS]


def journeys(cfg: BenchConfig, records: Iterable[Any]) -> Journeys:
    """Each patient's first event of each kind, matched by the patient_id in the payload."""
    kind_of = {cfg.topic(t): k for t, k in KINDS.items()}
    out: Journeys = {}
    for r in records:
        body = json.loads(r.value)
        kind: str | None = kind_of[r.topic]
        if kind == "scheduled":
            kind = SCHEDULED_REASONS.get(body.get("reason"))
        if kind is None:
            continue
        times = (ce_time(r), r.timestamp / 1000)
        mine = out.setdefault(str(body["patient_id"]), {})
        if kind not in mine or times[0] < mine[kind][0]:
            mine[kind] = times
    return out


def hop_latencies(j: Journeys) -> dict[str, Any]:
    hops = {
        name: latencies(p[b][0] - p[a][0] for p in j.values() if a in p and b in p)
        for name, (a, b) in HOPS.items()
    }
    kinds = ("assessed", "plan", "referral", "fu_plan", "fu_checkin")
    delays = {k: latencies(p[k][1] - p[k][0] for p in j.values() if k in p) for k in kinds}
    return {"hops_ce_time": _slim(hops), "publish_delay": _slim(delays)}


def _slim(d: dict[str, Any]) -> dict[str, Any]:
    return {k: {n: v for n, v in s.items() if n != "hdr"} for k, s in d.items()}


def seen(j: Journeys) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in j.values():
        for kind in p:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


async def read_journeys(
    cfg: BenchConfig, start: dict[Any, int], patients: Iterable[str], timeout: float = 120
) -> tuple[Journeys, dict[str, Any]]:
    """Every event of these patients published since ``start`` (up to the topics' ends now), and how
    the read went: complete, and how many records on those topics were someone else's (other traffic
    during the stage: its CPU and statement figures then include that traffic's)."""
    stop = await end_offsets(cfg.bootstrap, journey_topics(cfg))
    keys = {p.encode() for p in patients}
    records, complete = await read_range(cfg.bootstrap, start, stop, keys, timeout)
    return journeys(cfg, records), {"complete": complete, "foreign_records": span(start, stop) - len(records)}


async def record_consents(cfg: BenchConfig, agency: str, patients: list[uuid.UUID]) -> dict[str, Any]:
    """Publish a referral consent per patient and wait until referral has recorded them all."""
    await publish(cfg.bootstrap, cfg.topic(ConsentRecorded.type), (consent(p, agency) for p in patients))

    async def recorded() -> int:
        q = MARK + "SELECT count(*) FROM consents WHERE agency_id = $1"
        return int(await fetchval(cfg.db_urls["referral"], q, agency))

    count, done = await poll(recorded, lambda c: c >= len(patients), cfg.stage_timeout)
    return {"consents_recorded": count, "complete": done}


async def run_chain(cfg: BenchConfig, metrics: Any) -> dict[str, Any]:
    n = cfg.events
    agency = cfg.agency("chain")
    patients = [uuid.uuid4() for _ in range(n)]
    topics = journey_topics(cfg)
    await ensure_topics(cfg.bootstrap, [*topics, cfg.topic(ConsentRecorded.type)], partitions=cfg.partitions)
    prep: dict[str, Any] = {}
    if cfg.consent:  # untimed: the journey starts at the assessment
        prep["consents"] = await record_consents(cfg, agency, patients)
    prep["settle_before"] = await settled(cfg, cfg.settle_timeout)
    start = await end_offsets(cfg.bootstrap, topics)

    await metrics.begin()
    # Built as they are sent, so each event's ce_time is its publish time.
    started = await publish(
        cfg.bootstrap, cfg.topic(PatientAssessed.type), (assessed(p, agency) for p in patients)
    )
    published = time.time()
    result, done = await poll(
        lambda: cadence_done(cfg, agency), lambda r: r[0] >= n, cfg.stage_timeout, CADENCE_POLL_S
    )
    count, last = result or (0, None)
    prep["settle_after"] = await settled(cfg, cfg.settle_timeout)  # referrals and check-ins too
    measured = await metrics.end(n)

    j, kafka_read = await read_journeys(cfg, start, [str(p) for p in patients], cfg.stage_timeout)
    elapsed = (last or time.time()) - started
    return {
        "events": n,
        "agency": agency,
        "completed": count,
        "complete": done and count >= n,
        "publish_s": round(published - started, 3),
        "elapsed_s": round(elapsed, 3),
        "throughput_per_s": round(count / elapsed, 1) if elapsed > 0 else None,
        "events_seen": seen(j),
        "kafka_read": kafka_read,
        **hop_latencies(j),
        "prep": prep,
        "metrics": measured,
    }
