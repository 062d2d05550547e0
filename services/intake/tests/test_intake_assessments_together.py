"""Assessments sent together share transactions (careloop_shared.command_groups), against the real
database: each request gets its own answer, its own row and its own event, whatever the others sent."""

import asyncio
import json
import uuid

import pytest
import pytest_asyncio

from careloop_shared.testing import served, settings_for
from intake.main import IntakeSettings, build_app

from .test_intake_api import PHQ9_SEVERE, auth, register

pytestmark = pytest.mark.integration

ASSESSED = "careloop.intake.patient_assessed.v1"
PHQ2 = {"instrument": "phq-2", "answers": {"44250-9": 1, "44255-8": 1}}


@pytest_asyncio.fixture(scope="module")
async def intake(infra, database_factory):

    settings = settings_for(
        IntakeSettings,
        infra,
        await database_factory("intake_together"),
        command_group_slots=1,  # one transaction at a time: what arrives meanwhile goes in the next
    )
    app = build_app(settings)
    async with served(app, "http://intake") as (client, runtime):
        yield client, runtime


async def assess_all(client, agency, patients, body=PHQ2):
    return await asyncio.gather(
        *(client.post(f"/v1/patients/{p}/assessments", json=body, headers=agency) for p in patients)
    )


async def stored(runtime, ids):
    """Each assessment's row with the transaction that wrote it, and its event in the outbox."""
    rows = await runtime.pool.fetch(
        "SELECT a.id, a.patient_id, a.xmin::text AS tx, o.payload FROM assessments a"
        " LEFT JOIN outbox o ON o.event_type = $2"
        " AND (convert_from(o.payload, 'UTF8')::jsonb ->> 'assessment_id')::uuid = a.id"
        " WHERE a.id = ANY($1::uuid[])",
        [uuid.UUID(i) for i in ids],
        ASSESSED,
    )
    return {str(r["id"]): r for r in rows}


async def test_assessments_sent_together_share_transactions_and_each_gets_its_own_answer(intake):
    client, runtime = intake
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    patients = [await register(client, agency, given_name=f"Together{i}") for i in range(12)]
    answers = await assess_all(client, agency, patients)
    assert [r.status_code for r in answers] == [202] * 12, [r.text for r in answers]
    ids = [r.json()["id"] for r in answers]
    rows = await stored(runtime, ids)
    assert len(set(ids)) == 12 and set(rows) == set(ids)
    for patient, assessment in zip(patients, ids, strict=True):
        row = rows[assessment]
        assert str(row["patient_id"]) == patient  # each answer names its own request's assessment
        event = json.loads(row["payload"])
        assert (event["patient_id"], event["total_score"]) == (patient, 2)
    transactions = {r["tx"] for r in rows.values()}
    assert len(transactions) < 12, "requests that arrived together were not grouped"


async def test_a_refused_assessment_among_others_changes_nothing_for_them(intake):
    client, runtime = intake
    agency, other = auth(f"agency-{uuid.uuid4().hex[:6]}"), auth(f"agency-{uuid.uuid4().hex[:6]}")
    patients = [await register(client, agency, given_name=f"Refused{i}") for i in range(6)]
    elsewhere = await register(client, other, given_name="Elsewhere")
    asked = [*patients[:3], str(uuid.uuid4()), elsewhere, *patients[3:]]
    answers = await assess_all(client, agency, asked)
    assert [r.status_code for r in answers] == [202, 202, 202, 404, 404, 202, 202, 202]
    ids = [r.json()["id"] for r in answers if r.status_code == 202]
    rows = await stored(runtime, ids)
    assert sorted(str(r["patient_id"]) for r in rows.values()) == sorted(patients)
    assert all(r["payload"] is not None for r in rows.values())  # each with its event
    refused = await runtime.pool.fetchval(
        "SELECT count(*) FROM assessments WHERE patient_id = $1", uuid.UUID(elsewhere)
    )
    assert refused == 0
    # A bad body among them is refused at the door, as ever; the others are recorded.
    bad = {"instrument": "phq-2", "answers": {"44250-9": 9}}
    mixed = await asyncio.gather(
        *(
            client.post(f"/v1/patients/{p}/assessments", json=bad if i == 2 else PHQ2, headers=agency)
            for i, p in enumerate(patients)
        )
    )
    assert [r.status_code for r in mixed] == [202, 202, 422, 202, 202, 202]


async def test_one_patients_assessments_sent_together_keep_one_order_in_rows_and_events(intake):
    client, runtime = intake
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    patient = await register(client, agency, given_name="Order")
    others = [await register(client, agency, given_name=f"Order{i}") for i in range(3)]
    bodies = [{"instrument": "phq-2", "answers": {"44250-9": i % 4, "44255-8": 0}} for i in range(6)]
    sent = [(patient, b) for b in bodies] + [(o, PHQ9_SEVERE) for o in others]
    answers = await asyncio.gather(
        *(client.post(f"/v1/patients/{p}/assessments", json=b, headers=agency) for p, b in sent)
    )
    assert [r.status_code for r in answers] == [202] * len(sent)
    recorded = await runtime.pool.fetch(
        "SELECT id FROM assessments WHERE patient_id = $1 ORDER BY assessed_at, id", uuid.UUID(patient)
    )
    published = await runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1 AND key = $2 ORDER BY position", ASSESSED, patient
    )
    assert [str(r["id"]) for r in recorded] == [json.loads(r["payload"])["assessment_id"] for r in published]
    assert sorted(str(r["id"]) for r in recorded) == sorted(r.json()["id"] for r in answers[:6])


async def test_assessments_with_idempotency_keys_share_transactions_and_replay_each_its_own(intake):
    client, runtime = intake
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    patients = [await register(client, agency, given_name=f"Keyed{i}") for i in range(10)]

    async def send():
        return await asyncio.gather(
            *(
                client.post(
                    f"/v1/patients/{p}/assessments",
                    json=PHQ2,
                    headers={**agency, "Idempotency-Key": f"k-{p}"},
                )
                for p in patients
            )
        )

    first = await send()
    assert [r.status_code for r in first] == [202] * 10
    ids = [r.json()["id"] for r in first]
    rows = await stored(runtime, ids)
    assert [str(rows[i]["patient_id"]) for i in ids] == patients
    assert len({r["tx"] for r in rows.values()}) < 10, "keyed requests that arrived together were not grouped"
    again = await send()  # the same requests retried: each gets its own first answer back
    assert [r.json()["id"] for r in again] == ids
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in again)
    counted = await runtime.pool.fetchval(
        "SELECT count(*) FROM assessments WHERE patient_id = ANY($1::uuid[])",
        [uuid.UUID(p) for p in patients],
    )
    assert counted == 10


async def test_one_idempotency_key_sent_twice_at_once_among_others_is_recorded_once(intake):
    client, runtime = intake
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    patients = [await register(client, agency, given_name=f"Twice{i}") for i in range(5)]
    twice = patients[2]
    sent = [*patients, twice]  # the last repeats the third's request with its key, at once
    answers = await asyncio.gather(
        *(
            client.post(
                f"/v1/patients/{p}/assessments", json=PHQ2, headers={**agency, "Idempotency-Key": f"k-{p}"}
            )
            for p in sent
        )
    )
    assert [r.status_code for r in answers] == [202] * 6
    assert answers[2].json()["id"] == answers[5].json()["id"]
    replayed = [r.headers.get("Idempotent-Replayed") for r in (answers[2], answers[5])]
    assert sorted(replayed, key=str) == sorted([None, "true"], key=str)
    counts = await runtime.pool.fetch(
        "SELECT patient_id, count(*) AS n FROM assessments WHERE patient_id = ANY($1::uuid[]) GROUP BY 1",
        [uuid.UUID(p) for p in patients],
    )
    assert sorted(r["n"] for r in counts) == [1] * 5
    published = await runtime.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE event_type = $1 AND key = $2", ASSESSED, twice
    )
    assert published == 1
