"""The task list and caseloads over the real broker and database (in-process app, injected clock): events
in, tasks out within a second, escalation by the clock, moves over HTTP, and the caseload counts."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from careloop_shared.contracts import (
    AppointmentStatusChanged,
    CareManagerAssigned,
    NetworkGapDetected,
    PatientAssessed,
    PatientRegistered,
    ReferralMade,
    ReferralOverdue,
    ReferralStatusChanged,
    RiskLevel,
    TaskEscalated,
    TaskOpened,
    TaskStatusChanged,
)
from careloop_shared.events import Event, new_message
from careloop_shared.testing import bearer, eventually, publish_message, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from followup.main import build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 8, 3, 9, 0, tzinfo=UTC)


def auth(agency: str, role: str = "care-manager", subject: str = "cm-ana") -> dict[str, str]:
    return bearer(agency, role, subject)


@pytest_asyncio.fixture(scope="module")
async def followup(infra, database_factory, make_settings):
    clock = FakeClock(T0)
    dsn = await database_factory("followup_tasks_api")
    app = build_app(make_settings(infra.bootstrap_servers, dsn, unique_prefix()), clock)
    async with served(app, "http://followup") as (client, runtime):

        async def publish(event: Event, *, event_id: uuid.UUID | None = None, at: datetime | None = None):
            message = new_message(event, event_id=event_id, time=at or clock.now)
            await publish_message(infra.bootstrap_servers, runtime.topic_for(event.type), message)
            return message

        yield client, runtime, clock, publish


@pytest.fixture
def agency() -> str:
    return f"agency-{uuid.uuid4().hex[:6]}"


def registered(agency, patient, care_manager="cm-ana", at=T0 - timedelta(days=30)):
    return PatientRegistered(
        patient_id=patient,
        agency_id=agency,
        preferred_language="en",
        registered_at=at,
        care_manager_id=care_manager,
    )


def assessed(agency, patient, at, *, flags=()):
    return PatientAssessed(
        patient_id=patient,
        agency_id=agency,
        assessment_id=uuid.uuid4(),
        instrument="phq-9",
        rules_version="screening.v1",
        needs=[],
        risk_level=RiskLevel.urgent if flags else RiskLevel.low,
        urgent_flags=list(flags),
        assessed_at=at,
    )


async def known(runtime, patient: uuid.UUID, care_manager: str) -> None:
    async def learned() -> bool:
        found = await runtime.pool.fetchval(
            "SELECT care_manager_id FROM patients WHERE patient_id = $1", patient
        )
        return bool(found == care_manager)

    await eventually(learned, what="care manager learned")


async def tasks_of(runtime, patient: uuid.UUID) -> list[dict]:
    rows = await runtime.pool.fetch(
        "SELECT * FROM tasks WHERE patient_id = $1 ORDER BY created_at, id", patient
    )
    return [dict(r) for r in rows]


async def outbox_count(runtime, patient: uuid.UUID, event_type: str) -> int:
    count: int = await runtime.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE key = $1 AND event_type = $2", str(patient), event_type
    )
    return count


async def test_suicidal_ideation_makes_a_stat_safety_task_for_the_care_manager_within_a_second_then_escalates(
    followup, agency
):
    client, runtime, clock, publish = followup
    patient = uuid.uuid4()
    await publish(registered(agency, patient))
    await known(runtime, patient, "cm-ana")  # the consumer is running and knows the care manager
    ana, supervisor = auth(agency), auth(agency, "supervisor", "sv-sam")

    await publish(assessed(agency, patient, clock.now, flags=["suicidal-ideation"]))
    started = time.monotonic()

    async def on_ana_s_list() -> list:
        listed = await client.get("/v1/tasks", params={"assignee": "me", "status": "open"}, headers=ana)
        return listed.json()["items"]

    [task] = await eventually(on_ana_s_list, timeout=1.0, interval=0.02, what="safety task on the list")
    elapsed = time.monotonic() - started
    print(f"safety task listed {elapsed:.3f}s after the assessment was published")
    assert elapsed < 1.0
    assert (task["kind"], task["priority"], task["assignee_id"], task["patient_id"]) == (
        "safety-check",
        "stat",
        "cm-ana",
        str(patient),
    )
    assert datetime.fromisoformat(task["due_at"]) == clock.now + timedelta(hours=1)

    clock.advance(minutes=61)

    async def escalated() -> list:
        listed = await client.get("/v1/tasks", params={"patient_id": str(patient)}, headers=supervisor)
        return [t for t in listed.json()["items"] if t["escalated_at"]]

    [task] = await eventually(escalated, what="escalated to the supervisor")
    assert (task["assignee_id"], task["assignee_role"], task["for_role"]) == (
        None,
        "supervisor",
        "care-manager",
    )
    assert await on_ana_s_list() == []
    assert await outbox_count(runtime, patient, TaskEscalated.type) == 1
    assert await outbox_count(runtime, patient, TaskOpened.type) == 1


async def test_a_referral_overdue_makes_exactly_one_chase_task_closed_when_the_provider_answers(
    followup, agency
):
    client, runtime, clock, publish = followup
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await publish(registered(agency, patient))
    overdue = ReferralOverdue(
        patient_id=patient,
        agency_id=agency,
        referral_id=referral,
        receiving_agency_id="agency-food",
        deadline="response",
        due_at=clock.now - timedelta(hours=1),
    )
    first = await publish(overdue)
    await publish(overdue, event_id=first.envelope.id)  # redelivered
    again = await publish(overdue)  # the same deadline announced again under another id

    async def applied() -> bool:
        return bool(
            await runtime.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", again.envelope.id)
        )

    await eventually(applied, what="all three deliveries applied")
    [task] = await tasks_of(runtime, patient)
    assert (task["kind"], task["referral_id"], task["status"], task["assignee_id"]) == (
        "chase-referral",
        referral,
        "open",
        "cm-ana",
    )
    assert await outbox_count(runtime, patient, TaskOpened.type) == 1

    await publish(
        ReferralStatusChanged(
            patient_id=patient,
            agency_id=agency,
            referral_id=referral,
            plan_id=uuid.uuid4(),
            intervention_id=uuid.uuid4(),
            from_status="requested",
            to_status="accepted",
            by_agency_id="agency-food",
            by_party="target",
            changed_at=clock.now,
        )
    )

    async def closed() -> list:
        return [t for t in await tasks_of(runtime, patient) if t["status"] == "done"]

    [task] = await eventually(closed, what="chase task closed")
    assert (task["closed_reason"], task["closed_by"], task["resolved_by_event_type"]) == (
        "resolved",
        None,
        ReferralStatusChanged.type,
    )
    assert await outbox_count(runtime, patient, TaskStatusChanged.type) == 1
    listed = await client.get(
        "/v1/tasks", params={"status": "done", "patient_id": str(patient)}, headers=auth(agency)
    )
    assert [t["cause"]["referral_id"] for t in listed.json()["items"]] == [str(referral)]


async def test_an_appointment_not_recorded_asks_the_care_manager_until_the_program_says(followup, agency):
    client, runtime, clock, publish = followup
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await publish(registered(agency, patient))
    starts = clock.now - timedelta(days=1, hours=2)
    await publish(
        ReferralOverdue(
            patient_id=patient,
            agency_id=agency,
            referral_id=referral,
            receiving_agency_id="agency-food",
            deadline="attendance",
            due_at=starts + timedelta(days=1),
        )
    )
    [task] = await eventually(lambda: tasks_of(runtime, patient), what="attendance task")
    assert (task["kind"], task["referral_id"], task["priority"], task["assignee_id"]) == (
        "confirm-attendance",
        referral,
        "routine",
        "cm-ana",
    )
    await publish(
        AppointmentStatusChanged(
            patient_id=patient,
            agency_id=agency,
            referral_id=referral,
            from_status="booked",
            status="fulfilled",
            starts_at=starts,
            by_agency_id="agency-food",
            changed_at=clock.now,
        )
    )

    async def closed() -> list:
        return [t for t in await tasks_of(runtime, patient) if t["status"] == "done"]

    [done] = await eventually(closed, what="attendance task closed")
    assert (done["id"], done["resolved_by_event_type"]) == (task["id"], AppointmentStatusChanged.type)
    assert len(await tasks_of(runtime, patient)) == 1  # the patient came: nothing else to do
    listed = await client.get(
        "/v1/tasks", params={"status": "done", "patient_id": str(patient)}, headers=auth(agency)
    )
    assert [(t["kind"], t["cause"]["referral_id"]) for t in listed.json()["items"]] == [
        ("confirm-attendance", str(referral))
    ]


async def test_a_network_gap_makes_a_recruit_task_for_admins_closed_by_the_referral_for_that_intervention(
    followup, agency
):
    client, runtime, clock, publish = followup
    patient, intervention = uuid.uuid4(), uuid.uuid4()
    admin, ana = auth(agency, "admin", "ad-al"), auth(agency)
    await publish(
        NetworkGapDetected(
            patient_id=patient,
            agency_id=agency,
            plan_id=uuid.uuid4(),
            intervention_id=intervention,
            need="food-insecurity",
            program_category="food-assistance",
            postal_area="021",
            language="es",
            detected_at=clock.now,
        )
    )

    async def admins_list() -> list:
        return (await client.get("/v1/tasks", params={"status": "open"}, headers=admin)).json()["items"]

    [task] = await eventually(admins_list, what="recruit task for admins")
    assert (task["kind"], task["assignee_id"], task["assignee_role"], task["cause"]["intervention_id"]) == (
        "recruit-provider",
        None,
        "admin",
        str(intervention),
    )
    assert (await client.get("/v1/tasks", headers=ana)).json()["items"] == []  # not a care manager's

    await publish(
        ReferralMade(
            patient_id=patient,
            agency_id=agency,
            referral_id=uuid.uuid4(),
            plan_id=uuid.uuid4(),
            intervention_id=intervention,
            need="food-insecurity",
            program_id="new-pantry",
            receiving_agency_id="agency-pantry",
            status="requested",
            response_due_at=clock.now + timedelta(days=2),
        ),
        at=clock.now + timedelta(days=20),
    )

    async def resolved() -> list:
        return [
            t
            for t in await tasks_of(runtime, patient)
            if t["kind"] == "recruit-provider" and t["status"] == "done"
        ]

    await eventually(resolved, what="recruit task closed")
    assert await admins_list() == []


async def test_a_task_moves_only_as_allowed_by_people_who_may_see_it_and_closing_stores_who(followup, agency):
    client, runtime, clock, publish = followup
    patient = uuid.uuid4()
    await publish(registered(agency, patient))
    await known(runtime, patient, "cm-ana")
    await publish(assessed(agency, patient, clock.now, flags=["suicidal-ideation"]))
    [task] = await eventually(lambda: tasks_of(runtime, patient), what="task")
    url, ana = f"/v1/tasks/{task['id']}/status", auth(agency)

    for headers, status in (
        (auth(agency, subject="cm-bo"), 404),  # another care manager's
        (auth("agency-elsewhere", "supervisor"), 404),
        (auth(agency, "analyst", "an-al"), 403),
        (auth(agency, "provider", "pr-po"), 403),
    ):
        assert (await client.post(url, json={"status": "done"}, headers=headers)).status_code == status
    started = await client.post(url, json={"status": "in-progress"}, headers=ana)
    assert (started.status_code, started.json()["status"]) == (200, "in-progress")
    unknown = await client.post(url, json={"status": "done", "reason": "Quartermaine"}, headers=ana)
    assert unknown.status_code == 422 and "Quartermaine" not in unknown.text
    bad_code = await client.post(url, json={"status": "done", "reason": "zelda"}, headers=ana)
    assert bad_code.status_code == 422 and "zelda" not in bad_code.text
    done = await client.post(url, json={"status": "done", "reason": "completed"}, headers=ana)
    body = done.json()
    assert (body["status"], body["closed_by"], body["closed_by_role"], body["closed_reason"]) == (
        "done",
        "cm-ana",
        "care-manager",
        "completed",
    )
    again = await client.post(url, json={"status": "cancelled"}, headers=ana)
    assert (again.status_code, again.json()["detail"]) == (409, "task is done; it cannot move to cancelled")
    changes = await runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2 ORDER BY position",
        str(patient),
        TaskStatusChanged.type,
    )
    assert [
        (json.loads(c["payload"])["to_status"], json.loads(c["payload"])["actor_id"]) for c in changes
    ] == [
        ("in-progress", "cm-ana"),
        ("done", "cm-ana"),
    ]


async def test_caseloads_count_each_care_manager_s_patients_and_work_and_reassignment_moves_it(
    followup, agency, schedule
):
    client, runtime, clock, publish = followup
    busy, calm, bo_s = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for patient, manager in ((busy, "cm-ana"), (calm, "cm-ana"), (bo_s, "cm-bo")):
        await publish(registered(agency, patient, manager))
        await known(runtime, patient, manager)
    await publish(assessed(agency, busy, clock.now, flags=["suicidal-ideation"]))
    await eventually(lambda: tasks_of(runtime, busy), what="task")
    await schedule(runtime, patient_id=calm, agency_id=agency, due_at=clock.now + timedelta(days=3))
    ana, supervisor = auth(agency), auth(agency, "supervisor", "sv-sam")

    mine = (await client.get("/v1/caseload", headers=ana)).json()
    assert [
        (p["patient_id"], p["open_tasks"], p["urgent_tasks"], p["overdue_tasks"]) for p in mine["items"]
    ] == [
        (str(busy), 1, 1, 0),
        (str(calm), 0, 0, 0),
    ]
    assert datetime.fromisoformat(mine["items"][1]["next_follow_up_due"]) == clock.now + timedelta(days=3)
    agency_view = await client.get("/v1/caseload/agency", headers=supervisor)
    assert [
        (c["care_manager_id"], c["patients"], c["open_tasks"], c["urgent_tasks"])
        for c in agency_view.json()["items"]
    ] == [
        ("cm-ana", 2, 1, 1),
        ("cm-bo", 1, 0, 0),
    ]
    assert (await client.get("/v1/caseload/agency", headers=ana)).status_code == 403
    assert (await client.get("/v1/caseload", headers=auth(agency, "admin", "ad-al"))).status_code == 403

    await publish(
        CareManagerAssigned(
            patient_id=busy,
            agency_id=agency,
            care_manager_id="cm-bo",
            previous_care_manager_id="cm-ana",
            reason="reassignment",
            assigned_at=clock.now,
            actor_id="sv-sam",
            actor_role="supervisor",
        )
    )
    await known(runtime, busy, "cm-bo")
    bo_tasks = (
        await client.get("/v1/tasks", params={"assignee": "me"}, headers=auth(agency, subject="cm-bo"))
    ).json()
    assert [t["patient_id"] for t in bo_tasks["items"]] == [str(busy)]
    assert [p["patient_id"] for p in (await client.get("/v1/caseload", headers=ana)).json()["items"]] == [
        str(calm)
    ]
    follow_ups = (await client.get("/v1/follow-ups", params={"patient_id": str(calm)}, headers=ana)).json()[
        "items"
    ]
    assert [(f["assignee_id"], f["channel"]) for f in follow_ups] == [("cm-ana", None)]


async def test_a_care_manager_adds_a_to_do_for_themselves_and_closes_it(followup, agency):
    client, runtime, clock, publish = followup
    patient = uuid.uuid4()
    await publish(registered(agency, patient))
    await eventually(
        lambda: runtime.pool.fetchval("SELECT count(*) FROM patients WHERE patient_id = $1", patient),
        what="patient known",
    )
    due = (clock.now + timedelta(days=2)).isoformat()
    body = {"patient_id": str(patient), "purpose": "paperwork", "priority": "high", "due_at": due}
    made = await client.post(
        "/v1/tasks", json=body, headers={**auth(agency), "Idempotency-Key": "td-1-" + agency}
    )
    assert made.status_code == 201, made.text
    task = made.json()
    assert (task["kind"], task["purpose"], task["assignee_id"], task["status"]) == (
        "to-do",
        "paperwork",
        "cm-ana",
        "open",
    )
    replayed = await client.post(
        "/v1/tasks", json=body, headers={**auth(agency), "Idempotency-Key": "td-1-" + agency}
    )
    assert replayed.json()["id"] == task["id"] and len(await tasks_of(runtime, patient)) == 1
    [opened] = await runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2", str(patient), TaskOpened.type
    )
    assert json.loads(opened["payload"])["purpose"] == "paperwork"
    mine = await client.get("/v1/tasks", params={"assignee": "me"}, headers=auth(agency))
    assert [(t["id"], t["purpose"]) for t in mine.json()["items"] if t["kind"] == "to-do"] == [
        (task["id"], "paperwork")
    ]
    for headers, code in (
        (auth("agency-elsewhere"), 404),
        (auth(agency, "analyst", "an-al"), 403),
    ):
        assert (await client.post("/v1/tasks", json=body, headers=headers)).status_code == code
    bad = await client.post(
        "/v1/tasks",
        json={**body, "purpose": "gossip", "due_at": "2020-01-01T00:00:00Z"},
        headers=auth(agency),
    )
    assert bad.status_code == 422
    assert [p["loc"] for p in bad.json()["detail"]] == [["body", "purpose"], ["body", "due_at"]]
    done = await client.post(
        f"/v1/tasks/{task['id']}/status", json={"status": "done", "reason": "completed"}, headers=auth(agency)
    )
    assert done.status_code == 200 and done.json()["status"] == "done"


async def test_a_supervisor_adds_a_to_do_for_the_patients_care_manager_over_http(followup, agency):
    client, runtime, clock, publish = followup
    patient, unassigned = uuid.uuid4(), uuid.uuid4()
    await publish(registered(agency, patient))
    await publish(registered(agency, unassigned, care_manager=None))
    await eventually(
        lambda: runtime.pool.fetchval(
            "SELECT count(*) = 2 FROM patients WHERE patient_id = ANY($1::uuid[])", [patient, unassigned]
        ),
        what="patients known",
    )
    supervisor = auth(agency, "supervisor", "sv-sam")
    due = (clock.now + timedelta(days=1)).isoformat()
    body = {"patient_id": str(patient), "purpose": "call-patient", "due_at": due, "for_care_manager": True}
    made = await client.post("/v1/tasks", json=body, headers=supervisor)
    assert made.status_code == 201, made.text
    task = made.json()
    assert (task["assignee_id"], task["assignee_role"], task["opened_by"], task["opened_by_role"]) == (
        "cm-ana",
        "care-manager",
        "sv-sam",
        "supervisor",
    )
    mine = await client.get("/v1/tasks", params={"assignee": "me"}, headers=auth(agency))
    assert task["id"] in [t["id"] for t in mine.json()["items"]]  # on the care manager's own list
    [opened] = await runtime.pool.fetch(
        "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2", str(patient), TaskOpened.type
    )
    payload = json.loads(opened["payload"])
    assert (payload["assignee_id"], payload["actor_id"], payload["actor_role"]) == (
        "cm-ana",
        "sv-sam",
        "supervisor",
    )
    nobody = await client.post("/v1/tasks", json={**body, "patient_id": str(unassigned)}, headers=supervisor)
    assert nobody.status_code == 409 and "no care manager" in nobody.json()["detail"]
    assert await tasks_of(runtime, unassigned) == []
