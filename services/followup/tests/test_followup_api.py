"""followup over HTTP against its real database and broker (in-process app, injected clock)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from careloop_shared.contracts import (
    FollowUpCompleted,
    FollowUpDue,
    FollowUpScheduled,
    ReassessmentRequested,
)
from careloop_shared.rules import load_rules
from careloop_shared.testing import bearer, eventually, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from followup.domain.rules import RULES_FILE, FollowUpRules
from followup.main import build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
RULES = load_rules(FollowUpRules, RULES_FILE)
NOTE = "Quartermaine said her landlord at 12 Elm St changed the locks"


@pytest_asyncio.fixture(scope="module")
async def followup(infra, database_factory, make_settings):
    clock = FakeClock(T0)
    dsn = await database_factory("followup_api")
    settings = make_settings(infra.bootstrap_servers, dsn, unique_prefix())
    app = build_app(settings, clock, keys=FakePatientKeys())
    async with served(app, "http://followup") as (client, runtime):
        yield client, runtime, clock


@pytest.fixture
def agency() -> tuple[str, dict[str, str]]:
    name = f"agency-{uuid.uuid4().hex[:6]}"
    return name, bearer(name)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def wait_status(runtime, follow_up_id: uuid.UUID, status: str) -> None:
    async def reached() -> bool:
        return (
            await runtime.pool.fetchval("SELECT status FROM follow_ups WHERE id = $1", follow_up_id) == status
        )

    await eventually(reached, what=f"follow-up {status}")


@pytest.fixture
def due_follow_up(followup, schedule):
    async def due(agency_id: str, **kw) -> tuple[uuid.UUID, uuid.UUID]:
        """A follow-up the scheduler has already marked due; returns (patient id, follow-up id)."""
        _, runtime, clock = followup
        patient = kw.pop("patient_id", None) or uuid.uuid4()
        due_at = kw.pop("due_at", None) or clock.now - timedelta(minutes=1)
        follow_up_id = await schedule(runtime, patient_id=patient, agency_id=agency_id, due_at=due_at, **kw)
        await wait_status(runtime, follow_up_id, "due")
        return patient, follow_up_id

    return due


async def test_reached_outcome_completes_and_schedules_the_next_contact_keeping_the_note_private(
    followup, agency, due_follow_up, emitted, follow_ups
):
    client, runtime, clock = followup
    agency_id, headers = agency
    patient, follow_up_id = await due_follow_up(agency_id, every_days=7)
    goal = uuid.uuid4()
    r = await client.post(
        f"/v1/follow-ups/{follow_up_id}/outcome",
        headers=headers,
        json={
            "reached": True,
            "goal_progress": [{"goal_id": str(goal), "progress": "improving"}],
            "barriers": ["transportation"],
            "next_step": "continue-plan",
            "note": NOTE,
        },
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["follow_up"]["status"], result["attempt"], result["reassessment"]) == (
        "completed",
        1,
        None,
    )
    assert NOTE not in r.text

    [completed] = await emitted(runtime, patient, FollowUpCompleted.type)
    assert completed["reached"] is True and completed["attempt"] == 1
    assert completed["goal_progress"] == [{"goal_id": str(goal), "progress": "improving"}]
    assert (completed["barriers"], completed["next_step"]) == (["transportation"], "continue-plan")
    outbox_text = await runtime.pool.fetchval("SELECT string_agg(payload::text, '') FROM outbox")
    assert "Quartermaine" not in outbox_text

    # Recurrence: the next cadence contact counts from this one.
    rows = await follow_ups(runtime, patient)
    nxt = next(r for r in rows if r["status"] == "scheduled")
    assert nxt["id"] == uuid.UUID(result["next_follow_up_id"])
    assert nxt["due_at"] == clock.now + timedelta(days=7)
    assert await emitted(runtime, patient, ReassessmentRequested.type) == []

    detail = (await client.get(f"/v1/follow-ups/{follow_up_id}", headers=headers)).json()
    assert [o["note"] for o in detail["outcomes"]] == [NOTE]


async def test_not_reached_retries_then_requests_a_reassessment_once_after_the_last_attempt(
    followup, agency, due_follow_up, emitted
):
    client, runtime, clock = followup
    agency_id, headers = agency
    patient, follow_up_id = await due_follow_up(agency_id, priority="high")
    for attempt in range(1, RULES.not_reached.max_attempts):
        r = await client.post(
            f"/v1/follow-ups/{follow_up_id}/outcome", headers=headers, json={"reached": False}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["follow_up"]["status"], r.json()["follow_up"]["attempt"]) == (
            "scheduled",
            attempt + 1,
        )
        assert at(r.json()["follow_up"]["due_at"]) == clock.now + RULES.retry_delay("high")
        clock.advance(hours=RULES.not_reached.retry_after_hours_by_priority["high"])
        await wait_status(runtime, follow_up_id, "due")
    assert len(await emitted(runtime, patient, FollowUpDue.type)) == RULES.not_reached.max_attempts

    last = await client.post(
        f"/v1/follow-ups/{follow_up_id}/outcome", headers=headers, json={"reached": False}
    )
    assert last.status_code == 200, last.text
    assert (last.json()["follow_up"]["status"], last.json()["reassessment"]) == ("completed", "not-reached")
    [requested] = await emitted(runtime, patient, ReassessmentRequested.type)
    assert (requested["reason"], requested["follow_up_id"]) == ("not-reached", str(follow_up_id))
    attempts = [e["attempt"] for e in await emitted(runtime, patient, FollowUpCompleted.type)]
    assert attempts == list(range(1, RULES.not_reached.max_attempts + 1))

    again = await client.post(
        f"/v1/follow-ups/{follow_up_id}/outcome", headers=headers, json={"reached": False}
    )
    assert (again.status_code, again.json()["detail"]) == (409, "follow-up is completed")
    assert len(await emitted(runtime, patient, ReassessmentRequested.type)) == 1


async def test_a_worsening_goal_requests_a_reassessment_once(followup, agency, due_follow_up, emitted):
    client, runtime, _ = followup
    agency_id, headers = agency
    patient, follow_up_id = await due_follow_up(agency_id)
    body = {"reached": True, "goal_progress": [{"goal_id": str(uuid.uuid4()), "progress": "worsening"}]}
    r = await client.post(f"/v1/follow-ups/{follow_up_id}/outcome", headers=headers, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["reassessment"] == "worsening"
    [requested] = await emitted(runtime, patient, ReassessmentRequested.type)
    assert requested["reason"] == "worsening"
    assert (
        await client.post(f"/v1/follow-ups/{follow_up_id}/outcome", headers=headers, json=body)
    ).status_code == 409
    assert len(await emitted(runtime, patient, ReassessmentRequested.type)) == 1


async def test_an_outcome_for_a_follow_up_not_yet_due_is_refused_with_the_reason(
    followup, agency, schedule, emitted
):
    client, runtime, clock = followup
    agency_id, headers = agency
    patient = uuid.uuid4()
    follow_up_id = await schedule(
        runtime, patient_id=patient, agency_id=agency_id, due_at=clock.now + timedelta(days=9)
    )
    r = await client.post(f"/v1/follow-ups/{follow_up_id}/outcome", headers=headers, json={"reached": True})
    assert (r.status_code, r.json()) == (409, {"detail": "follow-up is not due yet"})
    assert await emitted(runtime, patient, FollowUpCompleted.type) == []


async def test_bad_outcome_input_is_refused_with_reasons_that_never_echo_it(
    followup, agency, due_follow_up, emitted
):
    client, runtime, _ = followup
    agency_id, headers = agency
    patient, follow_up_id = await due_follow_up(agency_id)
    bad = await client.post(
        f"/v1/follow-ups/{follow_up_id}/outcome",
        headers=headers,
        json={"reached": True, "barriers": ["quartermaine"], "next_step": "zelda-calls"},
    )
    assert bad.status_code == 422
    assert {(tuple(d["loc"]), d["msg"]) for d in bad.json()["detail"]} == {
        (("body", "barriers", 0), "unknown barrier code"),
        (("body", "next_step"), "unknown next step code"),
    }
    malformed = await client.post(
        f"/v1/follow-ups/{follow_up_id}/outcome",
        headers=headers,
        json={"reached": "Quartermaine", "barriers": ["Zelda Quartermaine"], "extra": "1961-07-19"},
    )
    assert malformed.status_code == 422
    for text in (bad.text, malformed.text):
        assert not any(p in text.lower() for p in ("quartermaine", "zelda", "1961-07-19"))
    assert await emitted(runtime, patient, FollowUpCompleted.type) == []


async def test_a_retried_outcome_with_the_same_idempotency_key_is_recorded_once(
    followup, agency, due_follow_up, emitted
):
    client, runtime, _ = followup
    agency_id, headers = agency
    patient, follow_up_id = await due_follow_up(agency_id)
    key = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(f"/v1/follow-ups/{follow_up_id}/outcome", headers=key, json={"reached": True})
    retry = await client.post(f"/v1/follow-ups/{follow_up_id}/outcome", headers=key, json={"reached": True})
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"
    assert len(await emitted(runtime, patient, FollowUpCompleted.type)) == 1


async def test_work_queue_lists_due_and_overdue_most_urgent_priority_first_then_longest_waiting(
    followup, agency, due_follow_up, schedule
):
    client, runtime, clock = followup
    agency_id, headers = agency
    now = clock.now
    expected = []
    for priority, minutes in (("low", 50), ("urgent", 10), ("high", 40), ("urgent", 30), ("moderate", 20)):
        _, follow_up_id = await due_follow_up(
            agency_id, priority=priority, due_at=now - timedelta(minutes=minutes)
        )
        expected.append((priority, minutes, str(follow_up_id)))
    await schedule(runtime, patient_id=uuid.uuid4(), agency_id=agency_id, due_at=now + timedelta(days=1))
    rank = ("urgent", "high", "moderate", "low")
    expected.sort(key=lambda e: (rank.index(e[0]), -e[1]))

    queue = (await client.get("/v1/work-queue", headers=headers)).json()
    assert [f["id"] for f in queue["items"]] == [e[2] for e in expected]
    assert {f["status"] for f in queue["items"]} <= {"due", "overdue"}
    page = (await client.get("/v1/work-queue", params={"limit": 2}, headers=headers)).json()
    assert ([f["id"] for f in page["items"]], page["next_offset"]) == ([e[2] for e in expected[:2]], 2)


async def test_an_overdue_follow_up_is_on_the_agency_s_overdue_list(followup, agency, schedule):
    client, runtime, clock = followup
    agency_id, headers = agency
    follow_up_id = await schedule(
        runtime,
        patient_id=uuid.uuid4(),
        agency_id=agency_id,
        priority="urgent",
        due_at=clock.now - RULES.grace("urgent") - timedelta(minutes=1),
    )
    await wait_status(runtime, follow_up_id, "overdue")
    overdue = (await client.get("/v1/follow-ups", params={"status": "overdue"}, headers=headers)).json()
    assert [f["id"] for f in overdue["items"]] == [str(follow_up_id)]
    assert overdue["items"][0]["overdue_since"] is not None


async def test_another_agency_sees_nothing_and_cannot_change_anything(
    followup, agency, due_follow_up, emitted
):
    client, runtime, _ = followup
    agency_id, headers = agency
    patient, follow_up_id = await due_follow_up(agency_id)
    stranger = bearer("agency-stranger")
    listed = await client.get("/v1/follow-ups", params={"patient_id": str(patient)}, headers=stranger)
    assert listed.json()["items"] == []
    assert str(follow_up_id) not in (await client.get("/v1/work-queue", headers=stranger)).text
    assert (await client.get(f"/v1/follow-ups/{follow_up_id}", headers=stranger)).status_code == 404
    outcome = await client.post(
        f"/v1/follow-ups/{follow_up_id}/outcome", headers=stranger, json={"reached": True}
    )
    resched = await client.post(
        f"/v1/follow-ups/{follow_up_id}/reschedule",
        headers=stranger,
        json={"reason": "patient-request", "due_at": (T0 + timedelta(days=400)).isoformat()},
    )
    assert (outcome.status_code, resched.status_code) == (404, 404)
    assert await emitted(runtime, patient, FollowUpCompleted.type) == []
    mine = await client.get("/v1/follow-ups", params={"patient_id": str(patient)}, headers=headers)
    assert [f["id"] for f in mine.json()["items"]] == [str(follow_up_id)]
    assert (await client.get("/v1/work-queue")).status_code == 401


async def test_reschedule_moves_the_follow_up_and_it_falls_due_again_once(
    followup, agency, due_follow_up, emitted
):
    client, runtime, clock = followup
    agency_id, headers = agency
    patient, follow_up_id = await due_follow_up(agency_id)
    new_due = clock.now + timedelta(hours=2)
    r = await client.post(
        f"/v1/follow-ups/{follow_up_id}/reschedule",
        headers=headers,
        json={"reason": "patient-request", "due_at": new_due.isoformat()},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], at(r.json()["due_at"])) == ("scheduled", new_due)
    [*_, rescheduled] = await emitted(runtime, patient, FollowUpScheduled.type)
    assert rescheduled["rescheduled"] is True
    assert (rescheduled["actor_id"], rescheduled["actor_role"]) == ("dev-user", "care-manager")
    moved_by = await runtime.pool.fetchrow(
        "SELECT by_subject, by_role FROM follow_up_reschedules WHERE follow_up_id = $1", follow_up_id
    )
    assert tuple(moved_by) == ("dev-user", "care-manager")
    clock.advance(hours=2)
    await wait_status(runtime, follow_up_id, "due")
    dues = await emitted(runtime, patient, FollowUpDue.type)
    assert at(dues[-1]["due_at"]) == new_due
    assert len(dues) == 2

    for body, loc in (
        ({"reason": "felt-like-it", "due_at": new_due.isoformat()}, ["body", "reason"]),
        (
            {"reason": "patient-request", "due_at": (clock.now - timedelta(hours=1)).isoformat()},
            ["body", "due_at"],
        ),
        ({"reason": "patient-request", "due_at": "2026-07-01T10:00:00"}, ["body", "due_at"]),
    ):
        bad = await client.post(f"/v1/follow-ups/{follow_up_id}/reschedule", headers=headers, json=body)
        assert bad.status_code == 422, body
        assert loc in [d["loc"] for d in bad.json()["detail"]]
        assert "felt-like-it" not in bad.text


async def test_list_filters_by_patient_and_status_and_pages(followup, agency, schedule):
    client, runtime, clock = followup
    agency_id, headers = agency
    patient = uuid.uuid4()
    for days in (1, 2, 3):
        await schedule(
            runtime,
            patient_id=patient,
            agency_id=agency_id,
            due_at=clock.now + timedelta(days=days),
            reason="referral-check-in",
        )
    params = {"patient_id": str(patient), "status": "scheduled", "limit": 2}
    first = (await client.get("/v1/follow-ups", params=params, headers=headers)).json()
    second = (await client.get("/v1/follow-ups", params={**params, "offset": 2}, headers=headers)).json()
    assert (len(first["items"]), first["next_offset"], len(second["items"]), second["next_offset"]) == (
        2,
        2,
        1,
        None,
    )
    none_due = await client.get(
        "/v1/follow-ups", params={"patient_id": str(patient), "status": "due"}, headers=headers
    )
    assert none_due.json()["items"] == []
    unknown = await client.get("/v1/follow-ups", params={"status": "Quartermaine"}, headers=headers)
    assert unknown.status_code == 422 and "Quartermaine" not in unknown.text


async def test_every_read_of_a_follow_up_s_notes_is_audited_with_the_person_and_refusals_too(
    followup, agency, due_follow_up, emitted
):
    client, runtime, _ = followup
    agency_id, _ = agency
    patient, follow_up_id = await due_follow_up(agency_id)
    ana = bearer(agency_id, subject="cm-ana")
    r = await client.post(
        f"/v1/follow-ups/{follow_up_id}/outcome", headers=ana, json={"reached": True, "note": NOTE}
    )
    assert r.status_code == 200, r.text
    [completed] = await emitted(runtime, patient, FollowUpCompleted.type)
    assert (completed["actor_id"], completed["actor_role"]) == ("cm-ana", "care-manager")

    detail = await client.get(f"/v1/follow-ups/{follow_up_id}", headers=ana)
    assert detail.status_code == 200, detail.text
    assert [(o["note"], o["recorded_by"], o["recorded_by_role"]) for o in detail.json()["outcomes"]] == [
        (NOTE, "cm-ana", "care-manager")
    ]
    # Pseudonymous, coded listings are not disclosures of the notes: no entry.
    assert (await client.get("/v1/follow-ups", params={"patient_id": str(patient)}, headers=ana)).is_success
    assert (await client.get("/v1/work-queue", headers=ana)).is_success
    stranger = bearer("agency-elsewhere", subject="cm-eve")
    assert (await client.get(f"/v1/follow-ups/{follow_up_id}", headers=stranger)).status_code == 404
    analyst = bearer(agency_id, role="analyst", subject="an-al")
    assert (await client.get(f"/v1/follow-ups/{follow_up_id}", headers=analyst)).status_code == 403

    supervisor = bearer(agency_id, role="supervisor", subject="sv-sam")
    trail = await client.get("/v1/audit", params={"patient_id": str(patient)}, headers=supervisor)
    assert trail.status_code == 200, trail.text
    [entry] = trail.json()["items"]
    assert (entry["subject"], entry["role"], entry["outcome"], entry["what"], entry["entity_id"]) == (
        "cm-ana",
        "care-manager",
        "allowed",
        "follow-up",
        str(follow_up_id),
    )
    assert (entry["route"], entry["source"], entry["patient_agency_id"]) == (
        "GET /v1/follow-ups/{follow_up_id}",
        "followup",
        agency_id,
    )
    # A refusal on a follow-up's route names the follow-up; whose patient it is stays unsaid.
    refused = await runtime.pool.fetch(
        "SELECT subject, outcome, what, outcome_detail, patient_id FROM audit_log"
        " WHERE entity_id = $1 AND outcome = 'denied' ORDER BY position",
        str(follow_up_id),
    )
    assert [tuple(e) for e in refused] == [
        ("cm-eve", "denied", "follow-up", "follow-up not found", None),
        ("an-al", "denied", "follow-up", "follow-up:read", None),
    ]
    disclosures = await client.get(
        "/v1/audit/disclosures", params={"patient_id": str(patient)}, headers=supervisor
    )
    assert disclosures.json()["items"] == []
    assert (
        await client.get("/v1/audit", params={"patient_id": str(patient)}, headers=ana)
    ).status_code == 403
    other = bearer("agency-elsewhere", role="supervisor")
    assert (
        await client.get("/v1/audit", params={"patient_id": str(patient)}, headers=other)
    ).status_code == 404
