"""The supervisor's team page and reassignment, rendered from the fake services' answers."""

import json
import re
from datetime import timedelta

import httpx

SAM = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}
KIM = {"agency": "agency-riverside", "role": "admin", "subject": "ad-riverside-kim"}
JOE = {"agency": "agency-community-health", "role": "provider", "subject": "pr-community-joe"}
ANA = {"agency": "agency-riverside", "role": "care-manager", "subject": "cm-riverside-ana"}
PATIENT = "44444444-4444-4444-8444-444444444444"
PATIENT_BODY = {
    "id": PATIENT,
    "given_name": "Rosa",
    "family_name": "Demo-Okafor",
    "care_manager_id": "cm-riverside-ana",
}


def rows(page: httpx.Response, section: str) -> list[str]:
    """The text of each body row of a section's table, tags removed."""
    part = page.text.split(f'id="{section}-heading"', 1)[1].split("</section>", 1)[0]
    body = part.split("<tbody>", 1)[1] if "<tbody>" in part else ""
    return [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def load(care_manager, patients=3, urgent=0, overdue=0):
    return {
        "care_manager_id": care_manager,
        "patients": patients,
        "open_tasks": 4,
        "overdue_tasks": overdue,
        "urgent_tasks": urgent,
        "overdue_follow_ups": 1,
    }


async def test_caseloads_per_care_manager_with_their_counts(client, services, sign_in):
    services.page(
        "followup", "/v1/caseload/agency", [load("cm-riverside-ana", urgent=2, overdue=1), load(None, 1)], 20
    )
    await sign_in(client, SAM)
    page = await client.get("/supervisor?caseload=0")
    assert page.status_code == 200
    assert rows(page, "loads") == ["cm-riverside-ana 3 4 2 1 1", "Nobody responsible 1 4 0 0 1"]
    [call] = services.called("followup", "/v1/caseload/agency")
    assert dict(call.url.params) == {"offset": "0", "limit": "20"}
    assert 'href="/supervisor?caseload=20" rel="next"' in page.text


async def test_escalated_tasks_come_first_then_overdue_ones_and_tasks_on_time_are_left_out(
    client, services, sign_in, make_task, clock
):
    past = (clock.now - timedelta(hours=5)).isoformat()
    future = (clock.now + timedelta(hours=5)).isoformat()
    on_time = make_task("stat", "safety-check", due_at=future)
    overdue = make_task("urgent", "follow-up-due", due_at=past, patient_id=PATIENT)
    escalated = make_task(
        "routine",
        "referral-chase",
        due_at=future,
        escalated_at=past,
        assignee_id=None,
        assignee_role="supervisor",
    )
    services.page("followup", "/v1/tasks", [on_time, overdue, escalated])
    await sign_in(client, SAM)
    page = await client.get("/supervisor")
    assert rows(page, "attention") == [
        f"routine Referral chase Patient {escalated['patient_id'][:8]} Mon 02 Mar 14:00"
        " Mon 02 Mar 04:00 Supervisors Reassign patient " + escalated["patient_id"][:8],
        "urgent Follow up due Patient 44444444 Mon 02 Mar 04:00 overdue — cm-riverside-ana"
        " Reassign patient 44444444",
    ]
    [call] = services.called("followup", "/v1/tasks")
    assert dict(call.url.params) == {"status": "active", "offset": "0", "limit": "200"}
    assert f'href="/supervisor/patients/{PATIENT}/care-manager"' in page.text


async def test_the_task_scan_reads_pages_until_done_and_says_when_it_stopped_early(
    client, services, sign_in, make_task, clock
):
    past = (clock.now - timedelta(hours=1)).isoformat()

    def tasks(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json={"items": [make_task(due_at=past)], "next_offset": offset + 200})

    services.answer_with("followup", "GET", "/v1/tasks", tasks)
    await sign_in(client, SAM)
    page = await client.get("/supervisor")
    offsets = [c.url.params["offset"] for c in services.called("followup", "/v1/tasks")]
    assert offsets == ["0", "200", "400", "600", "800"]
    assert "Only your agency's first 1000 open tasks were looked at." in page.text
    assert len(rows(page, "attention")) == 5


async def test_follow_ups_due_and_overdue_with_a_reassign_link(client, services, sign_in, make_follow_up):
    services.page("followup", "/v1/work-queue", [make_follow_up("overdue", patient_id=PATIENT)])
    await sign_in(client, SAM)
    page = await client.get("/supervisor?queue=20")
    assert rows(page, "due") == [
        "routine Plan cadence Patient 44444444 Mon 02 Mar 09:00 (past its grace period)"
        " cm-riverside-ana Reassign patient 44444444"
    ]
    assert services.called("followup", "/v1/work-queue")[0].url.params["offset"] == "20"


async def test_the_follow_ups_name_their_patients_as_intake_shows_them(
    client, services, sign_in, make_follow_up
):
    services.page("followup", "/v1/work-queue", [make_follow_up("overdue", patient_id=PATIENT)])
    services.page("intake", "/v1/patients", [PATIENT_BODY])
    await sign_in(client, SAM)
    page = await client.get("/supervisor")
    assert rows(page, "due")[0].startswith("routine Plan cadence Rosa Demo-Okafor 44444444 Mon 02 Mar 09:00")
    assert rows(page, "due")[0].endswith("Reassign Rosa Demo-Okafor")
    [asked] = services.called("intake", "/v1/patients")
    assert asked.url.params.get_list("id") == [PATIENT]


async def test_a_section_the_service_refuses_says_so_and_the_rest_shows(client, services, sign_in):
    services.answer("followup", "GET", "/v1/caseload/agency", 503, {"detail": "down"})
    await sign_in(client, SAM)
    page = await client.get("/supervisor")
    assert page.status_code == 200
    assert "Follow-up could not answer just now (503); try again shortly." in page.text
    assert "No task is escalated or overdue." in page.text


async def test_an_admin_goes_to_the_network_pages_and_asks_nothing_of_followup(client, services, sign_in):
    services.page("referral", "/v1/network-gaps", [])
    services.page("referral", "/v1/prospects", [])
    await sign_in(client, KIM)
    answer = await client.get("/supervisor")
    assert (answer.status_code, answer.headers["location"]) == (303, "/supervisor/network")
    assert not [r for r in services.requests if r.url.port == 8004]


async def test_a_provider_or_care_manager_gets_a_not_available_page_and_no_service_is_asked(
    client, services, sign_in, open_browser, make_app, settings
):
    for person in (JOE, ANA):
        async with open_browser(make_app(settings)) as http:
            await sign_in(http, person)
            for path in (
                "/supervisor",
                f"/supervisor/patients/{PATIENT}/care-manager",
                "/supervisor/network",
            ):
                page = await http.get(path)
                assert page.status_code == 403, path
                assert "not available to your role" in page.text
    assert services.requests == []


async def test_the_reassignment_form_names_the_patient_the_care_managers_and_the_reasons(
    client, services, sign_in
):
    services.answer("intake", "GET", f"/v1/patients/{PATIENT}", body=PATIENT_BODY)
    services.page(
        "followup", "/v1/caseload/agency", [load("cm-riverside-ben"), load("cm-riverside-ana"), load(None)]
    )
    await sign_in(client, SAM)
    page = await client.get(f"/supervisor/patients/{PATIENT}/care-manager")
    assert page.status_code == 200
    assert "Rosa Demo-Okafor" in page.text
    assert "<dt>Responsible now</dt><dd>cm-riverside-ana</dd>" in page.text
    assert re.findall(r'<option value="(cm-[^"]+)">', page.text) == ["cm-riverside-ana", "cm-riverside-ben"]
    assert '<option value="staff-leave">Care manager on leave</option>' in page.text
    assert re.search(r'name="idempotency_key" value="[A-Za-z0-9_-]{16,}"', page.text)


async def reassignment_form(client, csrf_of) -> dict[str, str]:
    page = await client.get(f"/supervisor/patients/{PATIENT}/care-manager")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    return {"csrf_token": csrf_of(page), "idempotency_key": key}


async def test_reassigning_sends_the_care_manager_and_coded_reason_once_and_says_it_was_done(
    client, services, sign_in, csrf_of
):
    services.answer("intake", "GET", f"/v1/patients/{PATIENT}", body=PATIENT_BODY)
    services.answer("intake", "POST", f"/v1/patients/{PATIENT}/care-manager", body={"patient_id": PATIENT})
    await sign_in(client, SAM)
    form = await reassignment_form(client, csrf_of)
    data = {**form, "care_manager_id": " cm-riverside-ben ", "reason": "staff-leave"}
    answer = await client.post(f"/supervisor/patients/{PATIENT}/care-manager", data=data)
    assert (answer.status_code, answer.headers["location"]) == (303, "/supervisor?notice=reassigned")
    [sent] = services.called("intake", f"/v1/patients/{PATIENT}/care-manager")
    assert json.loads(sent.content) == {"care_manager_id": "cm-riverside-ben", "reason": "staff-leave"}
    assert sent.headers["Idempotency-Key"] == form["idempotency_key"]
    page = await client.get(answer.headers["location"])
    assert "The patient has a new care manager; their open tasks moved with them." in page.text


async def test_a_reassignment_without_a_care_manager_is_not_sent(client, services, sign_in, csrf_of):
    services.answer("intake", "GET", f"/v1/patients/{PATIENT}", body=PATIENT_BODY)
    await sign_in(client, SAM)
    form = await reassignment_form(client, csrf_of)
    page = await client.post(
        f"/supervisor/patients/{PATIENT}/care-manager",
        data={**form, "care_manager_id": "  ", "reason": "other"},
    )
    assert page.status_code == 422
    assert 'id="reassign-care_manager_id-error-1">Name the care manager' in page.text
    assert 'aria-describedby="reassign-care_manager_id-hint reassign-care_manager_id-error-1"' in page.text
    assert services.called("intake", f"/v1/patients/{PATIENT}/care-manager") == []


async def test_the_services_refusal_of_a_field_is_shown_beside_it_with_what_was_entered(
    client, services, sign_in, csrf_of
):
    services.answer("intake", "GET", f"/v1/patients/{PATIENT}", body=PATIENT_BODY)
    detail = [{"loc": ["body", "reason"], "msg": "not a reassignment reason", "type": "invalid"}]
    services.answer("intake", "POST", f"/v1/patients/{PATIENT}/care-manager", 422, {"detail": detail})
    await sign_in(client, SAM)
    form = await reassignment_form(client, csrf_of)
    page = await client.post(
        f"/supervisor/patients/{PATIENT}/care-manager",
        data={**form, "care_manager_id": "cm-riverside-ben", "reason": "whim"},
    )
    assert page.status_code == 422
    assert 'id="reassign-reason-error-1">not a reassignment reason</p>' in page.text
    assert 'value="cm-riverside-ben"' in page.text
    assert f'value="{form["idempotency_key"]}"' in page.text  # nothing was stored: the same key again


async def test_another_agencys_patient_is_not_available_for_reassignment(client, services, sign_in):
    await sign_in(client, SAM)  # the fake intake answers 404 for every patient it was not told about
    page = await client.get(f"/supervisor/patients/{PATIENT}/care-manager")
    assert page.status_code == 404
    assert "Not found, or not something your agency may see." in page.text


async def test_forms_posted_by_a_role_that_may_not_are_refused_and_nothing_is_sent(
    client, services, sign_in, csrf_of
):
    await sign_in(client, JOE)
    csrf = csrf_of(await client.get("/", follow_redirects=True))
    services.requests.clear()  # the inbox it landed on asked referral; the forms below must ask nothing
    key = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    posts = {
        f"/supervisor/patients/{PATIENT}/care-manager": {"care_manager_id": "cm-x", "reason": "other"},
        "/supervisor/prospects/new": {"id": "org-x", "name": "X", "program_categories": "transportation"},
        "/supervisor/prospects/status": {"prospect_id": "org-x", "status": "contacted"},
    }
    for path, data in posts.items():
        answer = await client.post(path, data={**data, "csrf_token": csrf, "idempotency_key": key})
        assert answer.status_code == 403, path
    assert services.requests == []
