"""Erasure in careplan against its real database and broker: intake's PatientErased blanks the free text
careplan keeps about the patient (sealed with the patient's data key, so in no table in the clear even
before), in every table, and the API refuses new free text for them with 410."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from careloop_shared.contracts import PatientErased
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
    settings = settings_for(
        CareplanSettings, infra, await database_factory("careplan_erasure"), consumer_backoff_s=0.01
    )
    app = build_app(settings, keys=FakePatientKeys())
    async with served(app, "http://careplan") as (client, runtime):
        yield client, runtime, infra.bootstrap_servers


async def send(careplan, event, message=None):
    _, runtime, bootstrap = careplan
    message = message or new_message(event)
    await publish_message(bootstrap, runtime.topic_for(event.type), message)
    return message


async def applied(careplan, message) -> None:
    """Wait until careplan's consumer has applied (or skipped) the event: its inbox names it."""
    pool = careplan[1].pool

    async def probe():
        return await pool.fetchval("SELECT true FROM inbox WHERE event_id = $1", message.envelope.id)

    await eventually(probe, what="the event in the inbox")


async def post(careplan, patient_id, path: str, body) -> httpx.Response:
    return await careplan[0].post(f"/v1/patients/{patient_id}{path}", json=body, headers=HEADERS)


async def patient_with_free_text(careplan, canary: str) -> tuple[uuid.UUID, str]:
    """A patient with a plan, a care team member named and reachable, and a note; returns the member."""
    client = careplan[0]
    patient_id = uuid.uuid4()
    await send(
        careplan,
        depression_found(patient_id, agency=AGENCY, at=datetime.now(UTC)),
    )

    async def planned():
        r = await client.get(f"/v1/patients/{patient_id}/care-plan", headers=HEADERS)
        return r.status_code == 200

    await eventually(planned, what="a plan")
    member = await post(
        careplan,
        patient_id,
        "/care-team",
        {
            "name": f"{canary} Name",
            "relationship": "family",
            "role": "primary-support",
            "contact": f"{canary}@x",
        },
    )
    assert member.status_code == 201, member.text
    note = {
        "member_id": member.json()["id"],
        "kind": "note",
        "note": f"{canary} drinks",
        "expected_version": 1,
    }
    assert (await post(careplan, patient_id, "/care-plan/contributions", note)).status_code == 201
    return patient_id, member.json()["id"]


async def tables_with(careplan, canary: str) -> set[str]:
    """Every table of careplan's database where the canary is written, in any column (events decoded)."""
    pool = careplan[1].pool
    tables = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    found = set()
    for (table,) in tables:
        rows = await pool.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t")  # every agency's
        if any(canary in r["row"] for r in rows):
            found.add(table)
    payloads = await pool.fetch("SELECT convert_from(payload, 'UTF8') AS p FROM outbox")
    if any(canary in r["p"] for r in payloads):
        found.add("outbox")
    return found


async def free_text(careplan, patient_id: uuid.UUID) -> list[tuple]:
    pool = careplan[1].pool
    members = await pool.fetch(
        "SELECT id, name, contact, relationship, role, status, updated_at, sealed_details"
        " FROM care_team_members WHERE patient_id = $1 ORDER BY id",
        patient_id,
    )
    notes = await pool.fetch(
        "SELECT id, kind, note, sealed_note FROM contributions WHERE patient_id = $1 ORDER BY id", patient_id
    )
    return [tuple(r) for r in (*members, *notes)]


async def test_erasure_blanks_the_patients_free_text_everywhere_and_refuses_more(careplan):
    erased, member = await patient_with_free_text(careplan, "Zanzibar-Quokka")
    kept, _ = await patient_with_free_text(careplan, "Kestrel-Marmalade")
    # Sealed: the canary is in no table of careplan's (nor the outbox) in the clear, even before erasure;
    # only the kernel's answer kept for an Idempotency-Key replay names a member added with one.
    assert await tables_with(careplan, "Zanzibar-Quokka") == set()
    replayable = await careplan[0].post(
        f"/v1/patients/{erased}/care-team",
        json={"name": "Zanzibar-Quokka Replayable", "relationship": "friend", "role": "x-y"},
        headers={**HEADERS, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert replayable.status_code == 201
    assert await tables_with(careplan, "Zanzibar-Quokka") == {"idempotency_keys"}
    kept_before = await free_text(careplan, kept)
    assert all(r[-1] is not None for r in await free_text(careplan, erased))  # every one sealed

    erasure = await send(
        careplan, PatientErased(patient_id=erased, agency_id=AGENCY, erased_at=datetime.now(UTC))
    )
    await applied(careplan, erasure)

    assert await tables_with(careplan, "Zanzibar-Quokka") == set()
    blanked = await free_text(careplan, erased)
    # The members stay, by relationship and role, named '' (the erased marker) and unreachable, nothing
    # sealed left; the note is NULL, sealed or not.
    members = [(*r[1:5], r[-1]) for r in blanked if len(r) > 4]
    assert sorted(members) == [
        ("", None, "family", "primary-support", None),
        ("", None, "friend", "x-y", None),
    ]
    assert [r[1:] for r in blanked if len(r) == 4] == [("note", None, None)]
    assert await free_text(careplan, kept) == kept_before
    team = await careplan[0].get(f"/v1/patients/{kept}/care-team", headers=HEADERS)
    assert [m["name"] for m in team.json()] == ["Kestrel-Marmalade Name"]

    # Redelivered, and erased again: nothing changes, the first time stands. (One patient's events share
    # a partition: once the later one is applied, the redelivered one was read before it.)
    await send(careplan, erasure.event, erasure)
    again = await send(
        careplan, PatientErased(patient_id=erased, agency_id=AGENCY, erased_at=datetime.now(UTC))
    )
    await applied(careplan, again)
    assert await free_text(careplan, erased) == blanked
    pool = careplan[1].pool
    assert await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", erasure.envelope.id) == 1
    erased_at = await pool.fetchval("SELECT erased_at FROM erased_patients WHERE patient_id = $1", erased)
    assert erased_at == erasure.event.erased_at

    # New free text for the erased patient is refused, saying when; what is not free text goes on.
    refused = [
        await post(
            careplan,
            erased,
            "/care-team",
            {"name": "Zanzibar-Quokka", "relationship": "friend", "role": "x-y"},
        ),
        await careplan[0].patch(
            f"/v1/patients/{erased}/care-team/{member}",
            json={"contact": "Zanzibar-Quokka@y"},
            headers=HEADERS,
        ),
        await post(
            careplan,
            erased,
            "/care-plan/contributions",
            {"member_id": member, "kind": "note", "note": "Zanzibar-Quokka again", "expected_version": 1},
        ),
    ]
    assert [r.status_code for r in refused] == [410, 410, 410]
    assert all(r.json()["erased_at"] == str(erased_at) for r in refused)
    assert all("Zanzibar" not in r.text for r in refused)
    role = await careplan[0].patch(
        f"/v1/patients/{erased}/care-team/{member}", json={"role": "decision-maker"}, headers=HEADERS
    )
    assert (role.status_code, role.json()["name"], role.json()["role"]) == (200, "", "decision-maker")
    assert await tables_with(careplan, "Zanzibar-Quokka") == set()
    # The other patient's team still takes notes.
    note = {
        "member_id": str(kept_before[0][0]),
        "kind": "note",
        "note": "Kestrel-Marmalade sleeps",
        "expected_version": 1,
    }
    assert (await post(careplan, kept, "/care-plan/contributions", note)).status_code == 201
