"""Sensitive data sealed with the patient's data key, and erasure by destroying it (real database)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import pytest_asyncio

from careloop_shared.crypto import Erased, Sealed
from careloop_shared.db import as_agency
from careloop_shared.testing import bearer, served, settings_for
from intake.erasure.keys import open_assessment
from intake.main import IntakeSettings, build_app

pytestmark = pytest.mark.integration

CANARY = "Zqxcanaryname"  # a name that can only come from this test
PATIENT = {
    "given_name": CANARY,
    "family_name": "Oyelaran",
    "birth_date": "1961-07-30",
    "preferred_language": "en",
    "contact_preference": "phone",
    "phone": "+1 555 0177",
}
ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
PHQ9 = {"instrument": "phq-9", "answers": dict.fromkeys(ITEMS, 2)}


def auth(agency: str, role: str = "care-manager", subject: str = "cm-ada") -> dict[str, str]:
    return bearer(agency, role, subject)


@pytest_asyncio.fixture(scope="module")
async def intake(infra, database_factory):
    settings = settings_for(IntakeSettings, infra, await database_factory("intake_erasure"))
    app = build_app(settings)
    async with served(app, "http://intake") as (c, runtime):
        yield c, runtime


async def _assessed(client: httpx.AsyncClient, agency: str) -> str:
    r = await client.post("/v1/patients", json=PATIENT, headers=auth(agency))
    assert r.status_code == 201, r.text
    patient_id = r.json()["id"]
    r = await client.post(f"/v1/patients/{patient_id}/assessments", json=PHQ9, headers=auth(agency))
    assert r.status_code == 202, r.text
    return str(patient_id)


async def _published(runtime, patient_id: str, event_type: str) -> list[dict]:
    with as_agency("*"):
        rows = await runtime.pool.fetch(
            "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2 ORDER BY position",
            patient_id,
            event_type,
        )
    return [json.loads(r["payload"]) for r in rows]


async def test_item_answers_are_sealed_in_the_database_and_the_event_and_readable_only_with_the_key(intake):
    client, runtime = intake
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    patient_id = await _assessed(client, agency)
    [event] = await _published(runtime, patient_id, "careloop.intake.patient_assessed.v1")
    # What goes on the topic: the totals, needs and risk in the clear; no item, no answer, no name.
    assert [o["code"] for o in event["observations"]] == ["44261-6"]
    assert event["needs"] and event["risk_level"]
    text = json.dumps(event)
    assert not any(item in text for item in ITEMS) and CANARY not in text
    with as_agency(agency):
        stored = await runtime.pool.fetchrow(
            "SELECT answers, observations, sealed FROM assessments WHERE patient_id = $1",
            uuid.UUID(patient_id),
        )
        key = await runtime.pool.fetchrow(
            "SELECT version, kek_id, wrapped FROM patient_keys WHERE patient_id = $1", uuid.UUID(patient_id)
        )
    assert stored["answers"] == {} and not any(item in json.dumps(stored["observations"]) for item in ITEMS)
    # Only the key opens them, and both copies hold the same answers.
    data_key = runtime.context.keys.data_key(uuid.UUID(patient_id), key)
    for sealed in (event["sealed"], stored["sealed"]):
        assert Sealed.model_validate(sealed).kid == f"{patient_id}/1"
        assert open_assessment(data_key, uuid.UUID(patient_id), sealed)["answers"] == PHQ9["answers"]
    # Reads open them for those allowed to see answers.
    r = await client.get(f"/v1/patients/{patient_id}/assessments", headers=auth(agency))
    [shown] = r.json()["items"]
    assert shown["erased"] is False and [o["code"] for o in shown["observations"]][:9] == ITEMS


async def test_erasure_destroys_the_key_so_every_copy_is_unreadable_and_reads_say_erased(intake):
    client, runtime = intake
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    patient_id = await _assessed(client, agency)
    [before] = await _published(runtime, patient_id, "careloop.intake.patient_assessed.v1")
    supervisor = auth(agency, role="supervisor", subject="sv-sam")
    reason = {"reason": "patient's request under state privacy law"}

    refused = await client.post(f"/v1/patients/{patient_id}/erasure", json=reason, headers=auth(agency))
    assert refused.status_code == 403  # a care manager may not
    elsewhere = auth("agency-elsewhere", role="supervisor")
    assert (
        await client.post(f"/v1/patients/{patient_id}/erasure", json=reason, headers=elsewhere)
    ).status_code == 404
    erased = await client.post(f"/v1/patients/{patient_id}/erasure", json=reason, headers=supervisor)
    assert erased.status_code == 200, erased.text
    assert erased.json()["patient_id"] == patient_id

    # The key is gone: the copy already published (topics, the case record, backups) no longer opens.
    with as_agency(agency):
        key = await runtime.pool.fetchrow(
            "SELECT kek_id, wrapped, erased_by, erasure_reason FROM patient_keys WHERE patient_id = $1",
            uuid.UUID(patient_id),
        )
        row = await runtime.pool.fetchrow(
            "SELECT given_name, family_name, phone FROM patients WHERE id = $1", uuid.UUID(patient_id)
        )
    assert (key["kek_id"], key["wrapped"], key["erased_by"]) == (None, None, "sv-sam")
    assert key["erasure_reason"] == reason["reason"]
    with pytest.raises(Erased):
        runtime.context.keys.data_key(uuid.UUID(patient_id), key)
    assert before["sealed"]["kid"] == f"{patient_id}/1"  # sealed under the key that no longer exists
    assert CANARY not in json.dumps(dict(row)) and row["phone"] is None

    # Reads answer clearly that it was erased; the pseudonymous scores and needs stay.
    for path in (f"/v1/patients/{patient_id}", f"/fhir/R4/Patient/{patient_id}"):
        gone = await client.get(path, headers=supervisor)
        assert gone.status_code == 410, (path, gone.text)
        assert "erased" in gone.text and CANARY not in gone.text
    [shown] = (await client.get(f"/v1/patients/{patient_id}/assessments", headers=supervisor)).json()["items"]
    assert shown["erased"] is True and [o["code"] for o in shown["observations"]] == ["44261-6"]
    assert shown["needs"] == before["needs"]
    listed = (await client.get("/v1/patients", headers=supervisor)).json()["items"]
    assert patient_id not in {p["id"] for p in listed}
    again = await client.post(f"/v1/patients/{patient_id}/assessments", json=PHQ9, headers=supervisor)
    assert again.status_code == 410
    twice = await client.post(f"/v1/patients/{patient_id}/erasure", json=reason, headers=supervisor)
    assert twice.status_code == 410 and "erased_at" in twice.json()

    # It is announced without the reason (free text) or any detail.
    [announced] = await _published(runtime, patient_id, "careloop.intake.patient_erased.v1")
    assert announced["actor_id"] == "sv-sam" and "reason" not in json.dumps(announced)
