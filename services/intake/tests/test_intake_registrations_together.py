"""Registrations and consents sent together share transactions (careloop_shared.command_groups), against
the real database: each request gets its own answer, its own rows and its own events; a likely duplicate
among them is refused as it would be alone, and only it."""

import asyncio
import uuid

import pytest

from .test_intake_api import PATIENT, REGISTERED, auth, outbox, register
from .test_intake_assessments_together import intake  # noqa: F401  (the fixture: one slot)

pytestmark = pytest.mark.integration

CONSENTED = "careloop.intake.consent_recorded.v1"
CONSENT = {"purpose": "referral", "agencies": ["agency-food-bank"], "program_categories": ["food-assistance"]}


async def register_all(client, agency, people, keys=None):
    return await asyncio.gather(
        *(
            client.post(
                "/v1/patients",
                json={**PATIENT, **person},
                headers={**agency, **({"Idempotency-Key": keys[i]} if keys else {})},
            )
            for i, person in enumerate(people)
        )
    )


async def transactions(runtime, table, ids):
    rows = await runtime.pool.fetch(
        f"SELECT id, xmin::text AS tx FROM {table} WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in ids]
    )
    assert sorted(str(r["id"]) for r in rows) == sorted(ids)
    return {r["tx"] for r in rows}


async def test_registrations_sent_together_share_transactions_and_each_gets_its_own_patient(intake):  # noqa: F811
    client, runtime = intake
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    people = [{"given_name": f"Together{i}", "postal_code": f"9{i:04d}"} for i in range(12)]
    answers = await register_all(client, agency, people)
    assert [r.status_code for r in answers] == [201] * 12, [r.text for r in answers]
    ids = [r.json()["id"] for r in answers]
    assert len(set(ids)) == 12
    assert len(await transactions(runtime, "patients", ids)) < 12, "registrations were not grouped"
    for person, patient in zip(people, ids, strict=True):
        got = (await client.get(f"/v1/patients/{patient}", headers=agency)).json()
        assert (got["given_name"], got["postal_code"]) == (person["given_name"], person["postal_code"])
        events = await outbox(runtime, patient)
        assert [t for t, _ in events] == REGISTERED  # its own events, once each
        assert events[0][1]["postal_area"] == person["postal_code"][:3]
    keys = await runtime.pool.fetchval(
        "SELECT count(*) FROM patient_keys WHERE patient_id = ANY($1::uuid[])", [uuid.UUID(i) for i in ids]
    )
    assigned = await runtime.pool.fetchval(
        "SELECT count(*) FROM care_manager_assignments WHERE patient_id = ANY($1::uuid[])",
        [uuid.UUID(i) for i in ids],
    )
    assert (keys, assigned) == (12, 12)


async def test_a_likely_duplicate_among_registrations_sent_together_is_refused_alone(intake):  # noqa: F811
    client, runtime = intake
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    kept = await register(client, agency, given_name="Kept")
    people = [
        {"given_name": "Twin"},
        {"given_name": "Other0"},
        {"given_name": "Kept"},  # the patient registered before
        {"given_name": "Other1"},
        {"given_name": "twin "},  # the first one again, as the blind index normalises names
        {"given_name": "Other2"},
    ]
    answers = await register_all(client, agency, people)
    codes = [r.status_code for r in answers]
    assert [codes[i] for i in (1, 3, 5)] == [201] * 3, [r.text for r in answers]
    assert codes[2] == 409 and answers[2].json()["existing_id"] == kept
    twins = [answers[0], answers[4]]
    assert sorted(r.status_code for r in twins) == [201, 409]  # one of the two, whichever went first
    [won] = [r for r in twins if r.status_code == 201]
    [lost] = [r for r in twins if r.status_code == 409]
    assert lost.json()["existing_id"] == won.json()["id"]
    registered = await runtime.pool.fetch(
        "SELECT o.key FROM outbox o WHERE o.event_type = $1 AND o.key = ANY($2::text[])",
        REGISTERED[0],
        [won.json()["id"], *(answers[i].json()["id"] for i in (1, 3, 5))],
    )
    assert len(registered) == 4
    agency_patients = (await client.get("/v1/patients", headers=agency)).json()
    names = sorted(p["given_name"] for p in agency_patients["items"])
    assert len(names) == 5 and names.count("Kept") == 1


async def test_keyed_registrations_sent_together_replay_each_its_own(intake):  # noqa: F811
    client, runtime = intake
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    people = [{"given_name": f"Keyed{i}"} for i in range(8)]
    keys = [f"reg-{uuid.uuid4().hex}" for _ in people]
    # The third request sent twice at once with its key: one patient, the same answer twice.
    first = await register_all(client, agency, [*people, people[2]], keys=[*keys, keys[2]])
    assert [r.status_code for r in first] == [201] * 9, [r.text for r in first]
    ids = [r.json()["id"] for r in first]
    assert ids[2] == ids[8] and len(set(ids)) == 8
    replayed = [first[i].headers.get("Idempotent-Replayed") for i in (2, 8)]
    assert sorted(replayed, key=str) == sorted([None, "true"], key=str)
    again = await register_all(client, agency, people, keys=keys)
    assert [r.json()["id"] for r in again] == ids[:8]
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in again)
    counted = await runtime.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE event_type = $1 AND key = ANY($2::text[])", REGISTERED[0], ids[:8]
    )
    assert counted == 8


async def consent_all(client, agency, patients):
    return await asyncio.gather(
        *(client.post(f"/v1/patients/{p}/consents", json=CONSENT, headers=agency) for p in patients)
    )


async def test_consents_sent_together_share_transactions_and_a_refusal_changes_nothing_else(intake):  # noqa: F811
    client, runtime = intake
    agency, other = auth(f"agency-{uuid.uuid4().hex[:6]}"), auth(f"agency-{uuid.uuid4().hex[:6]}")
    patients = [await register(client, agency, given_name=f"Consent{i}") for i in range(8)]
    answers = await consent_all(client, agency, patients)
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    ids = [r.json()["id"] for r in answers]
    assert len(await transactions(runtime, "consents", ids)) < 8, "consents were not grouped"
    # Again, with a patient unknown and another agency's among them: refused, each alone; the rest kept.
    elsewhere = await register(client, other, given_name="Elsewhere")
    mixed = await consent_all(client, agency, [*patients[:4], str(uuid.uuid4()), elsewhere, *patients[4:]])
    assert [r.status_code for r in mixed] == [201] * 4 + [404, 404] + [201] * 4, [r.text for r in mixed]
    second = [r.json()["id"] for r in mixed if r.status_code == 201]
    for patient, consents in zip(patients, zip(ids, second, strict=True), strict=True):
        events = [body for t, body in await outbox(runtime, patient) if t == CONSENTED]
        assert [e["consent_id"] for e in events] == list(consents)  # its own, in the order recorded
        listed = (await client.get(f"/v1/patients/{patient}/consents", headers=agency)).json()
        assert sorted(c["id"] for c in listed) == sorted(consents)
    nothing = await runtime.pool.fetchval(
        "SELECT count(*) FROM consents WHERE patient_id = $1", uuid.UUID(elsewhere)
    )
    assert nothing == 0
