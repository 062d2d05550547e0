"""The provider keeps the referred patient's appointment from the referral's page."""

import json
import re

from services.workspace.tests.test_workspace_inbox import JOE, REFERRAL, ROSA, form_for, referral, rosa, rows
from services.workspace.tests.test_workspace_patient import PID, REFERRAL_ROW, answer_everything, section

APPOINTMENT = f"/v1/referrals/{REFERRAL}/appointment"


def answer(services, status="accepted", **changes):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral(status, **changes))
    services.answer("intake", "GET", f"/v1/referred-patients/{ROSA}", body=rosa())


async def test_an_accepted_referral_books_an_appointment_in_the_workspace_time_zone(
    make_app, open_browser, services, csrf_of, sign_in
):
    from workspace.config import WorkspaceSettings

    answer(services)
    services.answer("referral", "POST", APPOINTMENT, body=referral("accepted", appointment_status="booked"))
    async with open_browser(make_app(WorkspaceSettings(time_zone="America/Chicago"))) as http:
        await sign_in(http, JOE)
        page = await http.get(f"/inbox/referrals/{REFERRAL}")
        assert "No appointment booked yet." in page.text
        assert "In America/Chicago time" in page.text
        form = form_for(page, csrf_of, "booked")
        past = await http.post(
            f"/inbox/referrals/{REFERRAL}/appointment", data={**form, "starts_at": "2026-03-01T10:00"}
        )
        assert past.status_code == 422 and "Choose a time in the future." in past.text
        sent = await http.post(
            f"/inbox/referrals/{REFERRAL}/appointment", data={**form, "starts_at": "2026-03-09T10:00"}
        )
    assert sent.headers["location"] == f"/inbox/referrals/{REFERRAL}?notice=appointment-booked"
    [request] = services.called("referral", APPOINTMENT)
    assert json.loads(request.content) == {"status": "booked", "starts_at": "2026-03-09T10:00:00-05:00"}
    assert request.headers["Idempotency-Key"] == form["idempotency_key"]


async def test_a_booked_appointment_is_moved_or_said_to_have_been_kept_or_missed(
    client, services, csrf_of, sign_in
):
    answer(
        services,
        "in-progress",
        appointment_status="booked",
        appointment_starts_at="2026-03-04T15:00:00+00:00",
    )
    services.answer(
        "referral", "POST", APPOINTMENT, body=referral("in-progress", appointment_status="noshow")
    )
    await sign_in(client, JOE)
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    section = page.text.split('id="appointment-heading"', 1)[1].split("</section>", 1)[0]
    assert "Booked for" in section and "Wed 04 Mar 15:00" in section
    assert "Move the appointment" in section
    assert re.findall(r'name="status" value="([^"]+)"', section) == [
        "booked",
        "fulfilled",
        "noshow",
        "cancelled",
    ]
    missed = await client.post(
        f"/inbox/referrals/{REFERRAL}/appointment", data=form_for(page, csrf_of, "noshow")
    )
    assert missed.headers["location"] == f"/inbox/referrals/{REFERRAL}?notice=appointment-noshow"
    assert json.loads(services.called("referral", APPOINTMENT)[0].content) == {"status": "noshow"}
    bad = await client.post(
        f"/inbox/referrals/{REFERRAL}/appointment",
        data={**form_for(page, csrf_of, "noshow"), "status": "lost"},
    )
    assert bad.status_code == 422 and "Choose what happened to the appointment." in bad.text
    assert len(services.called("referral", APPOINTMENT)) == 1


async def test_the_service_s_refusal_is_said_on_the_appointment_form(client, services, csrf_of, sign_in):
    answer(services)
    services.answer(
        "referral",
        "POST",
        APPOINTMENT,
        409,
        {"detail": "the referral is completed: appointments are for referrals worked on"},
    )
    await sign_in(client, JOE)
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    refused = await client.post(
        f"/inbox/referrals/{REFERRAL}/appointment",
        data={**form_for(page, csrf_of, "booked"), "starts_at": "2026-03-09T10:00"},
    )
    assert refused.status_code == 409
    assert (
        'id="appointment-problem"' in refused.text
        and "appointments are for referrals worked on" in refused.text
    )


async def test_no_appointment_is_offered_before_acceptance_or_after_the_referral_closed(
    client, services, sign_in
):
    await sign_in(client, JOE)
    for status in ("requested", "completed"):
        answer(services, status)
        page = await client.get(f"/inbox/referrals/{REFERRAL}")
        assert 'id="appointment-heading"' not in page.text
    answer(
        services,
        "completed",
        appointment_status="fulfilled",
        appointment_starts_at="2026-03-04T15:00:00+00:00",
    )
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    section = page.text.split('id="appointment-heading"', 1)[1].split("</section>", 1)[0]
    assert "The patient came on" in section and "<form" not in section


async def test_a_completed_referral_s_booked_appointment_is_said_to_have_been_kept_not_moved(
    client, services, csrf_of, sign_in
):
    answer(services, "completed", **OVERDUE)
    services.answer(
        "referral", "POST", APPOINTMENT, body=referral("completed", appointment_status="fulfilled")
    )
    services.page("referral", "/v1/referrals", [referral("completed", **OVERDUE)])
    await sign_in(client, JOE)
    [listed] = rows(await client.get("/inbox?view=closed"), "referrals")
    assert "appointment Sun 01 Mar 15:00 say whether they came" in listed
    inbox = await client.get("/inbox")  # and above the open ones, until it is answered
    waiting = inbox.text.split('id="unanswered-appointments"', 1)[1].split("</section>", 1)[0]
    assert f'href="/inbox/referrals/{REFERRAL}#appointment"' in waiting and "say whether they came" in waiting
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    section = page.text.split('id="appointment-heading"', 1)[1].split("</section>", 1)[0]
    assert "Booked for" in section and "Its time has passed:" in section
    assert "completed with this appointment still booked" in section and "Move the appointment" not in section
    assert re.findall(r'name="status" value="([^"]+)"', section) == ["fulfilled", "noshow", "cancelled"]
    came = await client.post(
        f"/inbox/referrals/{REFERRAL}/appointment", data=form_for(page, csrf_of, "fulfilled")
    )
    assert came.headers["location"] == f"/inbox/referrals/{REFERRAL}?notice=appointment-fulfilled"
    assert json.loads(services.called("referral", APPOINTMENT)[0].content) == {"status": "fulfilled"}


async def test_a_care_manager_may_not_keep_the_appointment(client, services, csrf_of, sign_in):
    await sign_in(client)
    token = csrf_of(await client.get("/patients/find"))
    page = await client.post(
        f"/inbox/referrals/{REFERRAL}/appointment",
        data={"csrf_token": token, "idempotency_key": "k" * 20, "status": "noshow"},
    )
    assert page.status_code == 403
    assert services.called("referral", APPOINTMENT) == []


async def test_the_care_manager_sees_the_appointment_on_the_patient_s_referral(
    client, services, sign_in, make_task
):
    answer_everything(services, make_task)
    missed = {
        **REFERRAL_ROW,
        "appointment_status": "noshow",
        "appointment_starts_at": "2026-03-04T15:00:00+00:00",
    }
    services.page("referral", "/v1/referrals", [missed])
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert "Appointment Missed, Wed 04 Mar 15:00" in section(page, "referrals")


async def test_the_inbox_shows_when_each_patient_is_booked_to_come(client, services, sign_in):
    booked = referral(
        "in-progress", appointment_status="booked", appointment_starts_at="2026-03-04T15:00:00+00:00"
    )
    missed = {
        **referral(
            "accepted", appointment_status="noshow", appointment_starts_at="2026-03-01T15:00:00+00:00"
        ),
        "id": "99999999-9999-4999-8999-999999999999",
    }
    services.page("referral", "/v1/referrals", [booked, missed])
    services.answer("intake", "GET", f"/v1/referred-patients/{ROSA}", body=rosa())
    await sign_in(client, JOE)
    listed = rows(await client.get("/inbox"), "referrals")
    assert "In progress appointment Wed 04 Mar 15:00 outcome by" in listed[0]
    assert "appointment" not in listed[1]  # a missed one is not a time to come


OVERDUE = {
    "appointment_status": "booked",
    "appointment_starts_at": "2026-03-01T15:00:00+00:00",
    "attendance_overdue": True,
}


async def test_a_booking_past_its_time_with_no_word_asks_the_provider_to_say_how_it_went(
    client, services, sign_in
):
    services.page("referral", "/v1/referrals", [referral("in-progress", **OVERDUE)])
    answer(services, "in-progress", **OVERDUE)
    await sign_in(client, JOE)
    [listed] = rows(await client.get("/inbox"), "referrals")
    assert "appointment Sun 01 Mar 15:00 say whether they came" in listed
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    section = page.text.split('id="appointment-heading"', 1)[1].split("</section>", 1)[0]
    assert "Its time has passed:" in section and "say whether the patient came" in section
    assert re.findall(r'name="status" value="([^"]+)"', section)[1:] == ["fulfilled", "noshow", "cancelled"]


async def test_the_care_manager_sees_that_the_program_has_not_said_whether_the_patient_came(
    client, services, sign_in, make_task
):
    answer_everything(services, make_task)
    services.page("referral", "/v1/referrals", [{**REFERRAL_ROW, **OVERDUE}])
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert "Booked, Sun 01 Mar 15:00 ; the program has not said whether they came" in section(
        page, "referrals"
    )
