"""The idempotent consumer against the real broker and database, using careplan as the consumer; and
`careloop dlq`, which lists its dead letters and sends them again."""

import asyncio
import uuid

import pytest
import pytest_asyncio

from careloop_cli.dead_letters import REDRIVEN_FROM, chosen, read, redrive
from careloop_shared.contracts import PatientAssessed
from careloop_shared.events import new_message
from careloop_shared.runtime import running
from careloop_shared.testing import (
    TopicReader,
    eventually,
    header,
    phq2_positive,
    publish_message,
    publish_raw,
    unique_prefix,
)
from careloop_shared.testing.batches import delivered
from careplan.config import CareplanSettings
from careplan.main import build_app

pytestmark = pytest.mark.integration

ASSESSED = PatientAssessed.type


def assessed(patient_id: uuid.UUID, agency: str = "agency-a") -> PatientAssessed:
    return phq2_positive(patient_id, agency)


@pytest_asyncio.fixture(scope="module")
async def careplan(infra, database_factory, tmp_path_factory):
    prefix = unique_prefix()
    settings = CareplanSettings(
        database_url=await database_factory("careplan"),
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=prefix,
        consumer_backoff_s=0.01,
        group_member_file=tmp_path_factory.mktemp("careplan") / "member",
    )
    runtime = build_app(settings).state.runtime
    async with running(runtime):
        yield runtime


async def plan_versions(runtime, patient_id: uuid.UUID) -> int:
    return await runtime.pool.fetchval(
        "SELECT count(*) FROM plan_versions v JOIN plans p USING (plan_id) WHERE p.patient_id = $1",
        patient_id,
    )


async def test_event_delivered_twice_is_applied_once(careplan, infra):
    topic = careplan.topic_for(ASSESSED)
    patient, sentinel = uuid.uuid4(), uuid.uuid4()
    message = new_message(assessed(patient))
    await publish_message(infra.bootstrap_servers, topic, message)
    await publish_message(infra.bootstrap_servers, topic, message)  # the same ce_id again
    await publish_message(infra.bootstrap_servers, topic, new_message(assessed(sentinel)))

    await eventually(lambda: plan_versions(careplan, sentinel), what="sentinel processed")
    # Same key, same partition: the duplicate was read before the sentinel.
    assert await plan_versions(careplan, patient) == 1
    assert await careplan.pool.fetchval("SELECT count(*) FROM outbox WHERE key = $1", str(patient)) == 1


async def test_malformed_message_goes_to_dead_letter_and_partition_moves_on(careplan, infra):
    topic = careplan.topic_for(ASSESSED)
    patient = uuid.uuid4()
    key = str(patient).encode()
    await publish_raw(
        infra.bootstrap_servers,
        topic,
        b"{definitely not json",
        key=key,
        headers=[("ce_type", ASSESSED.encode())],
    )
    await publish_message(infra.bootstrap_servers, topic, new_message(assessed(patient)))

    await eventually(lambda: plan_versions(careplan, patient), what="next message processed")
    async with TopicReader(infra.bootstrap_servers, careplan.dead_letter_topic) as dlq:
        dead = await dlq.wait_for(lambda r: r.key == key, what="dead letter")
    assert dead.value == b"{definitely not json"
    assert header(dead, "dlq_original_topic") == topic
    assert header(dead, "dlq_original_partition") is not None
    assert header(dead, "dlq_original_offset") is not None
    assert header(dead, "dlq_error_type") == "UndecodableEvent"
    assert "missing header" in header(dead, "dlq_error")


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        # Declared as something else (Avro): the consumer does not guess at a JSON-looking value.
        ("content-type", b"application/avro", "unsupported content-type"),
        # FastStream decodes headers strictly; the Kafka layer hands the record on readable, naming the
        # header, so that it is refused for what it is rather than applied with the header mangled.
        ("ce_source", b"\xff\xfe", "header 'ce_source' is not UTF-8"),
    ],
)
async def test_a_valid_event_with_one_bad_header_is_dead_lettered_with_the_reason(
    careplan, infra, name, value, reason
):
    """Well-formed CloudEvents but for one header: the record goes to the dead-letter topic saying
    why, nothing is applied, and the partition moves on."""
    topic = careplan.topic_for(ASSESSED)
    patient, after = uuid.uuid4(), uuid.uuid4()
    message = new_message(assessed(patient))
    headers = [(k, value if k == name else v.encode()) for k, v in message.envelope.headers().items()]
    body = message.event.model_dump_json().encode()
    await publish_raw(infra.bootstrap_servers, topic, body, key=str(patient).encode(), headers=headers)
    await publish_message(infra.bootstrap_servers, topic, new_message(assessed(after)))

    await eventually(lambda: plan_versions(careplan, after), what="the next record processed")
    async with TopicReader(infra.bootstrap_servers, careplan.dead_letter_topic) as dlq:
        dead = await dlq.wait_for(
            lambda r: header(r, "ce_id") == str(message.envelope.id), what="dead letter"
        )
    assert header(dead, "dlq_error_type") == "UndecodableEvent"
    assert reason in header(dead, "dlq_error")
    assert await plan_versions(careplan, patient) == 0


async def test_an_event_naming_another_agency_is_dead_lettered_once_at_once_and_others_proceed(
    careplan, infra
):
    from careloop_shared.metrics import REGISTRY

    topic = careplan.topic_for(ASSESSED)
    patient, other = uuid.uuid4(), uuid.uuid4()
    await publish_message(infra.bootstrap_servers, topic, new_message(assessed(patient, "agency-a")))
    await eventually(lambda: plan_versions(careplan, patient), what="first plan")
    # An event naming a second agency for the same pseudonymous patient is refused by the consumer, by name,
    # before any handler acts on it (careloop_shared.consumer.EventOfAnotherAgency): no retry.
    poison = new_message(assessed(patient, "agency-b"))
    labels = {"service_name": careplan.spec.name, "topic": topic, "reason": "failed"}
    retries_before = REGISTRY.get_sample_value("careloop_consumer_retries_total", labels) or 0
    dead = await _dead_lettered_while_the_next_goes_on(careplan, infra, poison, other)
    assert header(dead, "dlq_error_type") == "EventOfAnotherAgency"
    assert await plan_versions(careplan, patient) == 1
    assert (REGISTRY.get_sample_value("careloop_consumer_retries_total", labels) or 0) == retries_before


async def _dead_lettered_while_the_next_goes_on(careplan, infra, poison, other: uuid.UUID):
    """``poison`` published, then another patient's assessment: that one is applied, and ``poison``'s
    dead letter (returned) is noted in the inbox."""
    topic = careplan.topic_for(ASSESSED)
    await publish_message(infra.bootstrap_servers, topic, poison)
    await publish_message(infra.bootstrap_servers, topic, new_message(assessed(other)))
    await eventually(lambda: plan_versions(careplan, other), what="later event processed")
    async with TopicReader(infra.bootstrap_servers, careplan.dead_letter_topic) as dlq:
        dead = await dlq.wait_for(lambda r: header(r, "ce_id") == str(poison.envelope.id))
    outcome = await careplan.pool.fetchval(
        "SELECT outcome FROM inbox WHERE event_id = $1", poison.envelope.id
    )
    assert outcome == "dead-lettered"
    return dead


async def test_an_event_with_a_value_no_service_keeps_is_dead_lettered_at_once_as_invalid(careplan, infra):
    from careloop_shared.metrics import REGISTRY

    topic = careplan.topic_for(ASSESSED)
    patient, other = uuid.uuid4(), uuid.uuid4()
    # Its schema allows any text; PostgreSQL cannot keep a NUL, so the batch it is in fails.
    poison = new_message(assessed(patient, "agency-\x00a"))
    labels = {"service_name": careplan.spec.name, "topic": topic, "reason": "failed"}
    retries_before = REGISTRY.get_sample_value("careloop_consumer_retries_total", labels) or 0
    dead = await _dead_lettered_while_the_next_goes_on(careplan, infra, poison, other)
    assert header(dead, "dlq_error_type") == "ValidationError"
    assert header(dead, "dlq_error") == "1 validation error(s): agency_id: text_with_nul"
    assert await plan_versions(careplan, patient) == 0
    # Refused without being tried again.
    assert (REGISTRY.get_sample_value("careloop_consumer_retries_total", labels) or 0) == retries_before


async def test_a_new_patient_is_the_agencys_its_first_event_names_and_one_naming_another_is_refused(careplan):
    """Within one batch too: the patient is claimed for the first event's agency, the event naming another
    is dead-lettered by name, and the one after it is applied with the first, in the same batch's retry."""
    patient = uuid.uuid4()
    first, foreign, later = (new_message(assessed(patient, a)) for a in ("agency-a", "agency-b", "agency-a"))
    topic = careplan.topic_for(ASSESSED)
    batch = [delivered(m, 940_000 + i, topic) for i, m in enumerate((first, foreign, later))]
    await careplan.consumer.process(batch)
    ids = [m.envelope.id for m in (first, foreign, later)]
    outcomes = dict(
        await careplan.pool.fetch("SELECT event_id, outcome FROM inbox WHERE event_id = ANY($1::uuid[])", ids)
    )
    assert [outcomes.get(i) for i in ids] == ["processed", "dead-lettered", "processed"]
    claimed = "SELECT agency_id FROM patient_agencies WHERE patient_id = $1"
    assert await careplan.pool.fetchval(claimed, patient) == "agency-a"
    assert await plan_versions(careplan, patient) >= 1


async def test_a_claim_another_replica_commits_while_this_one_waits_for_it_is_the_patients(careplan):
    """Two replicas meet on a new patient (a rebalance, or the patient's events on two topics owned by two
    replicas): one's claim is in flight when the other's statement starts, so the other's snapshot cannot
    see it, and its insert waits for it and skips. The event naming another agency is still refused."""
    patient = uuid.uuid4()
    foreign = new_message(assessed(patient, "agency-b"))
    async with careplan.pool.acquire() as replica:
        transaction = replica.transaction()
        await transaction.start()
        await replica.execute("INSERT INTO patient_agencies VALUES ($1, 'agency-a')", patient)
        applying = asyncio.create_task(
            careplan.consumer.process([delivered(foreign, 950_000, careplan.topic_for(ASSESSED))])
        )
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%patient_agencies%' AND pid <> pg_backend_pid()"
        )
        await eventually(lambda: careplan.pool.fetchval(waiting), what="the consumer waits for the claim")
        await transaction.commit()
        await applying
    outcome = "SELECT outcome FROM inbox WHERE event_id = $1"
    assert await careplan.pool.fetchval(outcome, foreign.envelope.id) == "dead-lettered"
    assert await plan_versions(careplan, patient) == 0


async def test_a_dynamic_member_keeps_its_member_id_for_the_process_after_it(careplan):
    """Without an instance id, the service keeps its consumer's member id where its settings say, for the
    process started after a crash to make it leave the group (shared/tests/test_kafka_member_kept.py)."""
    [consumer] = [s.consumer for s in careplan.broker.subscribers if getattr(s, "consumer", None)]
    path = careplan.settings.group_member_file

    async def kept() -> bool:
        return path.exists() and path.read_text() == consumer._coordinator.member_id

    await eventually(kept, what="the member id kept")


# ---- `careloop dlq`: dead letters listed and sent again ----------------------------------------------
# A dead letter whose cause is gone is applied once sent again, and one whose cause remains is
# dead-lettered anew (its consumer tried it again rather than skipping it).


async def marked(runtime, event_id: uuid.UUID) -> str | None:
    return await runtime.pool.fetchval("SELECT outcome FROM inbox WHERE event_id = $1", event_id)


async def letter_of(runtime, infra, event_id: uuid.UUID, *, after: int = 0):
    """The dead letter of that event (the newest), once it is on the topic."""

    async def found():
        letters = [
            d
            for d in await read(infra.bootstrap_servers, runtime.dead_letter_topic)
            if d.event_id == event_id
        ]
        return letters[-1] if len(letters) > after else None

    return await eventually(found, timeout=30, what=f"dead letter number {after + 1} of {event_id}")


async def test_a_dead_letter_whose_cause_is_gone_is_applied_once_sent_again(careplan, infra):
    """As if careplan had set the event aside for a cause fixed since (a new version, data corrected): the
    dead letter on its topic and the mark in its inbox, as its consumer writes them."""
    patient = uuid.uuid4()
    message = new_message(phq2_positive(patient, "agency-a"))
    topic = careplan.topic_for(PatientAssessed.type)
    consumer = careplan.consumer.name
    await careplan.pool.execute(
        'INSERT INTO inbox (consumer, event_id, event_type, topic, partition, "offset", outcome)'
        " VALUES ($1, $2, $3, $4, 0, 0, 'dead-lettered')",
        consumer,
        message.envelope.id,
        message.envelope.type,
        topic,
    )
    own = [(k, v.encode()) for k, v in message.envelope.headers().items()]
    said = {"dlq_error_type": "RuntimeError", "dlq_error": "a bug since fixed", "dlq_consumer": consumer}
    said |= {"dlq_original_topic": topic, "dlq_original_partition": "0", "dlq_original_offset": "0"}
    await publish_raw(
        infra.bootstrap_servers,
        careplan.dead_letter_topic,
        message.event.body(),
        key=message.key.encode(),
        headers=[*own, *((k, v.encode()) for k, v in said.items())],
    )
    letter = await letter_of(careplan, infra, message.envelope.id)
    assert (letter.header("ce_type"), letter.header("dlq_error")) == (
        PatientAssessed.type,
        "a bug since fixed",
    )

    [(sent, outcome)] = await redrive(infra.bootstrap_servers, careplan.settings.database_url, [letter])
    assert (sent, outcome) == (letter, f"sent again to {topic}")
    await eventually(
        lambda: plan_versions(careplan, patient), timeout=30, what="the plan from the event sent again"
    )
    assert await marked(careplan, message.envelope.id) != "dead-lettered"  # applied, once
    async with TopicReader(infra.bootstrap_servers, topic) as original:
        again = await original.wait_for(lambda r: header(r, "ce_id") == str(message.envelope.id))
    assert header(again, REDRIVEN_FROM) == f"{careplan.dead_letter_topic}:{letter.where}"
    assert not [k for k, _ in again.headers if k.startswith("dlq_")]
    assert again.key == message.key.encode()


async def test_a_dead_letter_whose_cause_remains_is_tried_again_and_set_aside_anew(careplan, infra):
    patient = uuid.uuid4()
    poison = new_message(phq2_positive(patient, "agency-\x00a"))  # text PostgreSQL cannot keep
    await publish_message(infra.bootstrap_servers, careplan.topic_for(PatientAssessed.type), poison)
    first = await letter_of(careplan, infra, poison.envelope.id)
    assert await marked(careplan, poison.envelope.id) == "dead-lettered"
    letters = await read(infra.bootstrap_servers, careplan.dead_letter_topic)
    assert chosen(letters, [first.where]) == [first]
    assert first in chosen(letters, [], error_type="ValidationError")
    with pytest.raises(ValueError, match="no dead letter at 9:999999"):
        chosen(letters, ["9:999999"])

    await redrive(infra.bootstrap_servers, careplan.settings.database_url, [first])
    second = await letter_of(careplan, infra, poison.envelope.id, after=1)
    assert second.where != first.where
    assert second.header(REDRIVEN_FROM) == f"{careplan.dead_letter_topic}:{first.where}"
    assert second.header("dlq_error_type") == "ValidationError"
    assert await marked(careplan, poison.envelope.id) == "dead-lettered"
    assert await plan_versions(careplan, patient) == 0


def test_the_command_lists_them_and_sends_nothing_unless_entries_are_named(careplan, infra, capsys):
    from careloop_cli.main import main

    where = ["--service", "careplan", "--bootstrap", infra.bootstrap_servers]
    where += ["--topic-prefix", careplan.settings.topic_prefix]
    assert main(["dlq", "list", *where, "--error-type", "ValidationError"]) == 0
    listed = capsys.readouterr().out
    assert "ValidationError" in listed and "RuntimeError" not in listed
    dsn = ["--dsn", careplan.settings.database_url]
    assert main(["dlq", "redrive", *where, *dsn]) == 2
    assert "name the entries" in capsys.readouterr().out
    assert main(["dlq", "redrive", *where, *dsn, "--entry", "9:999999"]) == 2
    assert "no dead letter at 9:999999" in capsys.readouterr().out
    before = len(asyncio.run(read(infra.bootstrap_servers, careplan.dead_letter_topic)))
    assert main(["dlq", "redrive", *where, *dsn, "--all", "--dry-run"]) == 0
    assert f"would send {before} dead letter(s) again" in capsys.readouterr().out
