"""The provider's inbox: referrals sent to its agency, what it may see of each patient, and its answers."""

import json
import re

import httpx

JOE = {"agency": "agency-community-health", "role": "provider", "subject": "pr-community-joe"}
ANA = {"agency": "agency-riverside", "role": "care-manager", "subject": "cm-riverside-ana"}
REFERRAL = "55555555-5555-4555-8555-555555555555"
ROSA = "66666666-6666-4666-8666-666666666666"
OMAR = "77777777-7777-4777-8777-777777777777"


def referral(status="requested", patient_id=ROSA, **changes):
    return {
        "id": REFERRAL,
        "patient_id": patient_id,
        "referring_agency_id": "agency-riverside",
        "need": "depression",
        "program_category": "behavioral-health",
        "program_id": "prg-community-bh",
        "receiving_agency_id": "agency-community-health",
        "status": status,
        "status_reason": None,
        "priority": "routine",
        "outcome": None,
        "made_at": "2026-03-01T10:00:00+00:00",
        "response_due_at": "2026-03-03T10:00:00+00:00",
        "outcome_due_at": "2026-03-15T10:00:00+00:00",
        "response_overdue": False,
        "outcome_overdue": False,
        "history": [
            {
                "from_status": "draft",
                "to_status": "requested",
                "by_agency_id": "agency-riverside",
                "by_party": "requester",
                "by_subject": None,
                "by_role": None,
                "reason": None,
                "outcome": None,
                "note": None,
                "changed_at": "2026-03-01T10:00:00+00:00",
            }
        ],
        **changes,
    }


def rosa(**changes):
    return {
        "patient_id": ROSA,
        "given_name": "Rosa",
        "family_name": "Demo-Okafor",
        "preferred_language": "es",
        "contact_preference": "text",
        "phone": "+1 555 0102",
        "email": None,
        "referrals": [
            {"referral_id": REFERRAL, "need": "depression", "program_category": "behavioral-health"}
        ],
        **changes,
    }


def rows(page: httpx.Response, section: str) -> list[str]:
    part = page.text.split(f'id="{section}-heading"', 1)[1].split("</section>", 1)[0]
    body = part.split("<tbody>", 1)[1] if "<tbody>" in part else ""
    return [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def form_for(page: httpx.Response, csrf_of, status: str) -> dict[str, str]:
    part = page.text.split(f'name="status" value="{status}"', 1)[0]
    key = re.findall(r'name="idempotency_key" value="([^"]+)"', part)[-1]
    return {"csrf_token": csrf_of(page), "idempotency_key": key, "status": status}


async def test_the_inbox_lists_referrals_with_what_the_agency_may_see_of_each_patient(
    client, services, sign_in
):
    closed = {**referral("completed", patient_id=OMAR), "id": "88888888-8888-4888-8888-888888888888"}
    unseen = {**referral("accepted", patient_id=OMAR), "id": "99999999-9999-4999-8999-999999999999"}
    services.page("referral", "/v1/referrals", [referral(), closed, unseen], next_offset=40)
    services.answer("intake", "GET", f"/v1/referred-patients/{ROSA}", body=rosa())
    await sign_in(client, JOE)
    page = await client.get("/inbox?referrals=20")
    assert page.status_code == 200
    assert rows(page, "referrals") == [
        "Depression (Behavioral health) Rosa Demo-Okafor es Text: +1 555 0102 Requested"
        " answer by Tue 03 Mar 10:00",
        "Depression (Behavioral health) Not shown Completed —",
        "Depression (Behavioral health) Not shown: the patient's consent does not cover your agency now"
        " Accepted outcome by Sun 15 Mar 10:00",
    ]
    assert f'href="/inbox/referrals/{REFERRAL}"' in page.text
    [asked_open, asked_unanswered] = sorted(
        services.called("referral", "/v1/referrals"), key=lambda r: "attendance_overdue" in r.url.params
    )
    assert asked_open.url.params["offset"] == "20"
    assert asked_open.url.params.get_list("status") == ["accepted", "in-progress", "on-hold", "requested"]
    # Completed ones whose appointment waits for an answer are asked for beside them (none here).
    assert asked_unanswered.url.params.get_list("status") == ["completed"]
    assert asked_unanswered.url.params["attendance_overdue"] == "true"
    assert 'id="unanswered-appointments"' not in page.text
    # Only the open referrals' patients are asked for, once each: a closed one discloses nothing.
    asked = [r.url.path for r in services.requests if r.url.path.startswith("/v1/referred-patients/")]
    assert sorted(asked) == sorted([f"/v1/referred-patients/{ROSA}", f"/v1/referred-patients/{OMAR}"])
    assert 'href="/inbox?referrals=40" rel="next"' in page.text


async def test_the_inbox_says_how_the_referrals_sent_to_the_agency_stand(client, services, sign_in):
    services.page("referral", "/v1/referrals", [referral()])
    standing = {"open": 7, "answer_overdue": 2, "outcome_overdue": 1, "hours_to_accept_median": 5.25}
    services.answer("referral", "GET", "/v1/referrals/summary", body=standing)
    await sign_in(client, JOE)
    page = await client.get("/inbox")
    [asked] = services.called("referral", "/v1/referrals/summary")
    assert dict(asked.url.params) == {"side": "received"}
    said = " ".join(
        re.sub(r"<[^>]+>", " ", page.text.split('id="inbox-standing">', 1)[1].split("</p>", 1)[0]).split()
    )
    assert said == (
        "7 open : 2 not answered in time, 1 without an outcome in time ."
        " Your agency has accepted referrals in a median 5.2 hours."
    )
    services.answer("referral", "GET", "/v1/referrals/summary", 503, {"detail": "down"})
    page = await client.get("/inbox")  # the counts are a heading: the list still shows without them
    assert page.status_code == 200 and 'id="inbox-standing"' not in page.text
    assert "Depression" in page.text


async def test_the_closed_referrals_are_a_view_of_their_own(client, services, sign_in):
    closed = referral("completed", patient_id=OMAR)
    services.page("referral", "/v1/referrals", [closed], next_offset=20)
    await sign_in(client, JOE)
    page = await client.get("/inbox?view=closed")
    [asked] = services.called("referral", "/v1/referrals")
    assert asked.url.params.get_list("status") == [
        "cancelled",
        "completed",
        "entered-in-error",
        "failed",
        "rejected",
    ]
    assert '<a href="/inbox?view=closed" aria-current="page">Closed</a>' in page.text
    assert 'href="/inbox?view=closed&amp;referrals=20" rel="next"' in page.text  # the view carried on
    assert services.requests and not [r for r in services.requests if "/referred-patients/" in r.url.path]
    assert (await client.get("/inbox?view=everything")).status_code == 400  # a bad address


async def test_a_contact_detail_is_shown_only_as_intake_permits_it(client, services, sign_in):
    services.page("referral", "/v1/referrals", [referral()])
    services.answer(
        "intake", "GET", f"/v1/referred-patients/{ROSA}", body=rosa(contact_preference="email", phone=None)
    )
    await sign_in(client, JOE)
    page = await client.get("/inbox")
    assert (
        "Email: no detail may be shown (not a channel the patient marked safe)" in rows(page, "referrals")[0]
    )
    services.answer(
        "intake",
        "GET",
        f"/v1/referred-patients/{ROSA}",
        body=rosa(contact_preference="do-not-contact", phone=None),
    )
    assert "es Do not contact Requested" in rows(await client.get("/inbox"), "referrals")[0]


async def test_only_providers_have_an_inbox(client, services, sign_in):
    await sign_in(client, ANA)
    for path in ("/inbox", f"/inbox/referrals/{REFERRAL}"):
        page = await client.get(path)
        assert page.status_code == 403
        assert "The provider inbox is not available to your role." in page.text
    assert services.requests == []


async def test_an_empty_inbox_or_a_refusing_service_says_so(client, services, sign_in):
    services.page("referral", "/v1/referrals", [])
    await sign_in(client, JOE)
    assert "No open referrals: nothing waits for your agency." in (await client.get("/inbox")).text
    services.answer("referral", "GET", "/v1/referrals", 503, {"detail": "audit log unavailable"})
    page = await client.get("/inbox")
    assert page.status_code == 200
    assert "Referrals could not answer just now (503); try again shortly." in page.text


async def test_a_new_referral_shows_the_patient_and_offers_accept_and_reject(client, services, sign_in):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral())
    services.answer("intake", "GET", f"/v1/referred-patients/{ROSA}", body=rosa())
    await sign_in(client, JOE)
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    assert page.status_code == 200
    assert "<dt>Name</dt><dd>Rosa Demo-Okafor</dd>" in page.text
    assert '<a href="tel:+15550102">+1 555 0102</a>' in page.text
    assert re.findall(r'name="status" value="([^"]+)"', page.text) == ["accepted", "rejected"]
    assert '<option value="no-capacity">No capacity now (sent on to the next program)</option>' in page.text
    assert rows(page, "history") == ["Sun 01 Mar 10:00 Draft → Requested agency-riverside — — —"]


async def test_an_accepted_referral_offers_progress_hold_and_completion(client, services, sign_in):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral("on-hold"))
    services.answer("intake", "GET", f"/v1/referred-patients/{ROSA}", body=rosa())
    await sign_in(client, JOE)
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    # Booking the appointment comes first (test_workspace_appointments.py), then the moves.
    assert re.findall(r'name="status" value="([^"]+)"', page.text) == [
        "booked",
        "in-progress",
        "completed",
        "failed",
    ]
    assert '<h3 id="to-in-progress-heading">Resume work</h3>' in page.text
    assert '<h3 id="to-completed-heading">Complete: the service was delivered</h3>' in page.text
    assert '<h3 id="to-failed-heading">Close: the service was not provided</h3>' in page.text
    failing = page.text.split('id="to-failed-heading"', 1)[1].split("</form>", 1)[0]
    assert '<option value="unable-to-contact">Unable to contact the patient</option>' in failing
    assert "Was the service delivered?" not in page.text


async def test_a_closed_referral_shows_no_patient_and_no_form(client, services, sign_in):
    outcome = {"service_delivered": False, "enrollment_status": None, "reason": "client-declined"}
    services.answer(
        "referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral("completed", outcome=outcome)
    )
    await sign_in(client, JOE)
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    assert "The patient&#39;s details are not available to your agency" not in page.text
    assert "The patient's details are not available to your agency" in page.text
    assert "<dt>Outcome</dt><dd>Service not delivered (Client declined)</dd>" in page.text
    assert 'name="status"' not in page.text
    assert services.called("intake", f"/v1/referred-patients/{ROSA}") == []


async def test_a_referral_not_sent_to_the_agency_is_not_available(client, services, sign_in):
    await sign_in(client, JOE)  # the fake referral service answers 404 for it
    page = await client.get(f"/inbox/referrals/{REFERRAL}")
    assert page.status_code == 404
    assert "Not found, or not something your agency may see." in page.text
    assert services.called("intake", f"/v1/referred-patients/{ROSA}") == []


async def test_accepting_sends_the_move_once_and_says_so(client, services, sign_in, csrf_of):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral())
    services.answer("intake", "GET", f"/v1/referred-patients/{ROSA}", body=rosa())
    services.answer(
        "referral", "POST", f"/v1/referrals/{REFERRAL}/status", body={"referral": referral("accepted")}
    )
    await sign_in(client, JOE)
    form = form_for(await client.get(f"/inbox/referrals/{REFERRAL}"), csrf_of, "accepted")
    answer = await client.post(f"/inbox/referrals/{REFERRAL}/status", data={**form, "note": ""})
    assert answer.headers["location"] == f"/inbox/referrals/{REFERRAL}?notice=referral-accepted"
    [sent] = services.called("referral", f"/v1/referrals/{REFERRAL}/status")
    assert json.loads(sent.content) == {"status": "accepted", "reason": None, "note": None}
    assert sent.headers["Idempotency-Key"] == form["idempotency_key"]
    assert "You accepted the referral." in (await client.get(answer.headers["location"])).text


async def test_rejecting_with_a_reason_goes_back_to_the_inbox_saying_whether_it_was_sent_on(
    client, services, sign_in, csrf_of
):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral())
    services.page("referral", "/v1/referrals", [])
    await sign_in(client, JOE)
    for reason, rerouted, notice in (
        ("no-capacity", OMAR, "referral-rerouted"),
        ("other", None, "referral-rejected"),
    ):
        answer_body = {"referral": referral("rejected"), "rerouted_to": rerouted}
        services.answer("referral", "POST", f"/v1/referrals/{REFERRAL}/status", body=answer_body)
        form = form_for(await client.get(f"/inbox/referrals/{REFERRAL}"), csrf_of, "rejected")
        answer = await client.post(
            f"/inbox/referrals/{REFERRAL}/status", data={**form, "reason": reason, "note": "Full until May."}
        )
        assert answer.headers["location"] == f"/inbox?notice={notice}"
        sent = services.called("referral", f"/v1/referrals/{REFERRAL}/status")[-1]
        assert json.loads(sent.content) == {"status": "rejected", "reason": reason, "note": "Full until May."}
    assert (
        "it was sent on to the next best program"
        not in (await client.get("/inbox?notice=referral-rejected")).text
    )
    assert (
        "it was sent on to the next best program"
        in (await client.get("/inbox?notice=referral-rerouted")).text
    )


async def test_completing_says_the_service_was_delivered_with_the_enrollment(
    client, services, sign_in, csrf_of
):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral("in-progress"))
    services.answer(
        "referral", "POST", f"/v1/referrals/{REFERRAL}/status", body={"referral": referral("completed")}
    )
    await sign_in(client, JOE)
    form = form_for(await client.get(f"/inbox/referrals/{REFERRAL}"), csrf_of, "completed")
    data = {**form, "enrollment_status": "enrolled", "note": ""}
    answer = await client.post(f"/inbox/referrals/{REFERRAL}/status", data=data)
    assert answer.headers["location"] == f"/inbox/referrals/{REFERRAL}?notice=referral-completed"
    [sent] = services.called("referral", f"/v1/referrals/{REFERRAL}/status")
    assert json.loads(sent.content) == {
        "status": "completed",
        "reason": None,
        "note": None,
        "outcome": {"service_delivered": True, "enrollment_status": "enrolled"},
    }


async def test_a_service_not_provided_closes_the_referral_as_failed_with_its_reason(
    client, services, sign_in, csrf_of
):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral("accepted"))
    services.answer(
        "referral", "POST", f"/v1/referrals/{REFERRAL}/status", body={"referral": referral("failed")}
    )
    await sign_in(client, JOE)
    form = form_for(await client.get(f"/inbox/referrals/{REFERRAL}"), csrf_of, "failed")
    data = {**form, "reason": "unable-to-contact", "note": "Three calls, no answer."}
    answer = await client.post(f"/inbox/referrals/{REFERRAL}/status", data=data)
    assert answer.headers["location"] == f"/inbox/referrals/{REFERRAL}?notice=referral-failed"
    [sent] = services.called("referral", f"/v1/referrals/{REFERRAL}/status")
    assert json.loads(sent.content) == {
        "status": "failed",
        "reason": "unable-to-contact",
        "note": "Three calls, no answer.",
    }
    assert sent.headers["Idempotency-Key"] == form["idempotency_key"]
    shown = (await client.get(answer.headers["location"])).text
    assert "The referral is closed: the service was not provided." in shown


async def test_a_refused_move_is_shown_on_its_own_form_with_what_was_chosen(
    client, services, sign_in, csrf_of
):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral("accepted"))
    detail = [{"loc": ["body", "reason"], "msg": "a reason is required for failed", "type": "x"}]
    services.answer("referral", "POST", f"/v1/referrals/{REFERRAL}/status", 422, {"detail": detail})
    await sign_in(client, JOE)
    form = form_for(await client.get(f"/inbox/referrals/{REFERRAL}"), csrf_of, "failed")
    page = await client.post(
        f"/inbox/referrals/{REFERRAL}/status", data={**form, "reason": "", "note": "Tried."}
    )
    assert page.status_code == 422
    failing = page.text.split('id="to-failed-heading"', 1)[1]
    assert 'id="to-failed-reason-error-1">a reason is required for failed</p>' in failing
    assert ">Tried.</textarea>" in failing
    assert f'value="{form["idempotency_key"]}"' in failing
    assert "field-error" not in page.text.split('id="to-failed-heading"', 1)[0]


async def test_a_move_the_referral_no_longer_allows_is_explained_on_the_page(
    client, services, sign_in, csrf_of
):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=referral())
    services.answer(
        "referral",
        "POST",
        f"/v1/referrals/{REFERRAL}/status",
        409,
        {"detail": "a cancelled referral cannot become accepted"},
    )
    await sign_in(client, JOE)
    form = form_for(await client.get(f"/inbox/referrals/{REFERRAL}"), csrf_of, "accepted")
    page = await client.post(f"/inbox/referrals/{REFERRAL}/status", data=form)
    assert page.status_code == 409
    assert (
        'id="to-accepted-problem">Not possible now: a cancelled referral cannot become accepted.'
        " Reload the page and try again.</p>" in page.text
    )


async def test_a_patient_intake_could_not_show_says_why_in_the_row(client, services, sign_in):
    services.page("referral", "/v1/referrals", [referral()])
    services.answer(
        "intake", "GET", f"/v1/referred-patients/{ROSA}", 503, {"detail": "audit log unavailable"}
    )
    await sign_in(client, JOE)
    page = await client.get("/inbox")
    assert rows(page, "referrals")[0].startswith(
        "Depression (Behavioral health) Intake could not answer just now (503); try again shortly. Requested"
    )


async def test_a_form_posted_by_a_role_without_an_inbox_is_refused_and_nothing_is_sent(
    client, services, sign_in, csrf_of
):
    await sign_in(client, ANA)
    csrf = csrf_of(await client.get("/"))
    form = {
        "csrf_token": csrf,
        "idempotency_key": "0" * 8 + "-0000-4000-8000-" + "0" * 12,
        "status": "accepted",
    }
    for path in (f"/inbox/referrals/{REFERRAL}/status",):
        answer = await client.post(path, data=form)
        assert answer.status_code == 403
    assert [r for r in services.requests if r.method == "POST"] == []
