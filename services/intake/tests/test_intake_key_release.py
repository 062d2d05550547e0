"""A patient's data key released to a service over HTTP, on the real database: the key intake seals the
patient with, audited naming the service, never cached, never logged; refused to people, to services the
key-release rules do not name, across agencies, and after erasure."""

from __future__ import annotations

import base64
import io
import logging
import uuid
from datetime import UTC, date, datetime

import httpx
import pytest
import pytest_asyncio
import structlog

from careloop_shared.db import ALL_AGENCIES, as_agency, insert_row
from careloop_shared.logging import configure_logging
from careloop_shared.testing import bearer, served, settings_for
from intake.erasure.keys import open_assessment
from intake.identity.sealed import open_identity
from intake.main import IntakeSettings, build_app

pytestmark = pytest.mark.integration

PATIENT = {
    "given_name": "Oihana",
    "family_name": "Larrea",
    "birth_date": "1957-05-21",
    "preferred_language": "eu",
    "contact_preference": "phone",
    "phone": "+1 555 0142",
}
PHQ2 = {"instrument": "phq-2", "answers": {"44250-9": 1, "44255-8": 2}}
KEY_PATH = "/v1/patients/{}/data-key"


def auth(agency: str, role: str = "care-manager", subject: str = "cm-ana") -> dict[str, str]:
    return bearer(agency, role, subject)


def service(agency: str, name: str = "careplan") -> dict[str, str]:
    """The token a service signs for itself, as ``HttpPatientKeys`` does."""
    return auth(agency, role="service", subject=name)


@pytest_asyncio.fixture(scope="module")
async def intake(infra, database_factory):
    settings = settings_for(
        IntakeSettings,
        infra,
        await database_factory("intake_key_release"),
        identity_seal_tick_s=3600,  # a row in the clear stays so until a test says otherwise
    )
    app = build_app(settings)
    async with served(app, "http://intake") as (c, runtime):
        yield c, runtime


@pytest.fixture
def log_lines():
    """The service's log lines, rendered as in production (JSON), while the test runs."""
    root, saved = logging.getLogger(), structlog.get_config()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("intake", "INFO", stream=stream)
    structlog.configure(cache_logger_on_first_use=False)
    yield lambda: stream.getvalue()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**saved)


def new_agency() -> str:
    return f"agency-{uuid.uuid4().hex[:8]}"


async def assessed_patient(client: httpx.AsyncClient, agency: str) -> uuid.UUID:
    r = await client.post("/v1/patients", json=PATIENT, headers=auth(agency))
    assert r.status_code == 201, r.text
    patient_id = r.json()["id"]
    r = await client.post(f"/v1/patients/{patient_id}/assessments", json=PHQ2, headers=auth(agency))
    assert r.status_code == 202, r.text
    return uuid.UUID(patient_id)


async def audit_of(client: httpx.AsyncClient, agency: str, patient_id: uuid.UUID) -> list[dict]:
    r = await client.get(
        "/v1/audit", params={"patient_id": str(patient_id)}, headers=auth(agency, "supervisor")
    )
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["route"] == "POST /v1/patients/{patient_id}/data-key"]


async def test_careplan_gets_the_key_that_opens_what_intake_sealed_for_the_patient(intake, log_lines):
    client, runtime = intake
    agency = new_agency()
    patient_id = await assessed_patient(client, agency)

    r = await client.post(KEY_PATH.format(patient_id), headers=service(agency))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert (body["patient_id"], body["kid"]) == (str(patient_id), f"{patient_id}/1")
    key = base64.b64decode(body["key"], validate=True)
    assert len(key) == 32

    # It is intake's own key for the patient: it opens their sealed details and item-level answers.
    with as_agency(agency):
        identity = await runtime.pool.fetchval("SELECT identity FROM patients WHERE id = $1", patient_id)
        sealed = await runtime.pool.fetchval(
            "SELECT sealed FROM assessments WHERE patient_id = $1", patient_id
        )
    assert open_identity(key, patient_id, identity)["given_name"] == "Oihana"
    assert open_assessment(key, patient_id, sealed)["answers"] == PHQ2["answers"]

    # Released again, the same key; each release is one entry in the audit log, naming the service.
    again = await client.post(KEY_PATH.format(patient_id), headers=service(agency, "followup"))
    assert again.json() == body
    entries = await audit_of(client, agency, patient_id)
    assert [(e["subject"], e["role"], e["what"], e["outcome"]) for e in entries] == [
        ("careplan", "service", "data-key", "allowed"),
        ("followup", "service", "data-key", "allowed"),
    ]
    assert {(e["entity_id"], e["agency_id"], e["patient_agency_id"], e["source"]) for e in entries} == {
        (body["kid"], agency, agency, "intake")
    }
    assert {e["route"] for e in entries} == {"POST /v1/patients/{patient_id}/data-key"}

    # The key is in no log line, the access log's line for the release included.
    logged = log_lines()
    assert '"route": "/v1/patients/{patient_id}/data-key"' in logged
    assert body["key"] not in logged and key.hex() not in logged


async def test_a_patient_registered_before_keys_existed_gets_one_made_and_kept(intake):
    client, runtime = intake
    agency = new_agency()
    patient_id, at = uuid.uuid4(), datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    legacy = {
        "id": patient_id,
        "agency_id": agency,
        "given_name": "Benat",
        "family_name": "Larrea",
        "name_key": "benat larrea",
        "birth_date": date(1958, 3, 14),
        "preferred_language": "eu",
        "contact_preference": "text",
        "phone": "+1 555 0143",
        "care_manager_id": "cm-ana",
        "created_at": at,
        "updated_at": at,
        "registered_by": "cm-ana",
        "registered_by_role": "care-manager",
    }
    with as_agency(ALL_AGENCIES):
        await insert_row(runtime.pool, "patients", legacy)

    first = await client.post(KEY_PATH.format(patient_id), headers=service(agency, "referral"))
    assert first.status_code == 200, first.text
    again = await client.post(KEY_PATH.format(patient_id), headers=service(agency))
    assert again.json() == first.json()
    with as_agency(agency):
        kept = await runtime.pool.fetch(
            "SELECT version, kek_id, wrapped, agency_id FROM patient_keys WHERE patient_id = $1", patient_id
        )
    [row] = kept  # made once, kept only wrapped
    assert row["agency_id"] == agency and row["wrapped"] is not None
    assert runtime.context.keys.data_key(patient_id, row) == base64.b64decode(first.json()["key"])


async def test_no_key_for_another_agency_for_an_erased_patient_or_without_a_token(intake):
    client, _ = intake
    agency = new_agency()
    patient_id = await assessed_patient(client, agency)
    path = KEY_PATH.format(patient_id)

    assert (await client.post(path)).status_code == 401
    elsewhere_agency = new_agency()
    elsewhere = await client.post(path, headers=service(elsewhere_agency))
    assert elsewhere.status_code == 404
    assert (await client.post(KEY_PATH.format(uuid.uuid4()), headers=service(agency))).status_code == 404

    reason = {"reason": "the patient asked to be forgotten"}
    erased = await client.post(
        f"/v1/patients/{patient_id}/erasure", json=reason, headers=auth(agency, "supervisor")
    )
    assert erased.status_code == 200, erased.text
    gone = await client.post(path, headers=service(agency))
    assert gone.status_code == 410
    said = datetime.fromisoformat(gone.json()["erased_at"])
    assert said == datetime.fromisoformat(erased.json()["erased_at"])
    assert "key" not in gone.json()
    # Nothing was released; the other agency's attempt is on the patient's record, refused.
    entries = await audit_of(client, agency, patient_id)
    assert [(e["agency_id"], e["outcome"]) for e in entries] == [(elsewhere_agency, "denied")]


async def test_people_and_services_the_rules_do_not_name_are_refused_and_that_is_audited(intake):
    client, _ = intake
    agency = new_agency()
    patient_id = await assessed_patient(client, agency)
    path = KEY_PATH.format(patient_id)

    for role in ("analyst", "supervisor", "care-manager"):
        r = await client.post(path, headers=auth(agency, role, subject="careplan"))
        assert r.status_code == 403
        assert r.json() == {
            "detail": f"role {role} lacks permission patient-key:release",
            "missing_permission": "patient-key:release",
        }
    analytics = await client.post(path, headers=service(agency, "analytics"))
    assert analytics.status_code == 403
    assert "key-release rules" in analytics.json()["detail"] and "key" not in analytics.json()
    # Not even whether the patient exists: an unknown one is refused the same way.
    unknown = await client.post(KEY_PATH.format(uuid.uuid4()), headers=service(agency, "analytics"))
    assert (unknown.status_code, unknown.json()) == (403, analytics.json())

    entries = await audit_of(client, agency, patient_id)
    assert [(e["subject"], e["role"], e["outcome"]) for e in entries] == [
        ("careplan", "analyst", "denied"),
        ("careplan", "supervisor", "denied"),
        ("careplan", "care-manager", "denied"),
        ("analytics", "service", "denied"),
    ]
