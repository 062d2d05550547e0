"""The workspace as its own process (``python -m workspace``) over the real intake and followup, with
Kafka and PostgreSQL (integration): a care manager signs in and sees a safety check on My day."""

import html
import re
import sys

import httpx
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

from careloop_shared.testing import ServiceProcess, bearer, eventually, unique_prefix

pytestmark = pytest.mark.integration

AGENCY = "agency-workspace-test"
CARE_MANAGER = "cm-workspace-wes"
PHQ9 = ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8")
PATIENT = {
    "given_name": "Wanda",
    "family_name": "Testperson",
    "birth_date": "1958-04-11",
    "phone": "+1 555 0142",
}


@pytest_asyncio.fixture(scope="module")
async def platform(infra, database_factory, tmp_path_factory):
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "CARELOOP_PG_URL": infra.pg_url,
        "CARELOOP_TOPIC_PREFIX": unique_prefix(),
        "FOLLOWUP_SCHEDULER_TICK_S": "0.2",
        "PYTHON": sys.executable,
    }
    logs = tmp_path_factory.mktemp("workspace-logs")
    for name in ("intake", "followup", "workspace"):
        env[f"{name.upper()}_DATABASE_URL"] = await database_factory(name)
    services = {name: ServiceProcess(name, env, logs).start() for name in ("intake", "followup")}
    env |= {f"WORKSPACE_{name.upper()}_URL": p.url for name, p in services.items()}
    workspace = ServiceProcess("workspace", env, logs).start()
    processes = {**services, "workspace": workspace}
    try:
        for process in processes.values():
            await process.wait_ready()
        yield processes
    finally:
        for process in processes.values():
            process.stop()
        await _delete_topics(infra.bootstrap_servers, env["CARELOOP_TOPIC_PREFIX"])


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    """Now rather than at the session's end: a broker on two cores is slower with every topic it keeps."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="careloop-workspace-tests")
    await admin.start()
    try:
        ours = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def sign_in(http: httpx.AsyncClient, subject: str = CARE_MANAGER, role: str = "care-manager") -> None:
    page = await http.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"agency": AGENCY, "role": role, "subject": subject, "csrf_token": csrf}
    assert (await http.post("/signin/development", data=form)).status_code == 303


async def test_a_care_manager_sees_the_safety_check_and_the_patient_on_my_day(platform):
    intake = platform["intake"].url
    async with httpx.AsyncClient(timeout=10, headers=bearer(AGENCY, subject=CARE_MANAGER)) as api:
        created = await api.post(f"{intake}/v1/patients", json=PATIENT)
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        answers = {item: 1 for item in PHQ9}  # item 9 above 0: suicidal ideation, a stat safety check
        assessed = await api.post(
            f"{intake}/v1/patients/{patient_id}/assessments", json={"instrument": "phq-9", "answers": answers}
        )
        assert assessed.status_code == 202, assessed.text

    async with httpx.AsyncClient(base_url=platform["workspace"].url, timeout=10) as http:
        assert (await http.get("/readyz")).json() == {"status": "ready", "checks": {"database": "ok"}}
        await sign_in(http)

        async def my_day() -> str | None:
            page = await http.get("/")
            assert page.status_code == 200, page.text
            return (
                page.text if f"/patients/{patient_id}" in page.text and "Safety check" in page.text else None
            )

        page = await eventually(my_day, timeout=30, what="the safety check on My day")
        tasks = page.split('id="tasks-heading"')[1].split("</section>")[0]
        assert "stat" in tasks and f'<a href="/patients/{patient_id}">Wanda Testperson</a>' in tasks
        caseload = page.split('id="caseload-heading"')[1].split("</section>")[0]
        assert f'<a href="/patients/{patient_id}">Wanda Testperson</a>' in caseload
        # Her name, read from intake as the care manager (and recorded there as read); nothing else of hers.
        for phi in ("1958-04-11", "555 0142"):
            assert phi not in page
        async with httpx.AsyncClient(timeout=10) as api:
            supervisor = bearer(AGENCY, "supervisor", "sv-riverside-sam")
            trail = await api.get(f"{intake}/v1/audit", params={"patient_id": patient_id}, headers=supervisor)
        read = [(e["subject"], e["route"]) for e in trail.json()["items"] if e["what"] == "patient"]
        assert (CARE_MANAGER, "GET /v1/patients") in read

        # Found again by her whole name and birth date, typed as a caller might give them.
        form = await http.get("/patients/find")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        asked = {"given_name": "wanda", "family_name": " TESTPERSON", "birth_date": "1958-04-11"}
        found = await http.post("/patients/find", data={**asked, "csrf_token": csrf})
        assert found.status_code == 200, found.text
        assert (
            f'<a href="/patients/{patient_id}">Wanda Testperson</a>'
            in found.text.split('id="found-heading"')[1]
        )

        platform["followup"].stop()
        down = await http.get("/")
        assert down.status_code == 200
        assert "Follow-up is unavailable; try again shortly." in down.text

    log = platform["workspace"].log_path.read_text()
    assert patient_id not in log and "Testperson" not in log
    assert "Testperson" not in platform["intake"].log_path.read_text()
    assert '"route": "/"' in log


def _form_fields(page: str) -> dict[str, str]:
    """Every text input, hidden input and selected option of a page's form, as the browser would post them."""
    fields = {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'<input[^>]*? name="([^"]+)"[^>]*? value="([^"]*)"', page)
        if 'type="checkbox"' not in m.group(0)
    }
    for select in re.finditer(r'<select[^>]*? name="([^"]+)".*?</select>', page, flags=re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', select.group(0))
        fields[select.group(1)] = chosen.group(1) if chosen else ""
    return fields


async def test_details_changed_a_consent_revoked_and_the_patient_erased_through_the_workspace(platform):
    intake = platform["intake"].url
    async with httpx.AsyncClient(timeout=10, headers=bearer(AGENCY, subject=CARE_MANAGER)) as api:
        created = await api.post(f"{intake}/v1/patients", json={**PATIENT, "given_name": "Petra"})
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        consent = {"purpose": "referral", "agencies": ["agency-transit-aid"]}
        recorded = await api.post(f"{intake}/v1/patients/{patient_id}/consents", json=consent)
        assert recorded.status_code == 201, recorded.text
        consent_id = recorded.json()["id"]

    async with httpx.AsyncClient(base_url=platform["workspace"].url, timeout=10) as http:
        await sign_in(http)
        form = await http.get(f"/patients/{patient_id}/details/edit")
        fields = {**_form_fields(form.text), "phone": "+1 555 0143"}
        changed = await http.post(f"/patients/{patient_id}/details", data=fields)
        assert changed.headers["location"].endswith("notice=details-changed#details"), changed.text
        page = await http.get(f"/patients/{patient_id}")
        revoked = await http.post(
            f"/patients/{patient_id}/consents/{consent_id}/revoke",
            data={"csrf_token": _form_fields(page.text)["csrf_token"]},
        )
        assert revoked.headers["location"].endswith("notice=consent-revoked#consents"), revoked.text

        await http.post("/signout", data={"csrf_token": _form_fields(page.text)["csrf_token"]})
        await sign_in(http, "sv-workspace-sue", role="supervisor")
        # Who has seen the patient: intake's log has the care manager's change; a service not running
        # here is named in its place.
        access = await http.get(f"/patients/{patient_id}/access")
        assert access.status_code == 200, access.text
        assert f">{CARE_MANAGER}</a> (Care manager)" in access.text  # linked to what they did
        assert "PATCH /v1/patients/{patient_id}" in access.text
        assert "Its entries are not in this list." in access.text
        form = await http.get(f"/patients/{patient_id}/erasure/new")
        fields = {**_form_fields(form.text), "reason": "The patient's request", "confirm": "erase"}
        erased = await http.post(f"/patients/{patient_id}/erasure", data=fields)
        assert erased.headers["location"].endswith("notice=patient-erased"), erased.text
        page = await http.get(erased.headers["location"])
        assert "The patient&#39;s identifying details were erased" in page.text and "Petra" not in page.text

    supervisor = bearer(AGENCY, "supervisor", "sv-workspace-sue")
    async with httpx.AsyncClient(timeout=10, headers=supervisor) as api:
        [kept] = (await api.get(f"{intake}/v1/patients/{patient_id}/consents")).json()
        assert (kept["id"], kept["status"]) == (consent_id, "revoked")
        assert (await api.get(f"{intake}/v1/patients/{patient_id}")).status_code == 410
        trail = (await api.get(f"{intake}/v1/audit", params={"patient_id": patient_id})).json()["items"]
    routes = {e["route"] for e in trail if e["subject"] == CARE_MANAGER}
    assert "PATCH /v1/patients/{patient_id}" in routes
