"""followup's ``/fhir/R4/`` over HTTP against its real database and broker: a patient's follow-ups and
work-queue tasks are Tasks that validate as FHIR (``fhir.resources`` R4B) and read back by id; each role
sees what ``/v1/`` shows it (follow-ups with ``follow-up:read``, tasks as the task list's visibility);
another agency finds nothing; searches filter by patient, owner and status and page with next links."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.contracts import PatientRegistered
from careloop_shared.events import new_message
from careloop_shared.fhir import FHIR_JSON
from careloop_shared.testing import bearer, eventually, publish_message, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from followup.domain.follow_up import REFERRAL_CHECK_IN
from followup.fhir.resources import STAFF
from followup.main import build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)


def auth(agency: str, role: str = "care-manager", subject: str = "cm-ana") -> dict[str, str]:
    return bearer(agency, role, subject)


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


@pytest_asyncio.fixture(scope="module")
async def followup(infra, database_factory, make_settings):
    clock = FakeClock(T0)
    dsn = await database_factory("followup_fhir")
    settings = make_settings(infra.bootstrap_servers, dsn, unique_prefix())
    app = build_app(settings, clock, keys=FakePatientKeys())
    async with served(app, "http://followup") as (client, runtime):
        yield client, runtime, infra


@pytest_asyncio.fixture
async def case(followup, schedule):
    """A patient of a new agency with cm-ana as care manager: a plan-cadence follow-up due (so a
    follow-up task for cm-ana is open), a referral check-in scheduled, and a task for the admins."""
    _, runtime, infra = followup
    agency, patient = f"agency-{uuid.uuid4().hex[:6]}", uuid.uuid4()
    registered = PatientRegistered(
        patient_id=patient,
        agency_id=agency,
        preferred_language="en",
        registered_at=T0 - timedelta(days=30),
        care_manager_id="cm-ana",
    )
    message = new_message(registered, time=T0 - timedelta(days=30))
    await publish_message(infra.bootstrap_servers, runtime.topic_for(registered.type), message)

    async def known() -> bool:
        found = await runtime.pool.fetchval(
            "SELECT care_manager_id FROM patients WHERE patient_id = $1", patient
        )
        return bool(found == "cm-ana")

    await eventually(known, what="care manager learned")
    cadence = await schedule(runtime, patient_id=patient, agency_id=agency, due_at=T0 - timedelta(minutes=5))
    check_in = await schedule(
        runtime, patient_id=patient, agency_id=agency, due_at=T0 + timedelta(days=3), reason=REFERRAL_CHECK_IN
    )

    async def task_opened() -> bool:
        return bool(await runtime.pool.fetchval("SELECT id FROM tasks WHERE follow_up_id = $1", cadence))

    await eventually(task_opened, what="follow-up task opened")
    work = await runtime.pool.fetchval("SELECT id FROM tasks WHERE follow_up_id = $1", cadence)
    admin = uuid.uuid4()
    async with runtime.uow() as uow:
        assert await uow.store.tasks.insert_task(
            {
                "id": admin,
                "kind": "recruit-provider",
                "cause_key": str(uuid.uuid4()),
                "patient_id": patient,
                "agency_id": agency,
                "subject": "food-pantry",
                "cause_event_id": uuid.uuid4(),
                "cause_event_type": "careloop.referral.network_gap_detected.v1",
                "cause_at": T0,
                "intervention_id": uuid.uuid4(),
                "priority": "routine",
                "priority_rank": 3,
                "status": "open",
                "due_at": T0 + timedelta(days=7),
                "for_role": "admin",
                "assignee_role": "admin",
                "created_at": T0,
                "updated_at": T0,
            }
        )
    return {
        "agency": agency,
        "patient": patient,
        "cadence": cadence,
        "check_in": check_in,
        "work": work,
        "admin": admin,
    }


async def search(client, headers, **params) -> dict:
    r = await client.get("/fhir/R4/Task", params=params, headers=headers)
    assert (r.status_code, r.headers["content-type"]) == (200, FHIR_JSON), r.text
    return valid(r.json())


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle["entry"]]


async def test_a_patient_s_follow_ups_then_tasks_are_fhir_tasks_that_read_back_by_id(followup, case):
    client, _, _ = followup
    ana = auth(case["agency"])
    bundle = await search(client, ana, patient=f"Patient/{case['patient']}")
    assert ids(bundle) == [str(case["cadence"]), str(case["check_in"]), str(case["work"])]
    assert bundle["total"] == 3 and [link["relation"] for link in bundle["link"]] == ["self"]
    cadence, check_in, work = (e["resource"] for e in bundle["entry"])
    assert (cadence["status"], cadence["businessStatus"]["text"]) == ("ready", "due")
    assert (check_in["status"], check_in["businessStatus"]["text"]) == ("ready", "scheduled")
    assert cadence["owner"]["identifier"] == {"system": STAFF, "value": "cm-ana"}
    assert work["focus"] == {"reference": f"Task/{case['cadence']}"}  # resolves in this very bundle
    assert work["code"]["text"] == "follow-up" and work["meta"]["tag"][0]["code"] == "work-item"
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"http://followup/fhir/R4/Task/{entry['resource']['id']}"
        r = await client.get(f"/fhir/R4/Task/{entry['resource']['id']}", headers=ana)
        assert (r.status_code, r.headers["content-type"], r.json()) == (200, FHIR_JSON, entry["resource"])
    metadata = await client.get("/fhir/R4/metadata", headers=ana)
    assert valid(metadata.json())["rest"][0]["resource"][0]["type"] == "Task"


async def test_each_role_sees_what_v1_shows_it_and_another_agency_nothing(followup, case):
    client, _, _ = followup
    agency, patient = case["agency"], str(case["patient"])
    everything = [str(case[k]) for k in ("cadence", "check_in", "work", "admin")]
    supervisor = auth(agency, role="supervisor", subject="sv-sam")
    assert ids(await search(client, supervisor, patient=patient)) == everything
    bo = auth(agency, subject="cm-bo")  # the agency's follow-ups, but not cm-ana's task
    assert ids(await search(client, bo, patient=patient)) == everything[:2]
    assert (await client.get(f"/fhir/R4/Task/{case['work']}", headers=bo)).status_code == 404
    admin = auth(agency, role="admin", subject="ad-ada")  # task:read without follow-up:read
    assert ids(await search(client, admin, patient=patient)) == [str(case["admin"])]
    refused = await client.get(f"/fhir/R4/Task/{case['cadence']}", headers=admin)
    assert (refused.status_code, refused.json()["issue"][0]["code"]) == (404, "not-found")
    assert (await client.get(f"/fhir/R4/Task/{case['admin']}", headers=auth(agency))).status_code == 404
    analyst = await client.get("/fhir/R4/Task", headers=auth(agency, role="analyst", subject="an-al"))
    assert (analyst.status_code, analyst.json()["issue"][0]["code"]) == (403, "forbidden")
    stranger = auth("agency-elsewhere", role="supervisor", subject="sv-eve")
    nothing = await search(client, stranger, patient=patient)
    assert (nothing["entry"], nothing["total"]) == ([], 0)
    for task_id in everything:
        assert (await client.get(f"/fhir/R4/Task/{task_id}", headers=stranger)).status_code == 404


async def test_a_completed_follow_up_shows_its_coded_outcome_and_that_read_is_audited(followup, case):
    client, runtime, _ = followup
    ana = auth(case["agency"])
    body = {"reached": True, "barriers": ["transportation"], "next_step": "continue-plan", "note": "Wed 3pm"}
    r = await client.post(f"/v1/follow-ups/{case['cadence']}/outcome", headers=ana, json=body)
    assert r.status_code == 200, r.text
    task = valid((await client.get(f"/fhir/R4/Task/{case['cadence']}", headers=ana)).json())
    assert (task["status"], task["businessStatus"]["text"]) == ("completed", "completed")
    assert [o["type"]["text"] for o in task["output"]] == ["reached", "barrier", "next-step"]
    assert "Wed 3pm" not in str(task)
    audited = await runtime.pool.fetch(
        "SELECT subject, outcome, what, route FROM audit_log WHERE entity_id = $1 ORDER BY position",
        str(case["cadence"]),
    )
    assert [tuple(a) for a in audited] == [("cm-ana", "allowed", "follow-up", "GET /fhir/R4/Task/{task_id}")]

    done = await search(client, ana, patient=str(case["patient"]), status="completed")
    assert ids(done) == [str(case["cadence"]), str(case["work"])]  # the follow-up's task closed with it
    assert done["entry"][1]["resource"]["statusReason"]["text"] == "resolved"
    ready = await search(client, ana, patient=str(case["patient"]), status="ready")
    assert str(case["check_in"]) in ids(ready) and str(case["cadence"]) not in ids(ready)
    assert len(ids(ready)) == 2  # the check-in and the next plan-cadence contact
    assert (await search(client, ana, patient=str(case["patient"]), status="on-hold"))["total"] == 0


async def test_searches_filter_by_owner_and_page_with_next_links_to_a_known_total(followup, case):
    client, _, _ = followup
    supervisor = auth(case["agency"], role="supervisor", subject="sv-sam")
    patient = str(case["patient"])
    by_id = await search(client, supervisor, patient=patient, owner="cm-ana")
    assert ids(by_id) == [str(case[k]) for k in ("cadence", "check_in", "work")]
    assert ids(await search(client, supervisor, patient=patient, owner=f"{STAFF}|cm-ana")) == ids(by_id)
    assert ids(await search(client, supervisor, patient=patient, owner="cm-bo")) == []

    pages, url = [], f"/fhir/R4/Task?patient={patient}&_count=1"
    while url:
        r = await client.get(url, headers=supervisor)
        assert r.status_code == 200, r.text
        pages.append(valid(r.json()))
        url = next((link["url"] for link in pages[-1]["link"] if link["relation"] == "next"), None)
        assert len(pages) <= 4
    assert [ids(p) for p in pages] == [[str(case[k])] for k in ("cadence", "check_in", "work", "admin")]
    assert [p.get("total") for p in pages] == [None, None, None, 4]

    for query in ("status=done", "patient=Patient/x", "_count=0", "owner="):
        r = await client.get(f"/fhir/R4/Task?{query}", headers=supervisor)
        assert (r.status_code, r.headers["content-type"]) == (422, FHIR_JSON), query
        assert r.json()["issue"][0]["code"] == "invalid"
