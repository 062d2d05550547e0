"""The referred patient's appointment over HTTP against referral's real database and broker."""

from datetime import datetime, timedelta

import pytest

from careloop_shared.testing import bearer, eventually
from services.referral.tests.test_referral_api import (  # noqa: F401
    OVERDUE,
    made_referral,
    referral,
    set_status,
    unique,
)

pytestmark = pytest.mark.integration

CHANGED = "careloop.referral.appointment_status_changed.v1"


async def test_the_receiver_books_and_records_the_appointment_and_the_referrer_sees_it(referral):  # noqa: F811
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    made, patient_id = await made_referral(svc, category)
    rid, path = made["id"], f"/v1/referrals/{made['id']}/appointment"
    when = svc.clock.now + timedelta(days=2)
    early = await svc.client.post(
        path, json={"status": "booked", "starts_at": when.isoformat()}, headers=bearer(receiving)
    )
    assert early.status_code == 409  # not accepted yet
    assert (await set_status(svc, rid, receiving, status="accepted")).status_code == 200

    provider = bearer(receiving, "provider", "pr-kai")
    booked = await svc.client.post(
        path, json={"status": "booked", "starts_at": when.isoformat()}, headers=provider
    )
    assert booked.status_code == 200, booked.text
    shown = booked.json()
    assert (shown["appointment_status"], datetime.fromisoformat(shown["appointment_starts_at"])) == (
        "booked",
        when,
    )
    referring = await svc.client.get(f"/v1/referrals/{rid}", headers=bearer("agency-home"))
    assert referring.json()["appointment_status"] == "booked"
    not_theirs = await svc.client.post(path, json={"status": "noshow"}, headers=bearer("agency-home"))
    stranger = await svc.client.post(path, json={"status": "noshow"}, headers=bearer("agency-stranger"))
    assert (not_theirs.status_code, stranger.status_code) == (403, 404)
    for bad in (
        {"status": "lost"},
        {"status": "booked"},
        {"status": "booked", "starts_at": "2026-11-05T10:00:00"},
    ):
        refused = await svc.client.post(path, json=bad, headers=provider)
        assert refused.status_code == 422, bad
        assert "lost" not in refused.text

    too_soon = await svc.client.post(path, json={"status": "noshow"}, headers=provider)
    assert too_soon.status_code == 409
    svc.clock.advance(timedelta(days=2, hours=1))
    missed = await svc.client.post(path, json={"status": "noshow"}, headers=provider)
    assert missed.json()["appointment_status"] == "noshow"
    events = await svc.outbox(patient_id, CHANGED)
    assert [(e["from_status"], e["status"]) for e in events] == [(None, "booked"), ("booked", "noshow")]
    assert {(e["by_agency_id"], e["actor_id"], e["agency_id"]) for e in events} == {
        (receiving, "pr-kai", "agency-home")
    }
    illegal = await svc.client.post(path, json={"status": "fulfilled"}, headers=provider)
    assert (illegal.status_code, illegal.json()) == (
        409,
        {"detail": "an appointment missed cannot become fulfilled"},
    )


async def booked_in_three_hours(svc) -> tuple[str, str, str, datetime]:
    """A referral accepted by a new program's agency with an appointment booked three hours on: the
    receiving agency, the referral, the patient and the time."""
    category, receiving = unique("cat"), unique("agency")
    await svc.program(category, agency=receiving)
    made, patient_id = await made_referral(svc, category)
    rid = made["id"]
    assert (await set_status(svc, rid, receiving, status="accepted")).status_code == 200
    when = svc.clock.now + timedelta(hours=3)
    booked = await svc.client.post(
        f"/v1/referrals/{rid}/appointment",
        json={"status": "booked", "starts_at": when.isoformat()},
        headers=bearer(receiving),
    )
    assert booked.status_code == 200, booked.text
    return receiving, rid, patient_id, when


async def attendance(svc, patient_id) -> list:
    return [e for e in await svc.outbox(patient_id, OVERDUE) if e["deadline"] == "attendance"]


async def test_a_booking_past_its_time_with_no_word_is_flagged_overdue_once(referral):  # noqa: F811
    svc = referral
    receiving, rid, patient_id, when = await booked_in_three_hours(svc)
    path = f"/v1/referrals/{rid}/appointment"
    svc.clock.advance(timedelta(days=1, hours=4))  # a day and an hour after its time

    [overdue] = await eventually(lambda: attendance(svc, patient_id), what="attendance overdue")
    assert datetime.fromisoformat(overdue["due_at"]) == when + timedelta(days=1)
    assert (overdue["referral_id"], overdue["receiving_agency_id"]) == (str(rid), receiving)
    for side in (receiving, "agency-home"):  # the provider is asked, the referring agency sees it
        shown = await svc.client.get(f"/v1/referrals/{rid}", headers=bearer(side))
        assert shown.json()["attendance_overdue"] is True, side
    missed = await svc.client.post(path, json={"status": "noshow"}, headers=bearer(receiving))
    assert missed.status_code == 200 and missed.json()["attendance_overdue"] is False
    await svc.program(category := unique("cat"))
    sentinel, _ = await made_referral(svc, category)  # the loop ticks on: nothing more for this booking
    svc.clock.advance(timedelta(days=5))  # past two working days from any weekday
    await eventually(
        lambda: svc.runtime.pool.fetchval(
            "SELECT response_overdue_at IS NOT NULL FROM referrals WHERE id = $1", sentinel["id"]
        ),
        what="sentinel overdue",
    )
    assert len(await attendance(svc, patient_id)) == 1


async def test_a_referral_completed_with_its_appointment_booked_is_asked_about_and_answered(referral):  # noqa: F811
    svc = referral
    receiving, rid, patient_id, when = await booked_in_three_hours(svc)
    path = f"/v1/referrals/{rid}/appointment"
    done = await set_status(svc, rid, receiving, status="completed", outcome={"service_delivered": True})
    assert done.status_code == 200, done.text
    shown = (await svc.client.get(f"/v1/referrals/{rid}", headers=bearer(receiving))).json()
    assert (shown["status"], shown["appointment_status"]) == ("completed", "booked")
    moved = await svc.client.post(
        path,
        json={"status": "booked", "starts_at": (when + timedelta(days=1)).isoformat()},
        headers=bearer(receiving),
    )
    assert moved.status_code == 409  # done with: it is answered for, not moved
    svc.clock.advance(timedelta(days=1, hours=4))

    [overdue] = await eventually(
        lambda: attendance(svc, patient_id), what="attendance overdue of a completed referral"
    )
    asked = {"status": "completed", "attendance_overdue": "true"}
    waiting = await svc.client.get("/v1/referrals", params=asked, headers=bearer(receiving))
    assert [r["id"] for r in waiting.json()["items"]] == [str(rid)]
    assert overdue["referral_id"] == str(rid)
    came = await svc.client.post(path, json={"status": "fulfilled"}, headers=bearer(receiving))
    assert came.status_code == 200, came.text
    assert (came.json()["status"], came.json()["appointment_status"], came.json()["attendance_overdue"]) == (
        "completed",
        "fulfilled",
        False,
    )
    events = await svc.outbox(patient_id, CHANGED)
    assert [(e["from_status"], e["status"]) for e in events] == [(None, "booked"), ("booked", "fulfilled")]
    answered = await svc.client.get("/v1/referrals", params=asked, headers=bearer(receiving))
    assert answered.json()["items"] == []
