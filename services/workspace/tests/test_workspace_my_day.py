"""My day, rendered from the fake services' answers."""

import re
from datetime import timedelta

import httpx

PROVIDER = {"agency": "agency-community-health", "role": "provider", "subject": "pr-community-joe"}


def rows(page: httpx.Response, section: str) -> list[str]:
    """The text of each table row (or list item) in a section, tags removed."""
    part = page.text.split(f'id="{section}-heading"', 1)[1].split("</section>", 1)[0]
    cells = re.findall(r"<tr>(.*?)</tr>|<li>(.*?)</li>", part, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", a or b).split()) for a, b in cells]


async def test_my_day_shows_my_open_tasks_most_pressing_first_with_due_times(
    client, services, sign_in, make_task, clock
):
    earlier = (clock.now - timedelta(hours=2)).isoformat()
    later = (clock.now + timedelta(hours=3)).isoformat()
    tasks = [
        make_task("stat", "safety-check", due_at=later, patient_id="11111111-1111-4111-8111-111111111111"),
        make_task("urgent", "follow-up-due", due_at=earlier, escalated_at=earlier),
        make_task("routine", "recommended-instrument", due_at=later),
    ]
    services.page("followup", "/v1/tasks", tasks)
    await sign_in(client)
    page = await client.get("/")
    assert page.status_code == 200
    assert rows(page, "tasks")[1:] == [
        "stat Safety check Patient 11111111 Mon 02 Mar 12:00",
        "urgent Follow up due (escalated) Patient "
        + tasks[1]["patient_id"][:8]
        + " Mon 02 Mar 07:00 overdue",
        "routine Recommended instrument Patient " + tasks[2]["patient_id"][:8] + " Mon 02 Mar 12:00",
    ]
    assert 'href="/patients/11111111-1111-4111-8111-111111111111"' in page.text
    [call] = services.called("followup", "/v1/tasks")
    assert dict(call.url.params) == {"assignee": "me", "status": "open", "offset": "0", "limit": "20"}


REFERRAL_ID = "cccccccc-0000-4000-8000-000000000004"


async def test_a_task_whose_work_has_a_page_links_to_it(client, services, sign_in, make_task):
    pid, intervention, follow_up = (
        "11111111-1111-4111-8111-111111111111",
        "bbbbbbbb-0000-4000-8000-000000000002",
        "dddddddd-0000-4000-8000-000000000005",
    )
    tasks = [
        make_task("high", "re-refer", patient_id=pid, cause={"intervention_id": intervention}),
        make_task("routine", "do-instrument", patient_id=pid, cause={"instrument": "phq-9"}),
        make_task("routine", "follow-up", patient_id=pid, cause={"follow_up_id": follow_up}),
        make_task("stat", "safety-check", patient_id=pid, cause={}),
        make_task("routine", "confirm-attendance", patient_id=pid, cause={"referral_id": REFERRAL_ID}),
    ]
    services.page("followup", "/v1/tasks", tasks)
    await sign_in(client)
    page = await client.get("/")
    links = re.findall(r'<br><a href="([^"]+)">([^<]+)<span class="visually-hidden">', page.text)
    assert links == [
        (f"/patients/{pid}/interventions/{intervention}/referral", "Refer again"),
        (f"/patients/{pid}/assessments/new?instrument=phq-9", "Give the PHQ-9"),
        (f"/patients/{pid}/follow-ups/{follow_up}/outcome", "Record its outcome"),
        (f"/patients/{pid}#referral-{REFERRAL_ID}-heading", "See the referral"),
    ]  # a safety check is a call to make: no page of its own


async def test_due_and_overdue_follow_ups_and_those_due_later_today(
    client, services, sign_in, make_follow_up, clock
):
    overdue = make_follow_up("overdue", priority="urgent", due_at=(clock.now - timedelta(days=2)).isoformat())
    due = make_follow_up("due", assignee_id="cm-riverside-ben", channel=None)
    services.page("followup", "/v1/work-queue", [overdue, due])
    tonight = make_follow_up(
        "scheduled", reason="referral-check-in", due_at=(clock.now + timedelta(hours=9)).isoformat()
    )
    tomorrow = make_follow_up("scheduled", due_at=(clock.now + timedelta(hours=16)).isoformat())
    services.page("followup", "/v1/follow-ups", [tonight, tomorrow])
    await sign_in(client)
    page = await client.get("/")
    short = overdue["patient_id"][:8]
    assert rows(page, "due")[1:3] == [
        f"urgent Plan cadence Patient {short} Sat 28 Feb 09:00 overdue (past its grace period) Phone you",
        f"routine Plan cadence Patient {due['patient_id'][:8]} Mon 02 Mar 09:00 Preference cm-riverside-ben",
    ]
    assert rows(page, "due")[3:] == [
        f"Mon 02 Mar 18:00 : Referral check in for Patient {tonight['patient_id'][:8]}"
    ]
    [scheduled] = services.called("followup", "/v1/follow-ups")
    assert scheduled.url.params["status"] == "scheduled"


async def test_due_times_and_today_follow_the_workspace_time_zone(
    make_app, open_browser, services, sign_in, make_follow_up, clock
):
    from workspace.config import WorkspaceSettings

    late = make_follow_up("scheduled", due_at=(clock.now + timedelta(hours=9)).isoformat())  # 18:00 UTC
    services.page("followup", "/v1/follow-ups", [late])
    async with open_browser(make_app(WorkspaceSettings(time_zone="Asia/Tokyo"))) as http:
        await sign_in(http)
        page = await http.get("/")
    assert "Mon 02 Mar 18:00" in page.text  # now: 18:00 in Tokyo
    assert "No more follow-ups fall due today." in page.text  # 03:00 tomorrow, Tokyo time


async def test_my_caseload_links_each_patient_with_risk_needs_last_contact_counts_and_next_follow_up(
    client, services, sign_in
):
    patient = {
        "patient_id": "22222222-2222-4222-8222-222222222222",
        "assigned_at": "2026-02-01T10:00:00+00:00",
        "risk_level": "high",
        "open_needs": ["food-insecurity", "transportation-insecurity"],
        "last_contact": "2026-02-20T09:00:00+00:00",
        "open_tasks": 3,
        "overdue_tasks": 1,
        "urgent_tasks": 1,
        "overdue_follow_ups": 0,
        "next_follow_up_due": "2026-03-04T15:30:00+00:00",
    }
    services.page("followup", "/v1/caseload", [patient], next_offset=40)  # the page after offset 20
    await sign_in(client)
    page = await client.get("/?caseload=20&tasks=40")
    assert rows(page, "caseload")[1:] == [
        "Patient 22222222 High Food insecurity, Transportation insecurity Fri 20 Feb 09:00"
        " 3 1 1 0 Wed 04 Mar 15:30"
    ]
    [call] = services.called("followup", "/v1/caseload")
    assert call.url.params["offset"] == "20"
    assert services.called("followup", "/v1/tasks")[0].url.params["offset"] == "40"
    assert 'href="/?caseload=40&amp;tasks=40" rel="next"' in page.text
    assert 'href="/?caseload=0&amp;tasks=40" rel="prev"' in page.text


async def test_a_section_whose_service_is_down_or_refuses_says_so_and_the_rest_shows(
    client, services, sign_in, make_task
):
    services.page("followup", "/v1/tasks", [make_task("stat", "safety-check")])

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    services.answer_with("followup", "GET", "/v1/work-queue", down)
    services.answer(
        "followup", "GET", "/v1/caseload", 403, {"detail": "no", "missing_permission": "caseload:read"}
    )
    await sign_in(client)
    page = await client.get("/")
    assert page.status_code == 200
    assert "Safety check" in page.text
    assert "Follow-up is unavailable; try again shortly." in page.text
    assert "Your role may not do this (it needs the permission caseload:read)." in page.text


async def test_a_providers_day_starts_in_the_referral_inbox_and_no_care_manager_service_is_asked(
    client, services, sign_in
):
    await sign_in(client, PROVIDER)
    page = await client.get("/")
    assert (page.status_code, page.headers["location"]) == (303, "/inbox")
    assert services.requests == []


async def test_an_empty_day_says_so(client, sign_in):
    await sign_in(client)
    page = await client.get("/")
    for empty in ("No open tasks.", "Nothing due or overdue.", "No patients are assigned to you."):
        assert empty in page.text
    assert 'rel="next"' not in page.text


async def test_a_patient_page_is_found_by_pseudonymous_id_only(client, sign_in, services):
    await sign_in(client)
    services.answer(
        "intake", "GET", "/v1/patients/33333333-3333-4333-8333-333333333333", 404, {"detail": "no"}
    )
    assert (await client.get("/patients/33333333-3333-4333-8333-333333333333")).status_code == 404
    assert (await client.get("/patients/Ann%20Example")).status_code == 404


async def test_a_refusal_or_outage_that_ends_a_page_answers_a_page_saying_why(
    make_app, settings, open_browser, sign_in
):
    from workspace.client import ServiceError

    app = make_app(settings)
    failures = {
        "conflict": ServiceError("careplan", 409, "Not possible now: the plan moved on."),
        "invalid": ServiceError("intake", 422, "Some of what was entered needs correcting."),
        "down": ServiceError("referral", None, "Referrals is unavailable; try again shortly."),
        "busy": ServiceError("intake", 503, "Intake could not answer just now (503).", retry_after_s=3),
        "limited": ServiceError("intake", 429, "Intake could not answer just now (429)."),
        "broken": ServiceError("record", 500, "The case record could not answer just now (500)."),
    }
    for name, failure in failures.items():

        async def fail(failure: ServiceError = failure) -> None:
            raise failure

        app.router.add_api_route(f"/fails/{name}", fail)
    async with open_browser(app) as http:
        await sign_in(http)
        expected = {
            "conflict": (409, None),
            "invalid": (422, None),
            "down": (503, "2"),  # unreachable or too slow: try again in a moment
            "busy": (503, "3"),  # the service's own Retry-After
            "limited": (503, "2"),
            "broken": (502, None),
        }
        for name, (status, retry_after) in expected.items():
            page = await http.get(f"/fails/{name}")
            assert (page.status_code, page.headers.get("retry-after")) == (status, retry_after), name
            assert failures[name].message in page.text
        malformed = await http.get("/?tasks=-1")
        assert malformed.status_code == 400
        assert "Please check: tasks: Input should be greater than or equal to 0." in malformed.text


async def test_my_day_names_the_patients_intake_may_show_and_keeps_the_id_of_the_others(
    client, services, sign_in, make_task, make_follow_up
):
    named, erased = "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444"
    services.page("followup", "/v1/tasks", [make_task("stat", "safety-check", patient_id=named)])
    services.page("followup", "/v1/work-queue", [make_follow_up("due", patient_id=erased)])
    services.page("followup", "/v1/caseload", [_caseload_row(named), _caseload_row(erased)])
    services.page("intake", "/v1/patients", [{"id": named, "given_name": "Avery", "family_name": "Demo"}])
    await sign_in(client)
    page = await client.get("/")
    assert rows(page, "tasks")[1].startswith("stat Safety check Avery Demo 33333333 ")
    assert "Patient 44444444" in rows(page, "due")[1]  # erased, or not shown by intake: by id only
    assert [r.split(" ")[:3] for r in rows(page, "caseload")[1:]] == [
        ["Avery", "Demo", "33333333"],
        ["Patient", "44444444", "High"],
    ]
    # One request, each patient once, however many lists name them.
    [call] = services.called("intake", "/v1/patients")
    assert (call.url.params.get_list("id"), call.url.params["limit"]) == ([named, erased], "2")


_ID = "55555555-5555-4555-8555-555555555555"


async def test_my_day_still_shows_when_intake_cannot_name_its_patients(client, services, sign_in, make_task):
    services.page("followup", "/v1/tasks", [make_task("stat", "safety-check", patient_id=_ID)])

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    services.answer_with("intake", "GET", "/v1/patients", down)
    await sign_in(client)
    page = await client.get("/")
    assert page.status_code == 200
    assert rows(page, "tasks")[1].startswith("stat Safety check Patient 55555555 ")


def _caseload_row(patient_id: str) -> dict:
    return {
        "patient_id": patient_id,
        "assigned_at": "2026-02-01T10:00:00+00:00",
        "risk_level": "high",
        "open_needs": [],
        "last_contact": None,
        "open_tasks": 0,
        "overdue_tasks": 0,
        "urgent_tasks": 0,
        "overdue_follow_ups": 0,
        "next_follow_up_due": None,
    }


async def test_an_arranged_contact_says_what_it_is_for(client, services, sign_in, make_follow_up, clock):
    due = make_follow_up("due", reason="arranged-contact", purpose="plan-review", channel="in-person-only")
    services.page("followup", "/v1/work-queue", [due])
    later = make_follow_up(
        "scheduled",
        reason="arranged-contact",
        purpose="referral-help",
        due_at=(clock.now + timedelta(hours=4)).isoformat(),
    )
    services.page("followup", "/v1/follow-ups", [later])
    await sign_in(client)
    listed = rows(await client.get("/"), "due")
    assert any("Arranged contact (plan review)" in r and "In person only" in r for r in listed), listed
    assert listed[-1].endswith(f"Arranged contact (referral help) for Patient {later['patient_id'][:8]}")
