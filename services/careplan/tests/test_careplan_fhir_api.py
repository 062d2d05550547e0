"""careplan's ``/fhir/R4/`` over HTTP against its real database and broker: what a patient's searches
return validates as FHIR (``fhir.resources`` R4B) and references only what they return, the patient
and the conditions intake serves; each reads back by its id; another agency finds nothing; each role
sees what the permission matrix lets it; the CapabilityStatement and OpenAPI name every route."""

import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.contracts import Need, PatientAssessed, RiskLevel
from careloop_shared.events import new_message
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.testing import bearer, eventually, publish_message, served, settings_for
from careloop_shared.testing.keys import FakePatientKeys
from careplan.config import CareplanSettings
from careplan.main import build_app

pytestmark = pytest.mark.integration

TYPES = ("CarePlan", "Goal", "CareTeam", "ServiceRequest")
MEMBER = {
    "name": "Rosa Quispe",
    "relationship": "family",
    "role": "primary-support",
    "contact": "+1 555 0142",
}


def auth(agency: str, role: str = "care-manager", subject: str = "cm-1") -> dict[str, str]:
    return bearer(agency, role, subject)


@pytest_asyncio.fixture(scope="module")
async def careplan(infra, database_factory):
    settings = settings_for(
        CareplanSettings, infra, await database_factory("careplan_fhir"), consumer_backoff_s=0.01
    )
    app = build_app(settings, keys=FakePatientKeys())
    async with served(app, "http://careplan") as (client, runtime):
        yield client, runtime, infra.bootstrap_servers


async def _assessed(careplan, agency, patient_id, instrument, needs, risk) -> uuid.UUID:
    _, runtime, bootstrap = careplan
    event = PatientAssessed(
        patient_id=patient_id,
        agency_id=agency,
        assessment_id=uuid.uuid4(),
        instrument=instrument,
        rules_version="test",
        needs=[Need(code=n) for n in needs],
        risk_level=RiskLevel(risk),
        urgent_flags=[],
        assessed_at=datetime.now(UTC),
    )
    await publish_message(bootstrap, runtime.topic_for(event.type), new_message(event))
    return event.assessment_id


async def _at_version(client, agency, patient_id, version: int) -> dict:
    async def probe():
        r = await client.get(f"/v1/patients/{patient_id}/care-plan", headers=auth(agency))
        return r.json() if r.status_code == 200 and r.json()["version"] >= version else None

    return await eventually(probe, what=f"plan version {version}")


@pytest_asyncio.fixture(scope="module")
async def case(careplan):
    """A patient of a fresh agency: a plan in three versions (two screenings, a service request whose
    alternative was chosen), a care team member."""
    client = careplan[0]
    agency, patient_id = f"agency-{uuid.uuid4().hex[:6]}", uuid.uuid4()
    base, who = f"/v1/patients/{patient_id}", auth(agency)
    hrsn = await _assessed(
        careplan, agency, patient_id, "ahc-hrsn", ["food-insecurity", "housing-instability"], "high"
    )
    await _at_version(client, agency, patient_id, 1)
    phq = await _assessed(careplan, agency, patient_id, "phq-9", ["depression"], "high")
    await _at_version(client, agency, patient_id, 2)
    assert (await client.post(f"{base}/care-team", json=MEMBER, headers=who)).status_code == 201
    asked = {"service_code": "home-health-visits", "expected_version": 2}
    r = await client.post(f"{base}/service-requests", json=asked, headers=who)
    assert r.json()["decision"] == "not-met", r.text
    choice = {"alternative": "telehealth-check-ins", "expected_version": 2}
    r = await client.post(
        f"{base}/service-requests/{r.json()['service_request_id']}/choice", json=choice, headers=who
    )
    assert r.json() == {"plan_version": 3}
    conditions = {f"Condition/{hrsn}-food-insecurity", f"Condition/{hrsn}-housing-instability"}
    return agency, str(patient_id), conditions | {f"Condition/{phq}-depression"}


def resources_of(bundle: dict) -> list[dict]:
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    get_fhir_model_class("Bundle").model_validate(bundle)
    return [e["resource"] for e in bundle["entry"]]


async def search(client, agency, resource_type, patient_id, role="care-manager") -> list[dict]:
    r = await client.get(
        f"/fhir/R4/{resource_type}", params={"patient": patient_id}, headers=auth(agency, role)
    )
    assert (r.status_code, r.headers["content-type"]) == (200, FHIR_JSON), r.text
    return resources_of(r.json())


def references(resource: dict) -> list[dict]:
    refs = [resource.get("subject"), *resource.get("replaces", []), *resource.get("goal", [])]
    refs += [*resource.get("careTeam", []), *resource.get("addresses", [])]
    refs += [p.get("member") for p in resource.get("participant", [])]
    return refs + [g for a in resource.get("activity", []) for g in a["detail"].get("goal", [])]


async def test_a_patients_resources_validate_and_reference_only_what_its_searches_return(careplan, case):
    client = careplan[0]
    agency, patient_id, conditions = case
    found = {t: await search(client, agency, t, f"Patient/{patient_id}") for t in TYPES}
    everything = [r for rs in found.values() for r in rs]
    for resource in everything:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert [len(found[t]) for t in TYPES] == [3, 3, 1, 1]
    assert [p["status"] for p in found["CarePlan"]] == ["revoked", "revoked", "active"]
    [request] = found["ServiceRequest"]
    assert request["status"] == "revoked" and "chosen: telehealth-check-ins" in request["note"][0]["text"]
    known = {f"{r['resourceType']}/{r['id']}" for r in everything} | {f"Patient/{patient_id}"}
    for resource in everything:  # intake serves the patient and the conditions
        assert {x["reference"] for x in references(resource) if x} <= known | conditions, resource["id"]
    assert {a["reference"] for a in found["CarePlan"][2]["addresses"]} == conditions
    assert MEMBER["name"] not in str(found["CareTeam"]) and MEMBER["contact"] not in str(found["CareTeam"])
    for resource in everything:  # and each reads back by its id, the same
        r = await client.get(f"/fhir/R4/{resource['resourceType']}/{resource['id']}", headers=auth(agency))
        assert r.json() == resource


async def test_care_plan_versions_page_and_say_their_total_on_the_last_page(careplan, case):
    client = careplan[0]
    agency, patient_id, _ = case
    pages, url = [], f"/fhir/R4/CarePlan?subject={patient_id}&_count=2"
    while url:
        bundle = (await client.get(url, headers=auth(agency))).json()
        pages.append(bundle)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert [("total" in p, len(p["entry"])) for p in pages] == [(False, 2), (True, 1)]
    assert pages[1]["total"] == 3
    paged = [e["resource"]["id"] for p in pages for e in p["entry"]]
    assert paged == [p["id"] for p in await search(client, agency, "CarePlan", patient_id)]


async def test_another_agency_finds_nothing_and_reads_nothing(careplan, case):
    client = careplan[0]
    agency, patient_id, _ = case
    other = f"agency-{uuid.uuid4().hex[:6]}"
    for resource_type in TYPES:
        [mine, *_] = await search(client, agency, resource_type, patient_id)
        assert await search(client, other, resource_type, patient_id) == []
        r = await client.get(f"/fhir/R4/{resource_type}/{mine['id']}", headers=auth(other))
        assert (r.status_code, r.json()["resourceType"]) == (404, "OperationOutcome")


async def test_each_role_sees_what_the_permission_matrix_says(careplan, case):
    client = careplan[0]
    agency, patient_id, _ = case
    assert len(await search(client, agency, "CarePlan", patient_id, role="supervisor")) == 3
    for role in ("analyst", "provider", "admin"):
        for resource_type in TYPES:
            r = await client.get(
                f"/fhir/R4/{resource_type}", params={"patient": patient_id}, headers=auth(agency, role)
            )
            assert (r.status_code, r.headers["content-type"]) == (403, FHIR_JSON)
            assert r.json()["issue"][0]["code"] == "forbidden"


async def test_the_capability_statement_and_the_openapi_document_name_every_fhir_route(careplan):
    client = careplan[0]
    r = await client.get("/fhir/R4/metadata", headers=auth("agency-x", "analyst"))
    statement = get_fhir_model_class("CapabilityStatement").model_validate(r.json())
    served = {res.type: {i.code for i in res.interaction} for res in statement.rest[0].resource}
    assert served == {t: {"read", "search-type"} for t in TYPES} | {"AuditEvent": {"search-type"}}
    params = {res.type: {p.name for p in res.searchParam} for res in statement.rest[0].resource}
    assert params == {t: {"patient", "subject"} for t in TYPES} | {
        "AuditEvent": {"patient", "altid", "date", "outcome"}
    }
    paths = (await client.get("/openapi.json")).json()["paths"]
    ids = {
        "CarePlan": "care_plan_id",
        "Goal": "goal_id",
        "CareTeam": "care_team_id",
        "ServiceRequest": "request_id",
    }
    assert {p for p in paths if p.startswith("/fhir/R4/")} == {"/fhir/R4/metadata", "/fhir/R4/AuditEvent"} | {
        f"/fhir/R4/{t}" for t in TYPES
    } | {f"/fhir/R4/{t}/{{{name}}}" for t, name in ids.items()} | {
        f"/fhir/R4/{t}/_search"
        for t in served  # every search, by POST too
    }
    r = await client.get("/fhir/R4/Goal", headers=auth("agency-x"))  # no patient named
    assert (r.status_code, r.json()["issue"][0]["diagnostics"]) == (
        422,
        "query.patient: search by one patient: patient=<id> or subject=<id>",
    )


async def test_every_fhir_read_of_plan_content_or_the_care_team_is_audited_as_v1_reads_are(careplan, case):
    client = careplan[0]
    agency, patient_id, _ = case
    [*_, current] = await search(client, agency, "CarePlan", patient_id)
    [team] = await search(client, agency, "CareTeam", patient_id)
    plan_id = team["id"]
    [member] = (await client.get(f"/v1/patients/{patient_id}/care-team", headers=auth(agency))).json()
    ana = auth(agency, subject="cm-ana-fhir")
    [request] = await search(client, agency, "ServiceRequest", patient_id)
    for path in (
        f"/fhir/R4/CarePlan/{current['id']}",
        f"/fhir/R4/Goal?patient={patient_id}&_count=1",
        f"/fhir/R4/CareTeam/{plan_id}",
        f"/fhir/R4/ServiceRequest?subject={patient_id}",
    ):
        assert (await client.get(path, headers=ana)).status_code == 200, path
    supervisor = auth(agency, role="supervisor")
    trail = await client.get(f"/v1/audit?patient_id={patient_id}&limit=200", headers=supervisor)
    seen = [
        (e["what"], e["entity_id"], e["route"])
        for e in trail.json()["items"]
        if e["subject"] == "cm-ana-fhir"
    ]
    assert seen == [
        ("plan", f"{plan_id}/v3", "GET /fhir/R4/CarePlan/{care_plan_id}"),
        ("plan", f"{plan_id}/v3", "GET /fhir/R4/Goal"),  # as the latest version holding it
        ("care-team", member["id"], "GET /fhir/R4/CareTeam/{care_team_id}"),
        ("service-request", request["id"], "GET /fhir/R4/ServiceRequest"),
    ]
