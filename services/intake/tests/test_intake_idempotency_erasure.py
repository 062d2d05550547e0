"""A response kept for an Idempotency-Key replay goes with the patient's erasure (real database)."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from careloop_shared.db import as_agency
from careloop_shared.testing import bearer, served, settings_for
from intake.main import IntakeSettings, build_app

pytestmark = pytest.mark.integration

PATIENT = {
    "given_name": "Ilse",
    "family_name": "Varga",
    "birth_date": "1958-02-11",
    "preferred_language": "en",
    "contact_preference": "phone",
    "phone": "+1 555 0142",
}
PHQ2 = {"instrument": "phq-2", "answers": {"44250-9": 1, "44255-8": 2}}


def auth(agency: str, role: str = "care-manager") -> dict[str, str]:
    return bearer(agency, role, "u1")


@pytest_asyncio.fixture(scope="module")
async def intake(infra, database_factory):
    settings = settings_for(IntakeSettings, infra, await database_factory("intake_idem_erasure"))
    app = build_app(settings)
    async with served(app, "http://intake") as (c, runtime):
        yield c, runtime


async def _kept(runtime, agency: str) -> dict[str, uuid.UUID | None]:
    with as_agency(agency):
        rows = await runtime.pool.fetch(
            "SELECT key, patient_id FROM idempotency_keys WHERE scope = $1", agency
        )
    return {r["key"]: r["patient_id"] for r in rows}


async def test_erasure_deletes_the_responses_kept_for_the_patients_requests_and_no_one_elses(intake):
    client, runtime = intake
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    ids = []
    for n in range(2):
        patient = {**PATIENT, "family_name": ["Varga", "Okafor"][n], "birth_date": f"195{n}-02-11"}
        r = await client.post(
            "/v1/patients", json=patient, headers={**auth(agency), "Idempotency-Key": f"p{n}"}
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        r = await client.post(
            f"/v1/patients/{ids[-1]}/assessments",
            json=PHQ2,
            headers={**auth(agency), "Idempotency-Key": f"a{n}"},
        )
        assert r.status_code == 202, r.text
    kept = await _kept(runtime, agency)
    # Registration names no patient in its path; each assessment names its patient.
    assert kept == {"p0": None, "p1": None, "a0": uuid.UUID(ids[0]), "a1": uuid.UUID(ids[1])}

    erased = await client.post(
        f"/v1/patients/{ids[0]}/erasure", json={"reason": "request"}, headers=auth(agency, "supervisor")
    )
    assert erased.status_code == 200, erased.text
    assert await _kept(runtime, agency) == {"p0": None, "p1": None, "a1": uuid.UUID(ids[1])}

    # A retry of the erased patient's request runs anew and is refused; the other still replays.
    again = await client.post(
        f"/v1/patients/{ids[0]}/assessments", json=PHQ2, headers={**auth(agency), "Idempotency-Key": "a0"}
    )
    assert again.status_code == 410, again.text
    replay = await client.post(
        f"/v1/patients/{ids[1]}/assessments", json=PHQ2, headers={**auth(agency), "Idempotency-Key": "a1"}
    )
    assert replay.status_code == 202 and replay.headers.get("Idempotent-Replayed") == "true"
