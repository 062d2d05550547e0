"""No statement's cost grows with the data: the event chain's statements read about as many pages a
journey on tables fifty times larger as they did on nearly empty ones.

A plan gone wrong for a table's size (a sequential scan, a nested loop over a whole table: a plan made
while the table was empty and kept, or one made without statistics) reads pages in proportion to the
table, so it shows as pages a call and a journey growing with the data. Pages are counted by PostgreSQL
(``pg_stat_statements``: shared blocks hit and read, the foreign-key checks and triggers a statement
runs included), not timed, so the check does not depend on how busy the machine is.

The same journeys run three times against five services of the module's own (fresh databases): a
small round on empty tables, a large one that grows them, and a second small round like the first.
Each statement's pages in the two small rounds are compared, those sent at least ``MIN_CALLS`` times in
each round (a statement once a batch of many keys reads a page more a key when its index is a level
deeper, and then stays level: shown, not judged).

It runs under the pool's default plan cache mode, PostgreSQL's ``auto`` (generic plans kept once they look
no dearer, made on tables still nearly empty). Under ``auto`` it once failed: referral's look-up of an
intervention's referrals went from 3 to 119 pages a call, careplan's plan look-up from 6 to 211
(docs/performance.md), while with every statement planned for its own parameters
(``CARELOOP_PG_PLAN_CACHE_MODE=force_custom_plan``, the default then) the largest rise among the judged ones
was about half of what fails. Since those look-ups probe each key by index (``db.probed``) it passes under
both, every statement's pages the same in both modes (2026-12-06), and ``auto`` is the default.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from careloop_shared.contracts import PatientAssessed
from tests.conftest import SERVICES
from tests.perf.bench_common import MARK, BenchConfig, assessed, cadence_done, poll
from tests.perf.bench_kafka import close_offset_readers, kafka_headers, producer, settled
from tests.perf.bench_stages import record_consents

pytestmark = pytest.mark.integration

# The small rounds come one journey every TRICKLE_S, so each hop's batches are of one or two events, as
# at a moderate rate: an index look-up is then a few pages, a scan the whole table. The large round comes
# at once (batches of hundreds), to grow the tables quickly.
SMALL, LARGE, TRICKLE_S = 60, 3_000, 0.03
# A statement is flagged when its pages a journey and its pages a call in the second small round are both
# more than GROWTH times those of the first plus SLACK (CALL_SLACK a call): index look-ups stay level, a
# scan of a table fifty times larger does not.
GROWTH, SLACK, CALL_SLACK = 3.0, 1.0, 5.0
# A statement sent fewer times than this in a small round is shown, not judged: it is one a batch of many
# keys (referral's look-up of the drafts waiting for a batch's consents: 30 patients a call), whose pages
# a call follow its keys times its index's depth, and an index a level deeper reads a page more a key
# (19 -> 60-75 pages a call on tables three and nine thousand journeys large alike; 4-7 -> 75 when the
# first round's batch happened to scan the still empty table instead).
MIN_CALLS = 5
Key = tuple[str, str]


async def _journeys(cfg: BenchConfig, count: int, *, trickle_s: float = 0.0) -> None:
    """``count`` patients, each with a referral consent, assessed straight onto Kafka (one every
    ``trickle_s``, or all at once); back when the platform has nothing left to do (every consumer caught
    up, every outbox published)."""
    agency, patients = cfg.agency(uuid.uuid4().hex[:6]), [uuid.uuid4() for _ in range(count)]
    consents = await record_consents(cfg, agency, patients)
    assert consents["complete"], consents
    kafka = producer(cfg.bootstrap)
    await kafka.start()
    try:
        sent = []
        for patient in patients:
            message = assessed(patient, agency)
            sent.append(
                await kafka.send(
                    cfg.topic(PatientAssessed.type),
                    message.event.body(),
                    key=message.key.encode(),
                    headers=kafka_headers(message),
                )
            )
            if trickle_s:  # pacing the load, not waiting for a result
                await asyncio.sleep(trickle_s)
        await asyncio.gather(*sent)
    finally:
        await kafka.stop()
    last, complete = await poll(lambda: cadence_done(cfg, agency), lambda r: r[0] >= count, 240)
    assert complete, f"{last[0] if last else 0} of {count} journeys reached followup"
    quiet = await settled(cfg, 120)
    assert quiet["settled"], quiet


async def _vacuum_pending_lists(infra, databases: list[str]) -> None:
    """Each service's outbox pending list, cleared of the rows the large round published, as autovacuum
    soon would: the relay's read walks the list's dead index entries until then, pages that follow the
    vacuum's timing, not a plan."""
    for database in databases:
        conn = await asyncpg.connect(infra.admin_url(database))
        try:
            await conn.execute(MARK + "VACUUM outbox_pending")
        finally:
            await conn.close()


async def _statements(admin: asyncpg.Connection, databases: list[str]) -> dict[Key, dict[str, Any]]:
    rows = await admin.fetch(
        MARK + "SELECT d.datname, s.query, sum(s.calls)::bigint AS calls,"
        " sum(s.shared_blks_hit + s.shared_blks_read)::bigint AS pages"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = ANY($1::text[]) AND s.query NOT LIKE $2 GROUP BY d.datname, s.query",
        databases,
        MARK + "%",
    )
    return {(r["datname"], r["query"]): dict(r) for r in rows}


def _between(
    before: dict[Key, dict[str, Any]], after: dict[Key, dict[str, Any]]
) -> dict[Key, dict[str, Any]]:
    out = {}
    for key, row in after.items():
        was = before.get(key, {"calls": 0, "pages": 0})
        calls, pages = row["calls"] - was["calls"], row["pages"] - was["pages"]
        if calls > 0:
            out[key] = {"calls": calls, "pages": pages, "query": row["query"]}
    return out


async def test_no_statement_of_the_chain_reads_more_pages_as_its_tables_grow(platform, infra, tmp_path: Path):
    env, processes = platform
    cfg = BenchConfig(
        run=uuid.uuid4().hex[:8],
        bootstrap=infra.bootstrap_servers,
        prefix=env["CARELOOP_TOPIC_PREFIX"],
        pg_url=infra.pg_url,
        db_urls={s: env[f"{s.upper()}_DATABASE_URL"] for s in SERVICES},
        service_urls={s: p.url for s, p in processes.items()},
        out=tmp_path,
    )
    admin = await asyncpg.connect(infra.admin_url("postgres"))
    try:
        try:
            await admin.execute(MARK + "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await admin.fetchval(MARK + "SELECT count(*) FROM pg_stat_statements")
        except asyncpg.PostgresError as exc:
            pytest.skip(f"pg_stat_statements cannot be read on this server: {exc}")
        databases = [url.rsplit("/", 1)[1] for url in cfg.db_urls.values()]

        start = await _statements(admin, databases)
        await _journeys(cfg, SMALL, trickle_s=TRICKLE_S)
        first_end = await _statements(admin, databases)
        await _journeys(cfg, LARGE)
        await _vacuum_pending_lists(infra, databases)
        second_start = await _statements(admin, databases)
        await _journeys(cfg, SMALL, trickle_s=TRICKLE_S)
        second_end = await _statements(admin, databases)
    finally:
        await admin.close()
        await close_offset_readers()

    first, second = _between(start, first_end), _between(second_start, second_end)
    compared = [_compared(key, first[key], late) for key, late in second.items() if key in first]
    table = "\n".join(c["line"] for c in sorted(compared, key=lambda c: c["line"]))
    assert len(compared) >= 30, f"too few statements ran in both small rounds to compare:\n{table}"
    grown = [c["line"] for c in compared if c["grown"]]
    assert not grown, (
        "pages that grew with the tables:\n" + "\n".join(grown) + f"\n\nevery statement:\n{table}"
    )


def _compared(key: Key, early: dict[str, Any], late: dict[str, Any]) -> dict[str, Any]:
    """A statement's pages a journey and a call in the two small rounds; grown when both rose. A plan
    that scans raises both; a batch shape that differs between the rounds moves only one (calls move
    between a statement's one-row and many-row forms, or one call covers more journeys)."""
    per_journey = (early["pages"] / SMALL, late["pages"] / SMALL)
    per_call = (early["pages"] / early["calls"], late["pages"] / late["calls"])
    judged = min(early["calls"], late["calls"]) >= MIN_CALLS
    grown = (
        judged
        and per_journey[1] > GROWTH * per_journey[0] + SLACK
        and per_call[1] > GROWTH * per_call[0] + CALL_SLACK
    )
    line = (
        f"{key[0].split('_')[1]:9} {per_journey[0]:7.2f} -> {per_journey[1]:7.2f} a journey,"
        f" {per_call[0]:7.1f} -> {per_call[1]:7.1f} a call ({early['calls']}, {late['calls']} calls)"
        f"  {' '.join(late['query'].split())[:110]}" + ("" if judged else "  (too few calls to judge)")
    )
    return {"line": line, "grown": grown}
