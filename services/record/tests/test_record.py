"""The case record against its real database and broker."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

import record as record_package
from careloop_shared import db
from careloop_shared.consumer import EventConsumer, Record
from careloop_shared.contracts import FollowUpCompleted, PatientAssessed, PatientRegistered
from careloop_shared.db import as_agency, create_pool
from careloop_shared.events import new_message
from careloop_shared.metrics import REGISTRY as METRICS
from careloop_shared.testing import (
    bearer,
    eventually,
    phq2_positive,
    publish_message,
    served,
    settings_for,
)
from careloop_shared.testing.batches import delivered
from record.authenticate import authenticate
from record.checkpoints import TOPIC as CHECKPOINT_TOPIC
from record.checkpoints import CheckpointFiles, audit, checkpoint_round, settle_heads, sign_moved_heads
from record.consumers import HANDLERS
from record.domain.chain import GENESIS, entry_hash
from record.domain.witness import ChainKeys, check_series, signed_head
from record.main import RecordSettings, build_app
from record.store import APPLIED_IN, MOVED_HEADS, RecordStore

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def record(infra, database_factory, tmp_path_factory):
    dsn = await database_factory("record")
    settings = settings_for(
        RecordSettings,
        infra,
        dsn,
        checkpoint_dir=tmp_path_factory.mktemp("checkpoints"),
        checkpoint_every_s=3600,  # the tests sign checkpoints when they want them
    )
    app = build_app(settings)
    async with served(app, "http://record") as (client, runtime):
        # As a database superuser would connect, to play one (switching the triggers off).
        yield client, runtime, infra.admin_url(dsn.rsplit("/", 1)[1])


async def _patient_with_two_events(record, infra):
    client, runtime, _ = record
    patient, agency = uuid.uuid4(), f"agency-{uuid.uuid4().hex[:6]}"
    registered = new_message(
        PatientRegistered(
            patient_id=patient, agency_id=agency, preferred_language="en", registered_at=datetime.now(UTC)
        )
    )
    assessed = new_message(
        phq2_positive(patient, agency, rules_version="t"),
        causation_id=registered.envelope.id,
        correlation_id=registered.envelope.correlation_id,
    )
    # The effect is published first: the timeline still shows the cause first.
    await publish_message(infra.bootstrap_servers, runtime.topic_for(PatientAssessed.type), assessed)
    await publish_message(infra.bootstrap_servers, runtime.topic_for(PatientRegistered.type), registered)
    await publish_message(infra.bootstrap_servers, runtime.topic_for(PatientAssessed.type), assessed)  # again

    async def two_entries():
        r = await client.get(f"/v1/patients/{patient}/record", headers=bearer(agency))
        return r.json()["entries"] if r.status_code == 200 and len(r.json()["entries"]) >= 2 else None

    entries = await eventually(two_entries, what="two record entries")
    return patient, agency, entries, registered, assessed


async def test_events_are_appended_once_and_read_causes_first(record, infra):
    client, runtime, _ = record
    patient, agency, entries, registered, assessed = await _patient_with_two_events(record, infra)
    assert [e["event_id"] for e in entries] == [str(registered.envelope.id), str(assessed.envelope.id)]
    assert entries[1]["summary"] == "Assessed with phq-2: risk moderate; needs depression"
    assert entries[1]["actor"] == "system (intake)"
    assert (
        await runtime.pool.fetchval("SELECT count(*) FROM record_entries WHERE patient_id = $1", patient) == 2
    )
    verified = (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()
    assert (verified["intact"], verified["entries"]) == (True, 2)
    only = await client.get(
        f"/v1/patients/{patient}/record", params={"type": PatientAssessed.type}, headers=bearer(agency)
    )
    assert [e["type"] for e in only.json()["entries"]] == [PatientAssessed.type]
    stranger = await client.get(f"/v1/patients/{patient}/record", headers=bearer("agency-stranger"))
    assert stranger.status_code == 404
    # The second delivery was found among the entries: the inbox keeps no id of an event applied.
    ids = [registered.envelope.id, assessed.envelope.id]
    assert (
        await runtime.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", ids) == 0
    )


async def test_the_timeline_keeps_a_window_of_time_and_refuses_a_time_it_could_not_store(record, infra):
    client, _, _ = record
    patient, agency, entries, _, _ = await _patient_with_two_events(record, infra)
    url = f"/v1/patients/{patient}/record"

    async def shown(**window: str) -> list[str]:
        r = await client.get(url, params=window, headers=bearer(agency))
        assert r.status_code == 200, r.text
        return [e["event_id"] for e in r.json()["entries"]]

    every = [e["event_id"] for e in entries]
    assert await shown(since="2000-01-01T00:00:00Z", until="2999-12-31T23:59:59Z") == every
    assert await shown(since="2999-01-01T00:00:00+14:00") == []
    assert await shown(until="1900-01-01T00:00:00Z") == []
    # The first entry's own time keeps it; a time without an offset is taken as UTC.
    first = datetime.fromisoformat(entries[0]["time"]).astimezone(UTC).replace(tzinfo=None)
    assert (await shown(since=first.isoformat()))[0] == every[0]
    for edge in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00+14:00"):
        for name in ("since", "until"):
            r = await client.get(url, params={name: edge}, headers=bearer(agency))
            assert r.status_code == 422, (name, edge, r.text)
            problem = r.json()["detail"][0]
            assert (problem["loc"], problem["type"]) == (["query", name], "time_out_of_range")


def _sample(name: str, **labels: str) -> float:
    return METRICS.get_sample_value(name, labels) or 0.0


def _delivered(runtime, message, offset: int) -> Record:
    """``message`` as the consumer receives it from its topic."""
    return delivered(message, offset, runtime.topic_for(message.envelope.type))


def _journey_start(patient: uuid.UUID, agency: str) -> list:
    registered = new_message(
        PatientRegistered(
            patient_id=patient, agency_id=agency, preferred_language="en", registered_at=datetime.now(UTC)
        )
    )
    return [
        registered,
        new_message(phq2_positive(patient, agency)),
        new_message(phq2_positive(patient, agency)),
    ]


async def _chain(runtime, patient: uuid.UUID) -> list[tuple[int, uuid.UUID]]:
    rows = await runtime.pool.fetch(
        "SELECT seq, event_id FROM record_entries WHERE patient_id = $1 ORDER BY seq", patient
    )
    return [(r["seq"], r["event_id"]) for r in rows]


async def test_a_batch_delivered_again_with_new_events_appends_only_the_new(record):
    """A redelivery after a crash between the commit and the offsets' commit may come back in a batch
    of another size: the events applied are found among the entries, the new ones continue the chain."""
    client, runtime, _ = record
    patient, agency = uuid.uuid4(), f"agency-{uuid.uuid4().hex[:6]}"
    messages = _journey_start(patient, agency)
    delivered = [_delivered(runtime, m, 900_000 + i) for i, m in enumerate(messages)]
    await runtime.consumer.process(delivered[:2])
    await runtime.consumer.process(delivered)  # the first two again, the third new
    await runtime.consumer.process([delivered[2], delivered[2]])  # the third twice more, in one batch
    assert await _chain(runtime, patient) == [(i + 1, m.envelope.id) for i, m in enumerate(messages)]
    verified = (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()
    assert (verified["intact"], verified["entries"]) == (True, 3)
    ids = [m.envelope.id for m in messages]
    assert (
        await runtime.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", ids) == 0
    )


async def test_two_replicas_appending_the_same_batch_at_once_record_each_event_once(record):
    """Two replicas holding the same events for a moment (a rebalance): both take them as new and wait
    for the same heads; one appends them, and the other's entries meet the unique event id. It then
    applies the batch again looking for each event first, finds each appended, and dead-letters nothing."""
    client, runtime, _ = record
    patients = sorted(uuid.uuid4() for _ in range(3))
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    messages = [m for p in patients for m in _journey_start(p, agency)]
    delivered = [_delivered(runtime, m, 910_000 + i) for i, m in enumerate(messages)]
    dead_letters: list[str] = []
    applied: list[int] = []

    async def dead_letter(topic, value, headers, key) -> None:
        dead_letters.append(headers["dlq_error_type"])

    class Replica(EventConsumer):
        async def _apply(self, events, **how):
            applied.append(len(events))
            return await super()._apply(events, **how)

    pool = await create_pool(runtime.settings.database_url, min_size=3, max_size=3)
    try:
        replicas = [
            Replica(
                "record",
                pool,
                runtime.topic_for,
                HANDLERS,
                dead_letter,
                context=runtime.context,
                store=RecordStore,
                dead_letter_topic="record-dlq",
                backoff_s=0.01,
                applied_in=APPLIED_IN,
            )
            for _ in range(2)
        ]
        await pool.execute(
            "INSERT INTO record_heads (patient_id, seq, hash) SELECT unnest($1::uuid[]), 0, $2",
            patients,
            GENESIS,
        )
        async with pool.acquire() as holder:
            # Both replicas found the events new and wait for the heads this transaction holds.
            async with holder.transaction():
                await holder.execute(
                    "SELECT 1 FROM record_heads WHERE patient_id = ANY($1::uuid[]) FOR UPDATE", patients
                )
                both = asyncio.gather(*(replica.process(delivered) for replica in replicas))

                async def both_waiting() -> bool:
                    return 2 == await runtime.pool.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )

                await eventually(both_waiting, what="both replicas waiting for the heads")
            await both
    finally:
        await pool.close()
    # Both whole; the one that met the unique event id whole again, each event looked for first.
    assert applied == [len(delivered)] * 3, applied
    assert dead_letters == []
    for patient in patients:
        ids = [m.envelope.id for m in messages if m.event.patient_id == patient]
        assert await _chain(runtime, patient) == [(i + 1, event_id) for i, event_id in enumerate(ids)]
        verified = (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()
        assert (verified["intact"], verified["entries"]) == (True, 3)


async def test_the_inbox_gives_up_the_ids_of_events_already_in_the_record(database_factory):
    """Migration 008: a record kept before it, whose inbox named every event it applied, keeps in its
    inbox only the events it dead-lettered, whichever agency's (the entries are read past row security)."""
    migrations = [
        *db.kernel_migrations(),
        *db.folder_migrations("record", Path(record_package.__file__).parent / "migrations"),
    ]
    before = [m for m in migrations if not m[0].startswith("record/") or m[0] < "record/008"]
    pool = await create_pool(await database_factory("record_inbox"), min_size=1, max_size=2)
    try:
        await db.migrate(pool, before)
        applied, dead, unmatched = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await pool.execute(
            "INSERT INTO record_entries (patient_id, seq, event_id, event_type, source, agency_id,"
            " occurred_at, recorded_at, correlation_id, body, prev_hash, hash)"
            " VALUES ($1, 1, $2, 't', 's', 'agency-b', now(), now(), $2, '{}', $3, $3)",
            uuid.uuid4(),
            applied,
            GENESIS,
        )
        await pool.executemany(
            'INSERT INTO inbox (consumer, event_id, event_type, topic, partition, "offset", outcome)'
            " VALUES ('record', $1, 't', 't', 0, 0, $2)",
            [(applied, "processed"), (dead, "dead-lettered"), (unmatched, "processed")],
        )
        with as_agency("agency-a"):  # a session that sees one agency's rows only
            await db.migrate(pool, migrations)
        kept = await pool.fetch("SELECT event_id, outcome FROM inbox ORDER BY outcome")
        assert [(r["event_id"], r["outcome"]) for r in kept] == [
            (dead, "dead-lettered"),
            (unmatched, "processed"),
        ]
    finally:
        await pool.close()


async def test_an_event_dead_lettered_is_not_tried_again_when_delivered_again(record):
    """The inbox still keeps the events record dead-lettered: delivered again, one is skipped, not sent to
    the dead-letter topic a second time."""
    _, runtime, _ = record
    patient, agency = uuid.uuid4(), f"agency-{uuid.uuid4().hex[:6]}"
    [message, *_] = _journey_start(patient, agency)
    await runtime.pool.execute(
        'INSERT INTO inbox (consumer, event_id, event_type, topic, partition, "offset", outcome)'
        " VALUES ('record', $1, $2, 't', 0, 0, 'dead-lettered')",
        message.envelope.id,
        message.envelope.type,
    )
    await runtime.consumer.process([_delivered(runtime, message, 920_000)])
    assert await _chain(runtime, patient) == []


async def test_an_event_naming_another_agency_is_refused_and_the_chain_stays_whole(record):
    """A chain is its first event's agency's. An event for the same patient that names another agency
    (a producer's mistake, or someone else's) is dead-lettered, by name, and not appended: the patient's
    agency still reads and verifies the whole chain, and the other agency finds no record at all."""
    client, runtime, _ = record
    patient, agency, other = uuid.uuid4(), f"agency-{uuid.uuid4().hex[:6]}", f"agency-{uuid.uuid4().hex[:6]}"
    registered, assessed, _ = _journey_start(patient, agency)
    foreign = new_message(phq2_positive(patient, other))
    later = new_message(phq2_positive(patient, agency))
    batch = [registered, assessed, foreign, later]
    topic = runtime.topic_for(PatientAssessed.type)
    labels = {"service_name": runtime.spec.name, "topic": topic}
    before = _sample("careloop_consumer_retries_total", **labels, reason="failed")
    refused_before = _sample("careloop_consumer_dead_lettered_total", **labels, reason="refused")
    await runtime.consumer.process([_delivered(runtime, m, 930_000 + i) for i, m in enumerate(batch)])
    # Refused at once, by name, not tried again; the others applied.
    assert _sample("careloop_consumer_retries_total", **labels, reason="failed") == before
    assert _sample("careloop_consumer_dead_lettered_total", **labels, reason="refused") == refused_before + 1
    ids = [m.envelope.id for m in (registered, assessed, later)]
    assert await _chain(runtime, patient) == [(i + 1, event_id) for i, event_id in enumerate(ids)]
    outcome = await runtime.pool.fetchval(
        "SELECT outcome FROM inbox WHERE event_id = $1", foreign.envelope.id
    )
    assert outcome == "dead-lettered"
    verified = (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()
    assert (verified["intact"], verified["entries"]) == (True, 3)
    for path in ("record", "record/verify"):
        answer = await client.get(f"/v1/patients/{patient}/{path}", headers=bearer(other))
        assert answer.status_code == 404, answer.text


async def test_heads_kept_before_they_named_their_agency_take_their_chains(database_factory):
    """Migration 010: each head already kept takes the agency of its chain's first entry (read past row
    security, whichever agency's); a head with no entry yet keeps none, and takes its first event's."""
    migrations = [
        *db.kernel_migrations(),
        *db.folder_migrations("record", Path(record_package.__file__).parent / "migrations"),
    ]
    before = [m for m in migrations if not m[0].startswith("record/") or m[0] < "record/010"]
    pool = await create_pool(await database_factory("record_heads_agency"), min_size=1, max_size=2)
    try:
        await db.migrate(pool, before)
        kept, empty = uuid.uuid4(), uuid.uuid4()
        with as_agency(db.ALL_AGENCIES):
            for seq, agency in ((1, "agency-b"), (2, "agency-b")):
                await pool.execute(
                    "INSERT INTO record_entries (patient_id, seq, event_id, event_type, source, agency_id,"
                    " occurred_at, recorded_at, correlation_id, body, prev_hash, hash)"
                    " VALUES ($1, $2, $3, 't', 's', $4, now(), now(), $3, '{}', $5, $5)",
                    kept, seq, uuid.uuid4(), agency, GENESIS,
                )  # fmt: skip
            await pool.executemany(
                "INSERT INTO record_heads (patient_id, seq, hash) VALUES ($1, $2, $3)",
                [(kept, 2, GENESIS), (empty, 0, GENESIS)],
            )
        with as_agency("agency-a"):  # a session that sees one agency's rows only
            await db.migrate(pool, migrations)
        heads = dict(await pool.fetch("SELECT patient_id, agency_id FROM record_heads"))
        assert heads == {kept: "agency-b", empty: None}
        async with pool.acquire() as conn, conn.transaction():
            store = RecordStore(conn)
            found = await store.lock_heads({empty: "agency-c", kept: "agency-c"})
            assert (found[kept].agency_id, found[empty].agency_id) == ("agency-b", None)
            await store.append([], {empty: found[empty]._replace(agency_id="agency-c")})
        assert await pool.fetchval("SELECT agency_id FROM record_heads WHERE patient_id = $1", empty) == (
            "agency-c"
        )
    finally:
        await pool.close()


async def test_update_and_delete_on_the_record_are_refused_by_the_database(record, infra):
    _, runtime, _ = record
    patient, *_ = await _patient_with_two_events(record, infra)
    for statement in (
        "UPDATE record_entries SET agency_id = 'x' WHERE patient_id = $1",
        "DELETE FROM record_entries WHERE patient_id = $1",
    ):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await runtime.pool.execute(statement, patient)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await runtime.pool.execute("TRUNCATE record_entries")


async def test_a_row_changed_behind_the_databases_back_is_caught_by_verify(record, infra):
    client, _, dsn = record
    patient, agency, *_ = await _patient_with_two_events(record, infra)
    conn = await asyncpg.connect(dsn)
    try:
        # Someone with superuser rights switches the triggers off and rewrites history.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE record_entries SET body = convert_to("
            "replace(convert_from(body, 'UTF8'), 'moderate', 'low'), 'UTF8')"
            " WHERE patient_id = $1 AND event_type = $2",
            patient,
            PatientAssessed.type,
        )
        tampered_seq = await conn.fetchval(
            "SELECT seq FROM record_entries WHERE patient_id = $1 AND event_type = $2",
            patient,
            PatientAssessed.type,
        )
    finally:
        await conn.close()
    verified = (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()
    assert (verified["intact"], verified["first_broken_seq"]) == (False, tampered_seq)
    assert verified["problem"] == "content does not match its hash"


async def test_the_timeline_names_the_person_and_every_read_of_it_is_audited_with_the_person(record, infra):
    client, runtime, _ = record
    patient, agency, *_ = await _patient_with_two_events(record, infra)
    completed = new_message(
        FollowUpCompleted(
            patient_id=patient,
            agency_id=agency,
            follow_up_id=uuid.uuid4(),
            reached=True,
            attempt=1,
            completed_at=datetime.now(UTC),
            actor_id="cm-ana",
            actor_role="care-manager",
        )
    )
    await publish_message(infra.bootstrap_servers, runtime.topic_for(FollowUpCompleted.type), completed)
    ana = bearer(agency, subject="cm-ana")

    async def three_entries():
        r = await client.get(f"/v1/patients/{patient}/record", headers=ana)
        return r.json()["entries"] if len(r.json()["entries"]) == 3 else None

    entries = await eventually(three_entries, what="the follow-up in the record")
    assert [e["actor"] for e in entries] == ["system (intake)", "system (intake)", "care-manager cm-ana"]

    stranger = bearer("agency-elsewhere", subject="cm-eve")
    assert (await client.get(f"/v1/patients/{patient}/record", headers=stranger)).status_code == 404
    analyst = bearer(agency, role="analyst", subject="an-al")
    assert (await client.get(f"/v1/patients/{patient}/record", headers=analyst)).status_code == 403
    verified = await client.get(f"/v1/patients/{patient}/record/verify", headers=analyst)
    assert verified.status_code == 200  # counts only: allowed to an analyst, and no disclosure

    supervisor = bearer(agency, role="supervisor", subject="sv-sam")
    trail = await client.get("/v1/audit", params={"patient_id": str(patient)}, headers=supervisor)
    assert trail.status_code == 200, trail.text
    seen = {(e["subject"], e["outcome"], e["what"], e["outcome_detail"]) for e in trail.json()["items"]}
    assert {
        ("cm-ana", "allowed", "record", None),
        ("cm-eve", "denied", "record", "no record for this patient"),
        ("an-al", "denied", "record", "record:read"),
    } <= seen
    assert "an-al" not in {e["subject"] for e in trail.json()["items"] if e["outcome"] == "allowed"}
    read = next(e for e in trail.json()["items"] if e["subject"] == "cm-ana")
    assert (read["route"], read["source"], read["patient_agency_id"], read["role"]) == (
        "GET /v1/patients/{patient_id}/record",
        "record",
        agency,
        "care-manager",
    )
    disclosures = await client.get(
        "/v1/audit/disclosures", params={"patient_id": str(patient)}, headers=supervisor
    )
    assert disclosures.json()["items"] == []
    other = bearer("agency-elsewhere", role="supervisor")
    assert (
        await client.get("/v1/audit", params={"patient_id": str(patient)}, headers=other)
    ).status_code == 404


async def test_verify_while_events_are_appended_sees_an_intact_chain(record, infra):
    """Entries and head are read as of one moment: appends committing meanwhile never make an intact
    chain look cut short."""
    client, runtime, _ = record
    patient, agency, *_ = await _patient_with_two_events(record, infra)
    topic = runtime.topic_for(PatientAssessed.type)
    more = 60

    async def publish() -> None:
        for _ in range(more):
            await publish_message(infra.bootstrap_servers, topic, new_message(phq2_positive(patient, agency)))

    publishing = asyncio.create_task(publish())
    seen: list[dict] = []

    async def all_appended():
        verified = (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()
        seen.append(verified)
        return verified if verified["entries"] == 2 + more else None

    await eventually(all_appended, timeout=60, interval=0, what="every event appended")
    await publishing
    assert len(seen) > 1 and all(v["intact"] for v in seen), [v for v in seen if not v["intact"]][:1]


async def test_heads_are_locked_for_known_and_new_patients_alike(record):
    """A batch naming patients the record holds and one it does not: every head comes back (the new
    one the genesis) and stays locked until the batch commits, the new one too."""
    _, runtime, _ = record
    known, new = uuid.uuid4(), uuid.uuid4()
    moved = b"\x07" * 32
    await runtime.pool.execute(
        "INSERT INTO record_heads (patient_id, seq, hash) VALUES ($1, 4, $2)", known, moved
    )

    async def try_to_lock(patient: uuid.UUID) -> None:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '300ms'")
            await RecordStore(conn).lock_heads({patient: "agency-a"})

    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            heads = await RecordStore(conn).lock_heads({new: "agency-a", known: "agency-a"})
            assert heads == {known: (4, moved, None), new: (0, GENESIS, "agency-a")}
            for patient in (known, new):
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await try_to_lock(patient)
        await try_to_lock(new)  # committed: free again, and there
        assert await runtime.pool.fetchval("SELECT seq FROM record_heads WHERE patient_id = $1", new) == 0
    finally:
        # Heads with no entries behind them: a later checkpoint would sign them and the module's audit
        # would find them broken.
        await runtime.pool.execute(
            "DELETE FROM record_heads WHERE patient_id = ANY($1::uuid[])", [known, new]
        )


async def _rewrite_consistently(dsn: str, patient: uuid.UUID, keys: ChainKeys | None) -> int:
    """A database superuser rewrites the assessment in the patient's chain and recomputes every hash
    after it and the head, as verify computes them (the algorithm is public); with ``keys`` (an insider
    who also holds the chain key) every MAC too. Returns the rewritten entry's seq."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")  # the append-only trigger off
        rows = [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM record_entries WHERE patient_id = $1 ORDER BY seq", patient
            )
        ]
        changed = next(r["seq"] for r in rows if r["event_type"] == PatientAssessed.type)
        prev = GENESIS
        for row in rows:
            if row["seq"] == changed:
                row["body"] = row["body"].replace(b"moderate", b"low")
            row["prev_hash"] = prev
            row["hash"] = entry_hash(prev, row)
            if keys is not None:
                row["mac_key"], row["mac"] = keys.mac(row["hash"])
            await conn.execute(
                "UPDATE record_entries SET body = $3, prev_hash = $4, hash = $5, mac_key = $6, mac = $7"
                " WHERE patient_id = $1 AND seq = $2",
                patient,
                row["seq"],
                row["body"],
                row["prev_hash"],
                row["hash"],
                row["mac_key"],
                row["mac"],
            )
            prev = row["hash"]
        await conn.execute("UPDATE record_heads SET hash = $2 WHERE patient_id = $1", patient, prev)
    finally:
        await conn.close()
    return changed


async def _verify(client, patient, agency):
    return (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()


async def test_a_consistent_rewrite_by_a_superuser_without_the_chain_key_is_caught_by_its_macs(record, infra):
    client, _, dsn = record
    patient, agency, *_ = await _patient_with_two_events(record, infra)
    assert (await _verify(client, patient, agency))["intact"] is True
    changed = await _rewrite_consistently(dsn, patient, keys=None)
    verified = await _verify(client, patient, agency)
    assert (verified["intact"], verified["first_broken_seq"]) == (False, changed)
    assert verified["problem"] == "not authenticated by the record's chain key"


async def test_a_rewrite_by_someone_holding_the_chain_key_is_caught_by_the_signed_checkpoint(
    record, infra, tmp_path
):
    client, runtime, dsn = record
    patient, agency, *_ = await _patient_with_two_events(record, infra)
    assert await checkpoint_round(runtime) is False  # signed and published; nothing more waits
    number = await runtime.pool.fetchval(
        "SELECT checkpoint FROM record_witnessed WHERE patient_id = $1", patient
    )
    before = await _verify(client, patient, agency)
    assert (before["intact"], before["witnessed_by_checkpoint"]) == (True, number)

    # The same signed document in the folder and on the topic, outside the record database.
    folder = CheckpointFiles(runtime.context.checkpoint_dir)
    published = await _checkpoints_on_topic(infra, runtime.topic_for(CHECKPOINT_TOPIC), number)
    assert published[number] == folder.read(number)
    assert signed_head(published[number], patient) is not None

    await _rewrite_consistently(dsn, patient, keys=runtime.context.chain_keys)
    verified = await _verify(client, patient, agency)
    # Every hash and MAC holds; the entry whose head was signed no longer has the signed hash.
    assert verified["intact"] is False and verified["first_broken_seq"] == 2
    assert verified["problem"] == f"differs from the head signed in checkpoint {number}"

    # Deleting the database's note of what was signed hides it from a patient's verify, not from the
    # audit against the published checkpoints.
    await runtime.pool.execute("DELETE FROM record_witnessed WHERE patient_id = $1", patient)
    audited = await audit(runtime.context, runtime.reader(), list(folder))
    assert audited.series.intact
    assert audited.broken[str(patient)].startswith("entry 2 differs from the head signed in checkpoint")
    # The same audit as an operator runs it, against the folder: it fails, naming the patient.
    env = {**os.environ, "RECORD_DATABASE_URL": runtime.settings.own_database_url()}
    command = [sys.executable, "-m", "record.witness_audit", str(runtime.context.checkpoint_dir)]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert str(patient) in done.stdout + done.stderr


async def _checkpoints_on_topic(infra, topic: str, until: int) -> dict[int, dict]:
    found: dict[int, dict] = {}
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:

        async def read_until() -> bool:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    document = json.loads(r.value)
                    found[document["checkpoint"]] = document
            return until in found

        await eventually(read_until, what=f"checkpoint {until} on its topic")
    finally:
        await consumer.stop()
    return found


async def test_checkpoints_sign_only_heads_that_moved_and_link_to_the_one_before(record, infra):
    _, runtime, _ = record
    await _patient_with_two_events(record, infra)
    while await checkpoint_round(runtime):
        pass
    assert await checkpoint_round(runtime) is False  # nothing moved since
    first = await runtime.pool.fetchval("SELECT max(checkpoint) FROM record_checkpoints")
    patient, *_ = await _patient_with_two_events(record, infra)
    await checkpoint_round(runtime)
    rows = await runtime.pool.fetch("SELECT document FROM record_checkpoints WHERE checkpoint > $1", first)
    assert len(rows) == 1
    latest = json.loads(rows[0]["document"])
    assert [h[0] for h in latest["heads"]] == [str(patient)]
    series = [
        json.loads(r["document"])
        for r in await runtime.pool.fetch("SELECT document FROM record_checkpoints ORDER BY checkpoint")
    ]
    assert check_series(runtime.context.signing_keys, series).intact
    assert (
        await runtime.pool.fetchval("SELECT count(*) FROM record_checkpoints WHERE published_at IS NULL") == 0
    )


async def _moved(runtime, *patients: uuid.UUID) -> set[uuid.UUID]:
    rows = await runtime.pool.fetch(
        "SELECT patient_id FROM record_heads WHERE moved AND patient_id = ANY($1::uuid[])", list(patients)
    )
    return {r["patient_id"] for r in rows}


async def _one_more_event(record, infra, patient: uuid.UUID, agency: str, entries: int) -> None:
    client, runtime, _ = record
    message = new_message(phq2_positive(patient, agency, rules_version="t"))
    await publish_message(infra.bootstrap_servers, runtime.topic_for(PatientAssessed.type), message)

    async def appended() -> bool:
        r = await client.get(f"/v1/patients/{patient}/record", headers=bearer(agency))
        return len(r.json()["entries"]) == entries

    await eventually(appended, what=f"entry {entries}")


async def test_the_checkpoint_round_reads_only_the_heads_that_moved(record, infra):
    _, runtime, _ = record
    patient, agency, *_ = await _patient_with_two_events(record, infra)
    assert await _moved(runtime, patient) == {patient}  # appended: flagged
    while await checkpoint_round(runtime):
        pass
    assert await _moved(runtime, patient) == set()  # signed as it is: the flag cleared
    # Many chains signed long ago, as a record a few years old holds.
    others = [uuid.uuid4() for _ in range(30_000)]
    await runtime.pool.execute(
        "INSERT INTO record_heads (patient_id, seq, hash, moved)"
        " SELECT unnest($1::uuid[]), 1, '\\x00', false",
        others,
    )
    await runtime.pool.execute(
        "INSERT INTO record_witnessed (patient_id, checkpoint, seq, hash)"
        " SELECT unnest($1::uuid[]), 1, 1, '\\x00'",
        others,
    )
    try:
        await runtime.pool.execute("ANALYZE record_heads, record_witnessed")
        await _one_more_event(record, infra, patient, agency, entries=3)
        assert await _moved(runtime, patient) == {patient}
        async with runtime.pool.acquire() as conn:
            explained = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {MOVED_HEADS}", 100)
            plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
            table_pages = await conn.fetchval("SELECT pg_relation_size('record_heads') / 8192")
        pages = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
        assert table_pages > 100 and pages < 20, (pages, table_pages, plan)
        while await checkpoint_round(runtime):
            pass
        latest = json.loads(
            await runtime.pool.fetchval(
                "SELECT document FROM record_checkpoints ORDER BY checkpoint DESC LIMIT 1"
            )
        )
        assert [h[:2] for h in latest["heads"]] == [[str(patient), 3]]
        assert await _moved(runtime, patient, *others) == set()
    finally:
        await runtime.pool.execute("DELETE FROM record_witnessed WHERE patient_id = ANY($1::uuid[])", others)
        await runtime.pool.execute("DELETE FROM record_heads WHERE patient_id = ANY($1::uuid[])", others)


async def test_a_head_that_moves_after_it_is_signed_or_is_held_by_an_appender_stays_flagged(record, infra):
    client, runtime, dsn = record
    patient, agency, *_ = await _patient_with_two_events(record, infra)
    async with runtime.uow() as uow:
        assert await sign_moved_heads(runtime.context, uow.store) is not None
    # Held by an appender's transaction: passed over without waiting for it, flag kept.
    appender = await asyncpg.connect(dsn)
    try:
        async with appender.transaction():
            await appender.execute("SELECT 1 FROM record_heads WHERE patient_id = $1 FOR UPDATE", patient)
            await asyncio.wait_for(settle_heads(runtime), timeout=10)
            assert await _moved(runtime, patient) == {patient}
    finally:
        await appender.close()
    # Moved again after it was signed, before the flags were settled: the flag stays, and the next round
    # signs the head as it is now.
    await _one_more_event(record, infra, patient, agency, entries=3)
    await settle_heads(runtime)
    assert await _moved(runtime, patient) == {patient}
    while await checkpoint_round(runtime):
        pass
    signed = await runtime.pool.fetchval("SELECT seq FROM record_witnessed WHERE patient_id = $1", patient)
    assert (signed, await _moved(runtime, patient)) == (3, set())
    verified = (await client.get(f"/v1/patients/{patient}/record/verify", headers=bearer(agency))).json()
    assert verified["intact"] is True


async def test_entries_written_before_the_record_was_keyed_are_authenticated_only_if_their_chain_holds(
    record, infra
):
    client, runtime, dsn = record
    kept, agency, *_ = await _patient_with_two_events(record, infra)
    rewritten, *_ = await _patient_with_two_events(record, infra)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE record_entries SET mac = NULL, mac_key = NULL WHERE patient_id = $1", kept)
        # Edited before the record was keyed, without recomputing the hashes.
        await conn.execute(
            "UPDATE record_entries SET mac = NULL, mac_key = NULL WHERE patient_id = $1", rewritten
        )
        await conn.execute(
            "UPDATE record_entries SET body = body || ' '::bytea WHERE patient_id = $1 AND seq = 1", rewritten
        )
    finally:
        await conn.close()
    assert (await _verify(client, kept, agency))["problem"] == "not authenticated by the record's chain key"

    # A changed column beside the MAC is still refused by the trigger.
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await runtime.pool.execute(
            "UPDATE record_entries SET mac = '\\x00', agency_id = 'x' WHERE patient_id = $1", kept
        )

    done = await authenticate(runtime.pool, runtime.context.chain_keys)
    assert rewritten in done.refused and kept not in done.refused
    assert (await _verify(client, kept, agency))["intact"] is True
    assert (
        await runtime.pool.fetchval(
            "SELECT count(*) FROM record_entries WHERE patient_id = $1 AND mac IS NULL", rewritten
        )
        == 2
    )
    again = await authenticate(runtime.pool, runtime.context.chain_keys)
    assert again.entries == 0


async def test_a_query_without_an_agency_filter_finds_no_other_agencys_record(record, infra):
    _, runtime, _ = record
    ours, agency, *_ = await _patient_with_two_events(record, infra)
    theirs, other, *_ = await _patient_with_two_events(record, infra)
    assert agency != other
    with as_agency(agency):
        rows = await runtime.pool.fetch("SELECT DISTINCT patient_id, agency_id FROM record_entries")
        assert {(r["patient_id"], r["agency_id"]) for r in rows} >= {(ours, agency)}
        assert {r["agency_id"] for r in rows} == {agency}
        # Another agency's entry cannot be written while acting for this one.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.pool.execute(
                "INSERT INTO record_entries (patient_id, seq, event_id, event_type, source, agency_id,"
                " occurred_at, recorded_at, correlation_id, body, prev_hash, hash) VALUES"
                " ($1, 99, gen_random_uuid(), 't', 's', $2, now(), now(), gen_random_uuid(), '', '', '')",
                theirs,
                other,
            )
    with as_agency(other):
        assert (
            await runtime.pool.fetchval("SELECT count(*) FROM record_entries WHERE patient_id = $1", ours)
            == 0
        )
