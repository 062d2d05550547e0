"""Arranging a contact with the patient and calling it off, over HTTP against followup's real database."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from careloop_shared.contracts import FollowUpCancelled, FollowUpDue, FollowUpScheduled
from careloop_shared.testing import bearer, eventually, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from followup.main import build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(scope="module")
async def followup(infra, database_factory, make_settings):
    clock = FakeClock(T0)
    dsn = await database_factory("followup_arranged_api")
    settings = make_settings(infra.bootstrap_servers, dsn, unique_prefix())
    async with served(build_app(settings, clock, keys=FakePatientKeys()), "http://followup") as served_app:
        yield (*served_app, clock)


@pytest.fixture
def agency() -> tuple[str, dict[str, str]]:
    name = f"agency-{uuid.uuid4().hex[:6]}"
    return name, bearer(name)


async def known_patient(followup, schedule, agency_id: str) -> uuid.UUID:
    """A patient followup knows for the agency (their plan's cadence follow-up, far off)."""
    _, runtime, clock = followup
    patient = uuid.uuid4()
    await schedule(runtime, patient_id=patient, agency_id=agency_id, due_at=clock.now + timedelta(days=30))
    return patient


async def test_a_contact_arranged_falls_due_for_the_patient_s_care_manager_and_can_be_called_off(
    followup, agency, schedule, emitted
):
    client, runtime, clock = followup
    agency_id, headers = agency
    patient = await known_patient(followup, schedule, agency_id)
    when = clock.now + timedelta(hours=2)
    body = {
        "patient_id": str(patient),
        "due_at": when.isoformat(),
        "channel": "phone",
        "purpose": "plan-review",
    }
    once = {**headers, "Idempotency-Key": f"arrange-{patient}"}
    r = await client.post("/v1/follow-ups", headers=once, json=body)
    assert r.status_code == 201, r.text
    shown = r.json()
    assert (shown["reason"], shown["purpose"], shown["channel"], shown["status"]) == (
        "arranged-contact",
        "plan-review",
        "phone",
        "scheduled",
    )
    again = await client.post("/v1/follow-ups", headers=once, json=body)
    assert (again.status_code, again.json()["id"]) == (201, shown["id"])
    [*_, scheduled] = await emitted(runtime, patient, FollowUpScheduled.type)
    assert (scheduled["follow_up_id"], scheduled["reason"], scheduled["purpose"]) == (
        shown["id"],
        "arranged-contact",
        "plan-review",
    )
    assert (scheduled["actor_id"], scheduled["actor_role"]) == ("dev-user", "care-manager")
    listed = await client.get("/v1/follow-ups", params={"patient_id": str(patient)}, headers=headers)
    assert sorted(f["reason"] for f in listed.json()["items"]) == ["arranged-contact", "plan-cadence"]

    path = f"/v1/follow-ups/{shown['id']}/arrangement"
    nothing = await client.post(path, headers=headers, json={})
    assert nothing.status_code == 422
    visit = await client.post(
        path, headers=headers, json={"channel": "in-person-only", "purpose": "home-visit"}
    )
    assert visit.status_code == 200, visit.text
    assert (visit.json()["channel"], visit.json()["purpose"], visit.json()["due_at"]) == (
        "in-person-only",
        "home-visit",
        shown["due_at"],
    )
    [*_, moved] = await emitted(runtime, patient, FollowUpScheduled.type)
    assert (moved["follow_up_id"], moved["channel"], moved["purpose"], moved["rescheduled"]) == (
        shown["id"],
        "in-person-only",
        "home-visit",
        True,
    )

    clock.advance(hours=2)

    async def fell_due() -> bool:
        return any(
            d["follow_up_id"] == shown["id"] for d in await emitted(runtime, patient, FollowUpDue.type)
        )

    await eventually(fell_due, what="the arranged contact due")
    tasks = await runtime.pool.fetch("SELECT kind, status FROM tasks WHERE patient_id = $1", patient)
    assert [tuple(t) for t in tasks] == [("follow-up", "open")]  # the cadence contact is a month away

    off = await client.post(
        f"/v1/follow-ups/{shown['id']}/cancel", headers=headers, json={"reason": "no-longer-needed"}
    )
    assert (off.status_code, off.json()["status"]) == (200, "cancelled"), off.text
    [cancelled] = await emitted(runtime, patient, FollowUpCancelled.type)
    assert (cancelled["reason"], cancelled["actor_id"]) == ("no-longer-needed", "dev-user")
    closed = await runtime.pool.fetchval(
        "SELECT status FROM tasks WHERE patient_id = $1 AND kind = 'follow-up'", patient
    )
    assert closed == "cancelled"
    twice = await client.post(
        f"/v1/follow-ups/{shown['id']}/cancel", headers=headers, json={"reason": "no-longer-needed"}
    )
    assert (twice.status_code, twice.json()) == (409, {"detail": "follow-up is cancelled"})


async def test_bad_input_another_agency_and_a_role_without_the_permission_are_refused(
    followup, agency, schedule, emitted
):
    client, runtime, clock = followup
    agency_id, headers = agency
    patient = await known_patient(followup, schedule, agency_id)
    good = {
        "patient_id": str(patient),
        "due_at": (clock.now + timedelta(days=1)).isoformat(),
        "channel": "phone",
        "purpose": "check-in",
    }
    for change, loc in (
        ({"channel": "carrier-pigeon"}, ["body", "channel"]),
        ({"purpose": "lunch"}, ["body", "purpose"]),
        ({"due_at": (clock.now - timedelta(hours=1)).isoformat()}, ["body", "due_at"]),
        ({"due_at": "2026-07-01T10:00:00"}, ["body", "due_at"]),  # no offset: which time would it be?
        ({"patient_id": "not-an-id"}, ["body", "patient_id"]),
    ):
        bad = await client.post("/v1/follow-ups", headers=headers, json={**good, **change})
        assert bad.status_code == 422, change
        assert loc in [d["loc"] for d in bad.json()["detail"]]
    stranger = await client.post("/v1/follow-ups", headers=bearer("agency-stranger"), json=good)
    unknown = await client.post(
        "/v1/follow-ups", headers=headers, json={**good, "patient_id": str(uuid.uuid4())}
    )
    provider = await client.post("/v1/follow-ups", headers=bearer(agency_id, "provider"), json=good)
    assert (stranger.status_code, unknown.status_code, provider.status_code) == (404, 404, 403)
    assert stranger.json() == {"detail": "patient not found"}
    [cadence] = (
        await client.get("/v1/follow-ups", params={"patient_id": str(patient)}, headers=headers)
    ).json()["items"]
    plan_s = await client.post(
        f"/v1/follow-ups/{cadence['id']}/cancel", headers=headers, json={"reason": "patient-request"}
    )
    assert (plan_s.status_code, plan_s.json()) == (
        409,
        {"detail": "only an arranged contact can be called off"},
    )
    assert [s["reason"] for s in await emitted(runtime, patient, FollowUpScheduled.type)] == []
    assert await emitted(runtime, patient, FollowUpCancelled.type) == []
