"""referral's ``/fhir/R4/`` over HTTP against its real database and broker: a patient's referrals (made
from a plan, rejected, re-routed, completed) as ServiceRequests and Tasks that validate as FHIR
(``fhir.resources`` R4B) and whose focus is the request the same search returns; another agency finds
nothing; a provider sees exactly what ``/v1/referrals`` shows it; the directory as Organization,
HealthcareService and Location; refusals as OperationOutcome."""

import io
import json
import logging
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
import structlog
from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.contracts import ConsentRecorded, FollowUpCadence, Intervention, PlanUpdated, RiskLevel
from careloop_shared.events import new_message
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.logging import configure_logging
from careloop_shared.testing import bearer, eventually, publish_message, served, settings_for
from referral.config import ReferralSettings
from referral.main import build_app

pytestmark = pytest.mark.integration

HOME = "agency-home"


def auth(agency: str, role: str = "care-manager") -> dict[str, str]:
    return bearer(agency, role, "s-1")


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(scope="module")
async def referral(infra, database_factory):
    settings = settings_for(
        ReferralSettings,
        infra,
        await database_factory("referral_fhir"),
        consumer_backoff_s=0.01,
        relay_poll_interval_s=0.2,
    )
    app = build_app(settings)
    async with served(app, "http://referral") as (client, runtime):
        yield client, runtime, infra.bootstrap_servers


async def program(client, category: str, label: str) -> dict[str, str]:
    """A new organization (one location) of a new agency, with one program in ``category``."""
    admin = auth("agency-network", "admin")
    made = {
        "agency": unique("agency"),
        "org": unique("org"),
        "service": unique(label),
        "location": unique("loc"),
    }
    location = {"id": made["location"], "name": "Main office", "postal_code": "94110"}
    org = {"id": made["org"], "agency_id": made["agency"], "name": "Test org", "locations": [location]}
    assert (await client.post("/v1/organizations", json=org, headers=admin)).status_code == 201
    service = {
        "id": made["service"],
        "organization_id": made["org"],
        "name": "Test program",
        "program_category": category,
        "location_ids": [made["location"]],
    }
    assert (await client.post("/v1/services", json=service, headers=admin)).status_code == 201
    return made


async def publish(runtime, bootstrap, event) -> None:
    await publish_message(bootstrap, runtime.topic_for(event.type), new_message(event))


@pytest_asyncio.fixture(scope="module")
async def case(referral):
    """A patient referred to a first program, rejected for no capacity, re-routed to a second one that
    accepted and completed it: two Tasks on one ServiceRequest."""
    client, runtime, bootstrap = referral
    category = unique("cat")
    first, second = await program(client, category, "a-first"), await program(client, category, "b-second")
    patient_id, at = uuid.uuid4(), datetime(2026, 1, 1, tzinfo=UTC)
    consent = ConsentRecorded(
        patient_id=patient_id,
        agency_id=HOME,
        consent_id=uuid.uuid4(),
        purpose="referral",
        agencies=[],
        program_categories=[category],
        period_start=at,
        recorded_at=at,
    )
    await publish(runtime, bootstrap, consent)
    await eventually(
        lambda: runtime.pool.fetchval("SELECT true FROM consents WHERE id = $1", consent.consent_id)
    )
    item = Intervention(
        id=uuid.uuid4(),
        need="food-insecurity",
        kind="referral",
        program_category=category,
        needs_referral=True,
    )
    plan = PlanUpdated(
        patient_id=patient_id,
        agency_id=HOME,
        plan_id=uuid.uuid4(),
        version=1,
        status="active",
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=[item],
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
    )
    await publish(runtime, bootstrap, plan)
    made = await eventually(
        lambda: runtime.pool.fetchval("SELECT id FROM referrals WHERE intervention_id = $1", item.id),
        what="referral made",
    )

    async def move(referral_id, agency: str, **body) -> dict:
        r = await client.post(
            f"/v1/referrals/{referral_id}/status", json=body, headers=auth(agency, "provider")
        )
        assert r.status_code == 200, r.text
        return r.json()

    rerouted = (await move(made, first["agency"], status="rejected", reason="no-capacity"))["rerouted_to"]
    await move(rerouted, second["agency"], status="accepted")
    await move(rerouted, second["agency"], status="completed", outcome={"service_delivered": True})
    return {
        "patient": str(patient_id),
        "first": first,
        "second": second,
        "made": str(made),
        "rerouted": rerouted,
    }


def resources_of(r: httpx.Response) -> list[dict]:
    assert (r.status_code, r.headers["content-type"]) == (200, FHIR_JSON), r.text
    bundle = r.json()
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "searchset"
    return [e["resource"] for e in bundle["entry"]]


async def search(client, resource_type: str, headers: dict, **params) -> list[dict]:
    return resources_of(await client.get(f"/fhir/R4/{resource_type}", params=params, headers=headers))


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


async def test_tasks_focus_the_service_request_the_same_search_returns_and_all_validate(referral, case):
    client, _, _ = referral
    home = auth(HOME)
    [request] = await search(client, "ServiceRequest", home, patient=case["patient"])
    tasks = await search(client, "Task", home, patient=f"Patient/{case['patient']}")
    for resource in (request, *tasks):
        valid(resource)
    assert [t["id"] for t in tasks] == [case["made"], case["rerouted"]]
    assert {t["focus"]["reference"] for t in tasks} == {f"ServiceRequest/{request['id']}"}
    rejected, completed = tasks
    assert (rejected["status"], rejected["statusReason"]["text"]) == ("rejected", "No capacity")
    assert rejected["owner"] == {"reference": f"Organization/{case['first']['org']}"}
    assert (completed["status"], completed["output"][0]["valueCodeableConcept"]["text"]) == (
        "completed",
        "Service delivered",
    )
    assert completed["owner"] == {"reference": f"Organization/{case['second']['org']}"}
    assert (request["status"], request["performer"]) == ("completed", [completed["owner"]])
    for resource in (request, *tasks):  # each reads back by its id, the same
        r = await client.get(f"/fhir/R4/{resource['resourceType']}/{resource['id']}", headers=home)
        assert (r.status_code, r.headers["content-type"], r.json()) == (200, FHIR_JSON, resource)
    owner = await client.get(f"/fhir/R4/{completed['owner']['reference']}", headers=home)
    assert valid(owner.json())["identifier"][0]["value"] == case["second"]["agency"]
    page = (await client.get(f"/fhir/R4/Task?patient={case['patient']}&_count=1", headers=home)).json()
    assert [link["relation"] for link in page["link"]] == ["self", "next"] and "total" not in page


async def test_another_agency_finds_nothing_and_a_provider_sees_what_v1_shows_it(referral, case):
    client, _, _ = referral
    other = auth(unique("agency"))
    for resource_type in ("ServiceRequest", "Task"):
        assert await search(client, resource_type, other, patient=case["patient"]) == []
    r = await client.get(f"/fhir/R4/Task/{case['made']}", headers=other)
    assert (r.status_code, r.json()["resourceType"], r.json()["issue"][0]["code"]) == (
        404,
        "OperationOutcome",
        "not-found",
    )
    [request] = await search(client, "ServiceRequest", auth(HOME), patient=case["patient"])
    assert (await client.get(f"/fhir/R4/ServiceRequest/{request['id']}", headers=other)).status_code == 404
    for side, mine, theirs in (("first", "made", "rerouted"), ("second", "rerouted", "made")):
        provider = auth(case[side]["agency"], "provider")
        listed = await client.get("/v1/referrals", params={"patient_id": case["patient"]}, headers=provider)
        tasks = await search(client, "Task", provider, patient=case["patient"])
        assert [t["id"] for t in tasks] == [r["id"] for r in listed.json()["items"]] == [case[mine]]
        [seen] = await search(client, "ServiceRequest", provider, patient=case["patient"])
        assert seen["id"] == request["id"]  # the same request, as the provider's own referral shows it
        assert seen["performer"] == [{"reference": f"Organization/{case[side]['org']}"}]
        assert (await client.get(f"/fhir/R4/Task/{case[theirs]}", headers=provider)).status_code == 404
    [first_seen] = await search(
        client, "ServiceRequest", auth(case["first"]["agency"], "provider"), subject=case["patient"]
    )
    assert first_seen["status"] == "revoked"


async def test_a_providers_read_is_in_the_patients_accounting_of_disclosures(referral, case):
    client, _, _ = referral
    provider = auth(case["second"]["agency"], "provider")
    assert (await client.get(f"/fhir/R4/Task/{case['rerouted']}", headers=provider)).status_code == 200

    async def disclosed():
        r = await client.get(
            "/v1/audit/disclosures", params={"patient_id": case["patient"]}, headers=auth(HOME, "supervisor")
        )
        return [e for e in r.json()["items"] if e["agency_id"] == case["second"]["agency"]]

    assert await eventually(disclosed, what="disclosure audited")


async def test_each_role_reads_as_the_permission_matrix_says(referral, case):
    client, _, _ = referral
    for role, path in (("analyst", "Task"), ("admin", "ServiceRequest")):
        r = await client.get(
            f"/fhir/R4/{path}", params={"patient": case["patient"]}, headers=auth(HOME, role)
        )
        assert (r.status_code, r.headers["content-type"]) == (403, FHIR_JSON)
        [issue] = r.json()["issue"]
        assert issue["code"] == "forbidden" and "lacks permission referral:read" in issue["diagnostics"]
    service = case["first"]["service"]
    for role in ("analyst", "admin", "provider", "care-manager", "supervisor"):
        r = await client.get(f"/fhir/R4/HealthcareService/{service}", headers=auth(unique("agency"), role))
        assert r.status_code == 200 and valid(r.json())["id"] == service


async def test_the_directory_searches_by_id_and_organization(referral, case):
    client, _, _ = referral
    anyone = auth(unique("agency"), "analyst")
    first = case["first"]
    [org] = await search(client, "Organization", anyone, _id=first["org"])
    [service] = await search(client, "HealthcareService", anyone, organization=f"Organization/{first['org']}")
    [location] = await search(client, "Location", anyone, organization=first["org"])
    assert (org["id"], service["id"], location["id"]) == (first["org"], first["service"], first["location"])
    assert (
        service["providedBy"]
        == location["managingOrganization"]
        == {"reference": f"Organization/{org['id']}"}
    )
    assert service["location"] == [{"reference": f"Location/{location['id']}"}]
    assert (await client.get(f"/fhir/R4/Location/{location['id']}", headers=anyone)).json() == location
    elsewhere = {"_id": first["location"], "organization": case["second"]["org"]}
    assert await search(client, "Location", anyone, **elsewhere) == []
    assert await search(client, "Organization", anyone, _id="org-nowhere") == []
    r = await client.get("/fhir/R4/HealthcareService", params={"_count": 1}, headers=anyone)
    assert len(resources_of(r)) == 1 and r.json()["link"][1]["relation"] == "next"
    r = await client.get("/fhir/R4/Location/loc-nowhere", headers=anyone)
    assert (r.status_code, r.json()["issue"][0]["code"]) == (404, "not-found")
    # By POST as by GET; a POST without a form is refused, not answered as the search with no parameters.
    posted = await client.post("/fhir/R4/Organization/_search", data={"_id": first["org"]}, headers=anyone)
    assert [o["id"] for o in resources_of(posted)] == [first["org"]]
    for resource_type in ("Organization", "HealthcareService", "Location"):
        bare = await client.post(f"/fhir/R4/{resource_type}/_search", headers=anyone)
        assert (bare.status_code, bare.json()["issue"][0]["code"]) == (415, "not-supported"), bare.text


async def test_the_capability_statement_and_the_openapi_document_name_every_fhir_route(referral):
    client, _, _ = referral
    r = await client.get("/fhir/R4/metadata", headers=auth("agency-x", "analyst"))
    statement = get_fhir_model_class("CapabilityStatement").model_validate(r.json())
    served = {res.type: {i.code for i in res.interaction} for res in statement.rest[0].resource}
    types = ("ServiceRequest", "Task", "Organization", "HealthcareService", "Location")
    assert served == {t: {"read", "search-type"} for t in types} | {"AuditEvent": {"search-type"}}
    paths = (await client.get("/openapi.json")).json()["paths"]
    documented = {p for p in paths if p.startswith("/fhir/R4/")}
    assert documented == {"/fhir/R4/metadata", "/fhir/R4/AuditEvent"} | {f"/fhir/R4/{t}" for t in types} | {
        f"/fhir/R4/{t}/{{{name}}}"
        for t, name in zip(
            types,
            ("service_request_id", "referral_id", "organization_id", "service_id", "location_id"),
            strict=True,
        )
    } | {f"/fhir/R4/{t}/_search" for t in (*types, "AuditEvent")}  # every search by POST too
    r = await client.get("/fhir/R4/Task", headers=auth("agency-x"))  # no patient named
    assert (r.status_code, r.json()["issue"][0]["diagnostics"]) == (
        422,
        "query.patient: search by one patient: patient=<id> or subject=<id>",
    )


async def test_fhir_reads_log_no_patient_id(referral, case):
    client, _, _ = referral
    root, saved = logging.getLogger(), structlog.get_config()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("referral", "INFO", stream=stream)
    structlog.configure(cache_logger_on_first_use=False)
    try:
        for path in ("ServiceRequest", "Task"):
            await client.get(f"/fhir/R4/{path}", params={"patient": case["patient"]}, headers=auth(HOME))
        await client.get(f"/fhir/R4/Task/{case['made']}", headers=auth(HOME))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)
    # The service's lines (the test's own HTTP client logs its URLs, which it may).
    lines = stream.getvalue().splitlines()
    logged = "\n".join(line for line in lines if json.loads(line).get("logger") != "httpx")
    assert "/fhir/R4/Task/{referral_id}" in logged
    assert case["patient"] not in logged and case["made"] not in logged
