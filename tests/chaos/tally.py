"""After a chaos run: what was accepted against what every service applied, what was lost, what was
doubled, where the poison went, and whether every patient's case record verifies.

* Lost: an event on a topic that a consuming service never recorded in its inbox (each inbox row is
  written in the same transaction as the event's effects; record's entries name their events instead),
  or an accepted assessment that intake did not keep or publish.
* Doubled: an effect made twice for one cause: two assessments for one Idempotency-Key, two plan
  versions from one event, two referrals for one intervention, two follow-ups for one plan's cadence
  or one referral, two record entries for one event. (Re-publishing the same event id after a crash is
  at-least-once delivery, counted apart: consumers apply it once.)
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from careloop_shared.db import ALL_AGENCIES
from careloop_shared.kafka import Kafka, connection, topic_partitions
from careloop_shared.testing import header
from record.store import APPLIED_IN as RECORD_APPLIED_IN
from tests.chaos.poison import is_poison

# Where a service's effects name each event it applied, instead of its inbox (``ServiceSpec.applied_in``):
# its inbox keeps the events it dead-lettered.
APPLIED_IN = {"record": RECORD_APPLIED_IN}

# One query per service: effects counted, and effects made twice for one cause.
EFFECTS: dict[str, dict[str, str]] = {
    "intake": {
        "patients": "SELECT count(*) FROM patients",
        "assessments": "SELECT count(*) FROM assessments",
    },
    "careplan": {
        "plans": "SELECT count(*) FROM plans",
        "plan_versions": "SELECT count(*) FROM plan_versions",
    },
    "referral": {"referrals": "SELECT count(*) FROM referrals"},
    "followup": {
        "plan_cadence_follow_ups": "SELECT count(*) FROM follow_ups WHERE reason = 'plan-cadence'",
        "referral_check_ins": "SELECT count(*) FROM follow_ups WHERE reason = 'referral-check-in'",
    },
    "record": {"record_entries": "SELECT count(*) FROM record_entries"},
}
DOUBLED: dict[str, dict[str, str]] = {
    "careplan": {
        "plan versions from one event": "SELECT count(*) FROM (SELECT caused_by_event FROM plan_versions"
        " WHERE caused_by_event IS NOT NULL GROUP BY 1 HAVING count(*) > 1) d",
        "plans for one patient": "SELECT count(*) FROM (SELECT patient_id FROM plans GROUP BY 1"
        " HAVING count(*) > 1) d",
    },
    "referral": {
        "referrals for one intervention": "SELECT count(*) FROM (SELECT intervention_id FROM referrals"
        " GROUP BY 1 HAVING count(*) > 1) d",
    },
    "followup": {
        "cadence follow-ups open for one patient": "SELECT count(*) FROM (SELECT patient_id FROM follow_ups"
        " WHERE reason = 'plan-cadence' AND status IN ('scheduled', 'due', 'overdue') GROUP BY 1"
        " HAVING count(*) > 1) d",
    },
    "record": {
        "record entries for one event": "SELECT count(*) FROM (SELECT event_id FROM record_entries"
        " GROUP BY 1 HAVING count(*) > 1) d",
    },
    "intake": {
        "assessments for one patient": "SELECT count(*) FROM (SELECT patient_id FROM assessments"
        " GROUP BY 1 HAVING count(*) > 1) d",
    },
}


async def read_topics(kafka: Kafka, topics: Sequence[str]) -> dict[str, list[Any]]:
    """Every record on these topics, from the beginning to their ends now (``kafka``: a bootstrap
    list, or client options with their security settings)."""
    out: dict[str, list[Any]] = {t: [] for t in topics}
    parts = await topic_partitions(kafka, topics)
    if not parts:
        return out
    reader = AIOKafkaConsumer(
        **connection(kafka), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        reader.assign(parts)
        end = await reader.end_offsets(parts)
        # An explicit position: seek_to_beginning's lazy reset can lose to the reset that assign()
        # asked for, leaving the reader at the end (it read nothing, once, after a broker restart).
        for tp, first in (await reader.beginning_offsets(parts)).items():
            reader.seek(tp, first)
        todo = {tp for tp in parts if end[tp] > 0}
        while todo:
            batch = await reader.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                out[tp.topic].extend(records)
                if records and records[-1].offset >= end[tp] - 1:
                    todo.discard(tp)
            for tp in list(todo):
                if await reader.position(tp) >= end[tp]:
                    todo.discard(tp)
    finally:
        await reader.stop()
    return out


async def _query(dsn: str, sql: str, *args: Any) -> Any:
    # Every agency's rows, as the services' own consumers see them (row-level security).
    conn = await asyncpg.connect(dsn, server_settings={"careloop.agency": ALL_AGENCIES})
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def applied_ids(dsn: str, consumer: str) -> set[str]:
    """The events a service's consumer applied or dead-lettered."""
    sql = "SELECT event_id::text FROM inbox WHERE consumer = $1"
    if consumer in APPLIED_IN:
        table, _, column = APPLIED_IN[consumer].partition(".")
        sql += f" UNION ALL SELECT {column}::text FROM {table}"
    return {r[0] for r in await _query(dsn, sql, consumer)}


async def missing(
    kafka: Kafka, dsns: Mapping[str, str], consumes: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, int]]:
    """Per service and topic: real events on the topic it has not applied (nor dead-lettered) yet."""
    topics = sorted({t for ts in consumes.values() for t in ts})
    on_topics = await read_topics(kafka, topics)
    ids = {
        t: {header(r, "ce_id") for r in rs if not is_poison(r.key)} - {None} for t, rs in on_topics.items()
    }
    out: dict[str, dict[str, int]] = {}
    for service, service_topics in consumes.items():
        seen = await applied_ids(dsns[service], service)
        out[service] = {t: len(ids[t] - seen) for t in service_topics if ids[t] - seen}
    return out


async def waiting(dsns: Mapping[str, str]) -> dict[str, int]:
    """Per service: events committed to its outbox and not yet published. An event a relay has yet to
    send is on no topic, so ``missing`` cannot see it; a run has settled only when these are none."""
    out = {s: (await _query(dsn, "SELECT count(*) FROM outbox_pending"))[0][0] for s, dsn in dsns.items()}
    return {s: n for s, n in out.items() if n}


async def effects(dsns: Mapping[str, str]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    doubled: dict[str, int] = {}
    for service, queries in EFFECTS.items():
        for name, sql in queries.items():
            counts[name] = (await _query(dsns[service], sql))[0][0]
    for service, queries in DOUBLED.items():
        for name, sql in queries.items():
            doubled[f"{service}: {name}"] = (await _query(dsns[service], sql))[0][0]
    return {"counts": counts, "doubled": doubled}


async def published(kafka: Kafka, topics: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per topic: records, distinct event ids, and re-sends of an id already sent (at least once)."""
    records = await read_topics(kafka, topics)
    out = {}
    for topic, rs in records.items():
        real = [r for r in rs if not is_poison(r.key)]
        distinct = len({header(r, "ce_id") for r in real})
        out[topic] = {"records": len(real), "events": distinct, "resent": len(real) - distinct}
    return out


async def dead_letters(
    bootstrap: str, dlq_of: Mapping[str, str], sent: Mapping[str, Sequence[Any]]
) -> dict[str, Any]:
    """For each consuming service: the poison it got (``sent``: service -> poison records on its topics)
    against what its dead-letter topic holds, and the reasons given."""
    held = await read_topics(bootstrap, list(dlq_of.values()))
    report: dict[str, Any] = {}
    for service, dlq in dlq_of.items():
        by_key = defaultdict(list)
        for r in held[dlq]:
            by_key[(r.key, header(r, "dlq_original_topic"))].append(header(r, "dlq_error") or "")
        expected = sent.get(service, [])
        found = [p for p in expected if by_key.get((p.key, p.topic))]
        reasons = {p.kind: by_key[(p.key, p.topic)][0][:120] for p in found}
        report[service] = {
            "sent": len(expected),
            "dead_lettered": len(found),
            "without_reason": sum(1 for p in found if not by_key[(p.key, p.topic)][0]),
            "missing": sorted({f"{p.kind} on {p.topic}" for p in expected if p not in found})[:20],
            "reasons": reasons,
        }
    return report


async def verify_records(
    record_url: str, token_of: Mapping[str, str], patients: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """GET /record/verify for every patient (agency, id), 16 at a time."""
    import httpx

    failures: list[str] = []
    todo = iter(patients)

    async def worker(client: httpx.AsyncClient) -> None:
        for agency, patient in todo:
            headers = {"Authorization": f"Bearer {token_of[agency]}"}
            for _ in range(5):
                try:
                    r = await client.get(f"/v1/patients/{patient}/record/verify", headers=headers)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(1)
            else:
                failures.append(f"{patient}: no answer")
                continue
            if r.status_code != 200 or r.json().get("intact") is not True:
                failures.append(f"{patient}: HTTP {r.status_code} {r.text[:120]}")

    async with httpx.AsyncClient(base_url=record_url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return {"verified": len(patients) - len(failures), "failed": len(failures), "failures": failures[:20]}
