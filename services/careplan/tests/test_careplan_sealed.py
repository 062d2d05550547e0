"""The care team's free text sealed with the patient's data key, against careplan's real database (intake's
keys faked): the rows hold no name, contact detail or note in the clear, the API answers them opened,
shows them as erased once the key is destroyed, and answers 503 while intake cannot give the key."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.events import new_message
from careloop_shared.testing import bearer, eventually, publish_message, served, settings_for
from careloop_shared.testing.intake_events import depression_found
from careloop_shared.testing.keys import FakePatientKeys
from careplan.config import CareplanSettings
from careplan.main import build_app

pytestmark = pytest.mark.integration

AGENCY = f"agency-{uuid.uuid4().hex[:6]}"
HEADERS = bearer(AGENCY)


@pytest_asyncio.fixture(scope="module")
async def careplan(infra, database_factory):
    keys = FakePatientKeys()
    settings = settings_for(
        CareplanSettings, infra, await database_factory("careplan_sealed"), consumer_backoff_s=0.01
    )
    app = build_app(settings, keys=keys)
    async with served(app, "http://careplan") as (client, runtime):
        yield client, runtime, keys, infra.bootstrap_servers


@pytest.fixture
def keys(careplan) -> FakePatientKeys:
    keys = careplan[2]
    keys.down = False
    return keys


async def planned(careplan) -> uuid.UUID:
    client, runtime, _, bootstrap = careplan
    patient_id = uuid.uuid4()
    assessed = depression_found(patient_id, agency=AGENCY, at=datetime.now(UTC))
    await publish_message(bootstrap, runtime.topic_for(assessed.type), new_message(assessed))

    async def has_plan():
        r = await client.get(f"/v1/patients/{patient_id}/care-plan", headers=HEADERS)
        return r.status_code == 200

    await eventually(has_plan, what="a plan")
    return patient_id


async def with_free_text(careplan, canary: str) -> tuple[uuid.UUID, dict]:
    """A patient with a plan, a member named and reachable, and a note; returns the member as answered."""
    client = careplan[0]
    patient_id = await planned(careplan)
    member = {
        "name": f"{canary} Name",
        "relationship": "family",
        "role": "primary-support",
        "contact": f"{canary}@x",
    }
    added = await client.post(f"/v1/patients/{patient_id}/care-team", json=member, headers=HEADERS)
    assert added.status_code == 201, added.text
    assert (added.json()["name"], added.json()["contact"]) == (member["name"], member["contact"])
    note = {
        "member_id": added.json()["id"],
        "kind": "note",
        "note": f"{canary} sleeps",
        "expected_version": 1,
    }
    noted = await client.post(
        f"/v1/patients/{patient_id}/care-plan/contributions", json=note, headers=HEADERS
    )
    assert noted.status_code == 201, noted.text
    return patient_id, added.json()


async def stored(careplan, patient_id: uuid.UUID) -> tuple[list[dict], list[dict]]:
    """The patient's rows as the tables hold them, every column, read past the API."""
    pool = careplan[1].pool
    with as_agency(ALL_AGENCIES):
        members = await pool.fetch("SELECT * FROM care_team_members WHERE patient_id = $1", patient_id)
        notes = await pool.fetch("SELECT * FROM contributions WHERE patient_id = $1", patient_id)
    return [dict(r) for r in members], [dict(r) for r in notes]


async def tables_with(careplan, canary: str) -> set[str]:
    """Every table (and the outbox's payloads) where the canary is written, in any column."""
    pool = careplan[1].pool
    found = set()
    with as_agency(ALL_AGENCIES):
        for (table,) in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            rows = await pool.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t")
            if any(canary in r["row"] for r in rows):
                found.add(table)
        payloads = await pool.fetch("SELECT convert_from(payload, 'UTF8') AS p FROM outbox")
    if any(canary in r["p"] for r in payloads):
        found.add("outbox")
    return found


async def read_back(careplan, patient_id: uuid.UUID) -> tuple[httpx.Response, httpx.Response]:
    client = careplan[0]
    team = await client.get(f"/v1/patients/{patient_id}/care-team", headers=HEADERS)
    notes = await client.get(f"/v1/patients/{patient_id}/care-team/contributions", headers=HEADERS)
    return team, notes


async def test_the_rows_hold_only_sealed_text_and_the_api_answers_it_opened(careplan, keys):
    patient_id, member = await with_free_text(careplan, "Okapi-Lantern")
    members, notes = await stored(careplan, patient_id)
    assert [(m["name"], m["contact"], m["sealed_details"]["kid"]) for m in members] == [
        (None, None, keys.keys[patient_id].kid)
    ]
    assert [(n["note"], n["sealed_note"]["kid"]) for n in notes] == [(None, keys.keys[patient_id].kid)]
    assert await tables_with(careplan, "Okapi-Lantern") == set()
    team, contributions = await read_back(careplan, patient_id)
    assert [(m["id"], m["name"], m["contact"]) for m in team.json()] == [
        (member["id"], "Okapi-Lantern Name", "Okapi-Lantern@x")
    ]
    assert [c["note"] for c in contributions.json()["items"]] == ["Okapi-Lantern sleeps"]
    changed = await careplan[0].patch(
        f"/v1/patients/{patient_id}/care-team/{member['id']}",
        json={"contact": "Wombat-Lantern@y"},
        headers=HEADERS,
    )
    assert (changed.status_code, changed.json()["name"], changed.json()["contact"]) == (
        200,
        "Okapi-Lantern Name",
        "Wombat-Lantern@y",
    )
    assert await tables_with(careplan, "Wombat-Lantern") == set()


async def test_a_change_asks_for_the_key_before_it_opens_its_unit_of_work(careplan, keys, monkeypatch):
    """No pooled connection waits on intake: the handler then finds the key cached (intake's client)."""
    patient_id = await planned(careplan)
    runtime, happened = careplan[1], []
    opened, asked = runtime.uow, keys.key

    def unit_of_work(*args, **kwargs):
        happened.append("unit of work")
        return opened(*args, **kwargs)

    async def key(agency_id, patient_id):
        happened.append("key")
        return await asked(agency_id, patient_id)

    monkeypatch.setattr(runtime, "uow", unit_of_work)
    monkeypatch.setattr(keys, "key", key)
    added = await careplan[0].post(
        f"/v1/patients/{patient_id}/care-team",
        json={"name": "Ibis-Kettle", "relationship": "friend", "role": "x-y"},
        headers=HEADERS,
    )
    assert added.status_code == 201
    assert happened[:2] == ["key", "unit of work"]


async def test_a_retry_with_the_same_idempotency_key_replays_and_keeps_one_member(careplan, keys):
    """A retry is compared by its command, never by what is sealed (new each time): it still replays."""
    patient_id = await planned(careplan)
    member = {"name": "Marten-Ladle", "relationship": "friend", "role": "x-y"}
    headers = {**HEADERS, "Idempotency-Key": str(uuid.uuid4())}
    path = f"/v1/patients/{patient_id}/care-team"
    first, again = [await careplan[0].post(path, json=member, headers=headers) for _ in range(2)]
    assert (first.status_code, again.status_code, again.headers.get("idempotent-replayed")) == (
        201,
        201,
        "true",
    )
    assert again.json() == first.json() and first.json()["name"] == "Marten-Ladle"
    assert len((await stored(careplan, patient_id))[0]) == 1


async def test_a_patient_whose_key_was_destroyed_reads_as_erased(careplan, keys):
    patient_id, member = await with_free_text(careplan, "Heron-Teacup")
    keys.erase(patient_id)
    team, contributions = await read_back(careplan, patient_id)
    assert (team.status_code, contributions.status_code) == (200, 200)
    assert [(m["id"], m["name"], m["contact"], m["relationship"]) for m in team.json()] == [
        (member["id"], "", None, "family")
    ]
    assert [(c["kind"], c["note"]) for c in contributions.json()["items"]] == [("note", None)]
    # A new name cannot be sealed any more: refused, and nothing is kept.
    refused = await careplan[0].post(
        f"/v1/patients/{patient_id}/care-team",
        json={"name": "Heron-Teacup Again", "relationship": "friend", "role": "x-y"},
        headers=HEADERS,
    )
    assert refused.status_code == 410 and "Heron" not in refused.text
    assert len((await stored(careplan, patient_id))[0]) == 1


async def test_while_intake_cannot_give_the_key_changes_and_reads_answer_503_and_keep_nothing(careplan, keys):
    patient_id, member = await with_free_text(careplan, "Lynx-Saucepan")
    before = await stored(careplan, patient_id)
    keys.down = True
    client, base = careplan[0], f"/v1/patients/{patient_id}"
    answers = [
        await client.post(
            f"{base}/care-team",
            json={"name": "Lynx-Saucepan Two", "relationship": "friend", "role": "x-y"},
            headers=HEADERS,
        ),
        await client.patch(
            f"{base}/care-team/{member['id']}", json={"name": "Lynx-Saucepan Three"}, headers=HEADERS
        ),
        await client.post(
            f"{base}/care-plan/contributions",
            json={"member_id": member["id"], "kind": "note", "note": "Lynx-Saucepan", "expected_version": 1},
            headers=HEADERS,
        ),
        *await read_back(careplan, patient_id),
    ]
    assert [a.status_code for a in answers] == [503] * 5
    assert all(a.headers["retry-after"].isdigit() and "Lynx" not in a.text for a in answers)
    assert await stored(careplan, patient_id) == before
    keys.down = False
    team, _ = await read_back(careplan, patient_id)
    assert [m["name"] for m in team.json()] == ["Lynx-Saucepan Name"]


async def test_rows_written_before_sealing_read_in_the_clear(careplan, keys):
    patient_id, member = await with_free_text(careplan, "Gecko-Umbrella")
    pool = careplan[1].pool
    with as_agency(AGENCY):  # as migration 006 found them
        await pool.execute(
            "UPDATE care_team_members SET name = 'Before Sealing', contact = 'before@x',"
            " sealed_details = NULL WHERE id = $1",
            uuid.UUID(member["id"]),
        )
        await pool.execute(
            "UPDATE contributions SET note = 'noted before', sealed_note = NULL WHERE patient_id = $1",
            patient_id,
        )
    keys.down = True  # rows in the clear need no key
    team, contributions = await read_back(careplan, patient_id)
    assert [(m["name"], m["contact"]) for m in team.json()] == [("Before Sealing", "before@x")]
    assert [c["note"] for c in contributions.json()["items"]] == ["noted before"]


async def test_the_routes_that_need_the_key_document_503(careplan):
    document = (await careplan[0].get("/openapi.json")).json()
    base = "/v1/patients/{patient_id}"
    routes = [
        ("post", f"{base}/care-team"),
        ("patch", f"{base}/care-team/{{member_id}}"),
        ("post", f"{base}/care-plan/contributions"),
        ("get", f"{base}/care-team"),
        ("get", f"{base}/care-team/contributions"),
    ]
    for method, path in routes:
        answer = document["paths"][path][method]["responses"]["503"]
        assert "intake" in answer["description"] and "Retry-After" in answer["headers"], (method, path)
