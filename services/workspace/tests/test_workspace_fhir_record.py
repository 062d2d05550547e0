"""The patient's FHIR record as a download, from the fake services' ``/fhir/R4/`` answers: the headers, who
is offered it, what is asked of the services and as whom (the person the services audit), another
agency's patient, a search left out, and services that fail."""

import asyncio
import json

import httpx
import structlog
from fhir.resources.R4B.bundle import Bundle

from careloop_shared.auth import PEOPLE_ROLES, verify_token
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.fhir_bundle import unresolved
from careloop_shared.settings import DEV_JWT_SECRET
from services.workspace.tests.conftest import ANN, ANN_ID
from workspace.config import SERVICE_PORTS, WorkspaceSettings
from workspace.main import build_app

PID = ANN_ID
DOWNLOAD = f"/patients/{PID}/fhir-record"
BASES = {s: f"http://127.0.0.1:{port}/fhir/R4" for s, port in SERVICE_PORTS.items()}
SUBJECT = {"reference": f"Patient/{PID}"}
SUPERVISOR = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}

PATIENT = {
    "resourceType": "Patient",
    "id": PID,
    "name": [{"given": ["Ann"], "family": "Example"}],
    "birthDate": "1958-04-11",
}
PATIENT_ROW = ANN  # intake's /v1 answer, for the patient page


def observation(oid: str) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final", "code": {"text": "PHQ-2 item"},
            "subject": SUBJECT, "derivedFrom": [{"reference": "QuestionnaireResponse/a1"}]}  # fmt: skip


def request(rid: str, **extra: object) -> dict:
    return {"resourceType": "ServiceRequest", "id": rid, "status": "active", "intent": "order",
            "subject": SUBJECT, **extra}  # fmt: skip


# What each search finds, by service and type: every kind the export asks for.
FOUND = {
    ("intake", "Consent"): [{"resourceType": "Consent", "id": "c1", "status": "active", "patient": SUBJECT,
                             "scope": {"text": "privacy"}, "category": [{"text": "IDSCL"}]}],
    ("intake", "QuestionnaireResponse"): [{"resourceType": "QuestionnaireResponse", "id": "a1",
                                           "status": "completed", "subject": SUBJECT}],
    ("intake", "Condition"): [{"resourceType": "Condition", "id": "a1-depression", "subject": SUBJECT,
                               "evidence": [{"detail": [{"reference": "Observation/a1-1"}]}]}],
    ("careplan", "CarePlan"): [{"resourceType": "CarePlan", "id": "p1-v1", "status": "active",
                                "intent": "plan", "subject": SUBJECT, "goal": [{"reference": "Goal/g1"}],
                                "addresses": [{"reference": "Condition/a1-depression"}]}],
    ("careplan", "Goal"): [{"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active",
                            "description": {"text": "Mood improves"}, "subject": SUBJECT}],
    ("careplan", "CareTeam"): [{"resourceType": "CareTeam", "id": "p1", "subject": SUBJECT}],
    ("careplan", "ServiceRequest"): [request("s1")],
    ("referral", "ServiceRequest"): [request("s1", performer=[{"reference": "Organization/org-chc"}])],
    ("referral", "Task"): [{"resourceType": "Task", "id": "r1", "status": "requested", "intent": "order",
                            "focus": {"reference": "ServiceRequest/s1"}, "for": SUBJECT,
                            "owner": {"reference": "Organization/org-chc"}}],
    ("followup", "Task"): [{"resourceType": "Task", "id": "f1", "status": "ready", "intent": "plan",
                            "for": SUBJECT}],
}  # fmt: skip
ORGANIZATION = {"resourceType": "Organization", "id": "org-chc", "name": "Community Health Center"}


def searchset(service: str, resources: list[dict], next_url: str | None = None) -> dict:
    entries = [
        {"fullUrl": f"{BASES[service]}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
    ]
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def answer_the_record(services, patient: dict | None = PATIENT) -> None:
    """The four services' FHIR answers for the patient (Observations over two pages), and the page's."""
    fhir = "/fhir/R4"
    services.answer(
        "intake", "GET", f"{fhir}/Patient", body=searchset("intake", [patient] if patient else [])
    )
    for (service, kind), found in FOUND.items():
        services.answer(service, "GET", f"{fhir}/{kind}", body=searchset(service, found))
    second = f"{BASES['intake']}/Observation?patient={PID}&_offset=1"

    def observations(r: httpx.Request) -> httpx.Response:
        if r.url.params.get("_offset") == "1":
            return httpx.Response(200, json=searchset("intake", [observation("a1-2")]))
        return httpx.Response(200, json=searchset("intake", [observation("a1-1")], next_url=second))

    services.answer_with("intake", "GET", f"{fhir}/Observation", observations)
    services.answer("referral", "GET", f"{fhir}/Organization/org-chc", body=ORGANIZATION)
    services.answer("intake", "GET", f"/v1/patients/{PID}", body=PATIENT_ROW)


def fhir_calls(services) -> list[httpx.Request]:
    return [r for r in services.requests if r.url.path.startswith("/fhir/R4/")]


async def test_the_download_is_the_patients_bundle_as_an_attachment_named_by_pseudonymous_id(
    client, services, sign_in
):
    answer_the_record(services)
    await sign_in(client)
    answer = await client.get(DOWNLOAD)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == FHIR_JSON
    assert answer.headers["content-disposition"] == f'attachment; filename="patient-{PID}.fhir.json"'
    assert answer.headers["cache-control"] == "no-store"
    bundle = answer.json()
    assert bundle["type"] == "collection"
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert f"{BASES['intake']}/Patient/{PID}" in urls
    observations = {f"{BASES['intake']}/Observation/a1-1", f"{BASES['intake']}/Observation/a1-2"}
    assert observations <= urls  # both pages
    assert {f"{BASES['careplan']}/ServiceRequest/s1", f"{BASES['referral']}/ServiceRequest/s1"} <= urls
    assert f"{BASES['referral']}/Organization/org-chc" in urls  # read by id: the referral points at it
    assert f"{BASES['followup']}/Task/f1" in urls
    # The Patient, what each search found, two pages of Observations and the Organization.
    assert len(urls) == len(bundle["entry"]) == 1 + sum(len(f) for f in FOUND.values()) + 2 + 1
    assert unresolved(bundle) == []
    Bundle.model_validate(bundle)


async def test_every_call_is_a_fhir_read_as_the_signed_in_person_whom_the_services_audit(
    client, services, sign_in
):
    answer_the_record(services)
    await sign_in(client)
    await client.get(DOWNLOAD)
    calls = fhir_calls(services)
    assert {(c.url.port, c.url.path) for c in calls} >= {(8001, "/fhir/R4/Patient"), (8004, "/fhir/R4/Task")}
    # The Patient's search, each other search, Observations' two pages, the Organization read by id.
    assert len(calls) == 1 + len(FOUND) + 2 + 1
    issuer = WorkspaceSettings().jwt_issuer
    for call in calls:
        assert call.headers["accept"] == FHIR_JSON
        token = call.headers["authorization"].removeprefix("Bearer ")
        assert verify_token(token, DEV_JWT_SECRET, issuer=issuer).subject == "cm-riverside-ana"
    [patient] = [c for c in calls if c.url.path == "/fhir/R4/Patient"]
    assert dict(patient.url.params) == {"_id": PID}
    assert all(c.url.params.get("patient") == PID for c in calls if c.url.path.endswith(("/Task", "/Goal")))


async def test_the_searches_run_at_the_same_time(clock, store, services, settings, open_browser, sign_in):
    """Every search after the Patient's is answered only once all of them are asked: one at a time, the
    first would wait for ever (here, until the deadline) and the download would fail."""
    answer_the_record(services)
    asked: set[str] = set()
    all_asked = asyncio.Event()
    searches = {f"{kind}@{service}" for service, kind in FOUND} | {"Observation@intake"}

    async def handle(request: httpx.Request) -> httpx.Response:
        service = {port: s for s, port in SERVICE_PORTS.items()}[request.url.port or 80]
        search = f"{request.url.path.rsplit('/', 1)[-1]}@{service}"
        if search in searches and "_offset" not in request.url.params:
            asked.add(search)
            if asked == searches:
                all_asked.set()
            await asyncio.wait_for(all_asked.wait(), timeout=5)
        return services.handle(request)

    app = build_app(settings, clock=clock, store=store, services_transport=httpx.MockTransport(handle))
    async with open_browser(app) as http:
        await sign_in(http)
        answer = await http.get(DOWNLOAD)
    assert answer.status_code == 200, answer.text
    assert asked == searches


async def test_the_link_is_offered_only_to_roles_that_may_download(
    make_app, settings, open_browser, services, sign_in
):
    answer_the_record(services)
    app = make_app(settings)
    seen = {}
    for role in sorted(PEOPLE_ROLES):
        async with open_browser(app) as http:
            await sign_in(http, {"agency": "agency-riverside", "role": role, "subject": f"x-{role}"})
            page = await http.get(f"/patients/{PID}")
            before = len(services.requests)
            download = await http.get(DOWNLOAD)
        offered = f'href="{DOWNLOAD}" download>Download FHIR record</a>' in page.text
        seen[role] = (offered, download.status_code)
        if download.status_code == 403:
            assert "Downloading a patient&#39;s record is not available to your role." in download.text
            assert len(services.requests) == before  # refused before any service is asked
    assert seen == {
        "admin": (False, 403),
        "analyst": (False, 403),
        "care-manager": (True, 200),
        "provider": (False, 403),
        "supervisor": (True, 200),
    }


async def test_another_agencys_patient_is_not_found_and_no_other_service_is_asked(
    make_app, settings, open_browser, services, sign_in
):
    answer_the_record(services, patient=None)  # intake finds no such patient for this person's agency
    async with open_browser(make_app(settings)) as http:
        await sign_in(http, {**SUPERVISOR, "agency": "agency-harbor", "subject": "sv-harbor-sam"})
        answer = await http.get(DOWNLOAD)
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"]
    assert "content-disposition" not in answer.headers
    assert "There is no such patient, or not one you may see." in answer.text
    assert [(r.url.port, r.url.path) for r in services.requests] == [(8001, "/fhir/R4/Patient")]


async def test_a_search_the_service_refuses_is_left_out_and_the_rest_downloaded(client, services, sign_in):
    answer_the_record(services)
    refusal = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}
    services.answer("careplan", "GET", "/fhir/R4/CareTeam", 403, refusal)
    await sign_in(client)
    answer = await client.get(DOWNLOAD)
    assert answer.status_code == 200
    kinds = [e["resource"]["resourceType"] for e in answer.json()["entry"]]
    assert "CareTeam" not in kinds and "CarePlan" in kinds and "Patient" in kinds


async def test_a_service_down_or_failing_says_which_and_gives_no_record_and_logs_no_patient(
    client, services, sign_in
):
    answer_the_record(services)
    await sign_in(client)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    services.answer_with("referral", "GET", "/fhir/R4/Task", down)
    with structlog.testing.capture_logs() as logs:
        unavailable = await client.get(DOWNLOAD)
        services.answer_with("referral", "GET", "/fhir/R4/Task", lambda _: httpx.Response(200, json={}))
        services.answer("followup", "GET", "/fhir/R4/Task", 500, {"detail": "boom"})
        failing = await client.get(DOWNLOAD)
    assert unavailable.status_code == 503
    assert "Referrals is unavailable; try again shortly." in unavailable.text
    assert failing.status_code == 502
    assert "Follow-up could not answer just now (500); try again shortly." in failing.text
    for answer in (unavailable, failing):
        assert "The record could not be downloaded" in answer.text
        assert "content-disposition" not in answer.headers and "Ann" not in answer.text
    assert not [e for e in logs if e.get("log_level") == "error"]  # no 500: nothing unhandled
    assert PID not in repr(logs) and "Example" not in repr(logs)


async def test_a_next_link_elsewhere_is_not_followed_with_the_persons_token(client, services, sign_in):
    answer_the_record(services)
    elsewhere = "http://collector.example/fhir/R4/Task?patient=x&_offset=1"
    services.answer("referral", "GET", "/fhir/R4/Task", body=searchset("referral", [], next_url=elsewhere))
    await sign_in(client)
    answer = await client.get(DOWNLOAD)
    assert answer.status_code == 502
    assert "A service answered in a way the download cannot follow" in answer.text
    assert all(r.url.host == "127.0.0.1" for r in services.requests)


async def test_the_log_says_how_much_was_downloaded_never_whose(client, services, sign_in):
    answer_the_record(services)
    await sign_in(client)
    with structlog.testing.capture_logs() as logs:
        answer = await client.get(DOWNLOAD)
    [downloaded] = [e for e in logs if e["event"] == "FHIR record downloaded"]
    assert downloaded["resources"] == len(answer.json()["entry"])
    assert downloaded["unresolved"] == 0 and downloaded["left_out"] == 0
    routes = [e["route"] for e in logs if e["event"] == "http request"]
    assert routes == ["/patients/{patient_id}/fhir-record"]
    assert PID not in repr(logs) and "Ann" not in repr(logs) and "Example" not in json.dumps(repr(logs))


async def test_a_token_the_services_no_longer_accept_ends_the_session(client, services, sign_in):
    answer_the_record(services)
    services.answer("intake", "GET", "/fhir/R4/Patient", 401, {"detail": "token expired"})
    await sign_in(client)
    answer = await client.get(DOWNLOAD)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?notice=session-ended"
