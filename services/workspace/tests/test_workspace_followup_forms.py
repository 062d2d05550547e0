"""Recording a follow-up's outcome, moving a follow-up, and working a task from My day and the patient
page: what is sent, what is said when something needs correcting."""

import html
import json
import re

import httpx

PID = "33333333-3333-4333-8333-333333333333"
PATH = f"/v1/patients/{PID}"
FOLLOW_UP = "dddddddd-0000-4000-8000-000000000005"
GOAL = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER_GOAL = "aaaaaaaa-0000-4000-8000-000000000009"
TASK = "77777777-0000-4000-8000-000000000013"


def value(page: httpx.Response, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*? value="([^"]*)"', page.text)
    assert match, f"no {name} on the page"
    return html.unescape(match.group(1))


def form_of(page: httpx.Response) -> dict[str, str]:
    return {"csrf_token": value(page, "csrf_token"), "form_key": value(page, "form_key")}


def field_errors(page: httpx.Response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for fid, message in re.findall(r'<p class="field-error" id="([^"]+)-error-\d+">([^<]*)</p>', page.text):
        found.setdefault(fid, []).append(html.unescape(message))
    return found


def answer_follow_up(services, status: str = "due", patient_id: str = PID) -> None:
    services.answer("intake", "GET", PATH, body={"given_name": "Ann", "family_name": "Example"})
    services.answer(
        "followup",
        "GET",
        f"/v1/follow-ups/{FOLLOW_UP}",
        body={
            "id": FOLLOW_UP,
            "patient_id": patient_id,
            "reason": "plan-cadence",
            "priority": "moderate",
            "due_at": "2026-03-02T08:00:00+00:00",
            "status": status,
            "attempt": 1,
            "channel": "phone",
            "outcomes": [],
        },
    )
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/care-plan",
        body={
            "version": 2,
            "document": {
                "goals": [
                    {"id": GOAL, "need": "depression", "description": "depression-symptoms-reduced"},
                    {
                        "id": OTHER_GOAL,
                        "need": "transportation-insecurity",
                        "description": "reliable-transportation",
                    },
                ]
            },
        },
    )


async def test_an_outcome_records_reach_goal_progress_barriers_next_step_and_note(client, services, sign_in):
    answer_follow_up(services)
    services.answer("followup", "POST", f"/v1/follow-ups/{FOLLOW_UP}/outcome", body={"attempt": 1})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome")
    assert 'id="record-outcome"' in form.text
    assert f'<label for="progress-{GOAL}">Depression symptoms reduced (depression)' in form.text
    assert "<legend>Did you reach the patient?" in form.text
    answer = await client.post(
        f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome",
        data={
            **form_of(form),
            "reached": "yes",
            f"progress-{GOAL}": "improving",
            f"progress-{OTHER_GOAL}": "",
            "barriers": ["cost", "transportation"],
            "next_step": "continue-plan",
            "note": " Feeling better ",
        },
    )
    assert answer.headers["location"] == f"/patients/{PID}?notice=outcome-recorded#follow-ups"
    [request] = [r for r in services.called("followup", f"/v1/follow-ups/{FOLLOW_UP}/outcome")]
    assert json.loads(request.content) == {
        "reached": True,
        "goal_progress": [{"goal_id": GOAL, "progress": "improving"}],
        "barriers": ["cost", "transportation"],
        "next_step": "continue-plan",
        "note": "Feeling better",
    }
    assert request.headers["idempotency-key"] == value(form, "form_key")


async def test_not_reached_is_an_outcome_too(client, services, sign_in):
    answer_follow_up(services)
    services.answer("followup", "POST", f"/v1/follow-ups/{FOLLOW_UP}/outcome", body={"attempt": 1})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome")
    await client.post(
        f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome", data={**form_of(form), "reached": "no"}
    )
    [request] = services.called("followup", f"/v1/follow-ups/{FOLLOW_UP}/outcome")
    assert json.loads(request.content) == {
        "reached": False,
        "goal_progress": [],
        "barriers": [],
        "next_step": None,
        "note": None,
    }


async def test_an_outcome_says_what_needs_correcting(client, services, sign_in):
    answer_follow_up(services)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome")
    page = await client.post(
        f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome",
        data={**form_of(form), f"progress-{GOAL}": "better", "barriers": ["bad-luck"], "next_step": "pray"},
    )
    assert page.status_code == 422
    assert field_errors(page) == {
        "reached": ["Say whether you reached the patient."],
        f"progress-{GOAL}": ["Choose the progress from the list."],
        "barriers": ["Tick barriers from the list."],
        "next_step": ["Choose the next step from the list."],
    }
    assert not services.called("followup", f"/v1/follow-ups/{FOLLOW_UP}/outcome")


async def test_a_follow_up_not_due_yet_says_so_and_the_services_refusal_is_shown(client, services, sign_in):
    answer_follow_up(services, status="scheduled")
    services.answer(
        "followup", "POST", f"/v1/follow-ups/{FOLLOW_UP}/outcome", 409, {"detail": "follow-up is not due yet"}
    )
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome")
    assert (
        "Only a follow-up that is due or overdue takes an outcome; this one falls due Mon 02 Mar 08:00"
        in form.text
    )
    assert 'id="record-outcome"' not in form.text
    stale = {"csrf_token": value(form, "csrf_token"), "form_key": "k" * 24}  # a form shown while it was due
    page = await client.post(
        f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome", data={**stale, "reached": "yes"}
    )
    assert page.status_code == 409
    assert "Not possible now: follow-up is not due yet." in page.text


async def test_another_patients_follow_up_is_not_found_here(client, services, sign_in):
    answer_follow_up(services, patient_id="99999999-0000-4000-8000-000000000000")
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome")
    assert page.status_code == 404


async def test_a_follow_up_is_moved_to_a_time_in_the_workspace_time_zone(
    make_app, open_browser, services, sign_in
):
    from workspace.config import WorkspaceSettings

    answer_follow_up(services)
    services.answer("followup", "POST", f"/v1/follow-ups/{FOLLOW_UP}/reschedule", body={"id": FOLLOW_UP})
    async with open_browser(make_app(WorkspaceSettings(time_zone="America/Chicago"))) as http:
        await sign_in(http)
        form = await http.get(f"/patients/{PID}/follow-ups/{FOLLOW_UP}/reschedule")
        assert "In America/Chicago time" in form.text
        past = await http.post(
            f"/patients/{PID}/follow-ups/{FOLLOW_UP}/reschedule",
            data={**form_of(form), "due_at": "2026-03-01T10:00", "reason": "patient-request"},
        )
        assert field_errors(past) == {"due_at": ["Choose a time in the future."]}
        answer = await http.post(
            f"/patients/{PID}/follow-ups/{FOLLOW_UP}/reschedule",
            data={**form_of(form), "due_at": "2026-03-09T10:00", "reason": "patient-request"},
        )
    assert answer.headers["location"] == f"/patients/{PID}?notice=follow-up-rescheduled#follow-ups"
    [request] = services.called("followup", f"/v1/follow-ups/{FOLLOW_UP}/reschedule")
    assert json.loads(request.content) == {"reason": "patient-request", "due_at": "2026-03-09T10:00:00-05:00"}


async def test_a_task_is_marked_done_from_my_day_and_my_day_says_so(
    client, services, sign_in, make_task, csrf_of
):
    services.page("followup", "/v1/tasks", [make_task("stat", "safety-check", id=TASK)])
    services.answer("followup", "POST", f"/v1/tasks/{TASK}/status", body={"id": TASK, "status": "done"})
    await sign_in(client)
    day = await client.get("/")
    assert f'<form method="post" action="/tasks/{TASK}/status" class="inline">' in day.text
    assert 'value="Mark done" aria-label="Mark done: Safety check, patient' in day.text
    answer = await client.post(
        f"/tasks/{TASK}/status", data={"csrf_token": csrf_of(day), "status": "done", "patient_id": ""}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/?notice=task-done"
    [request] = services.called("followup", f"/v1/tasks/{TASK}/status")
    assert json.loads(request.content) == {"status": "done", "reason": None}
    assert "The task is done." in (await client.get(answer.headers["location"])).text


async def test_a_task_worked_twice_is_sent_with_one_key(client, services, sign_in, make_task, csrf_of):
    services.answer("followup", "POST", f"/v1/tasks/{TASK}/status", body={"id": TASK})
    await sign_in(client)
    token = csrf_of(await client.get("/"))
    for _ in range(2):
        answer = await client.post(
            f"/tasks/{TASK}/status",
            data={"csrf_token": token, "status": "cancelled", "reason": "not-needed", "patient_id": PID},
        )
        assert answer.headers["location"] == f"/patients/{PID}?notice=task-cancelled#tasks"
    first, second = services.called("followup", f"/v1/tasks/{TASK}/status")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert json.loads(first.content) == {"status": "cancelled", "reason": "not-needed"}


async def test_a_task_move_the_service_refuses_is_said(client, services, sign_in, csrf_of):
    services.answer(
        "followup",
        "POST",
        f"/v1/tasks/{TASK}/status",
        409,
        {"detail": "task is done; it cannot move to in-progress"},
    )
    await sign_in(client)
    token = csrf_of(await client.get("/"))
    page = await client.post(f"/tasks/{TASK}/status", data={"csrf_token": token, "status": "in-progress"})
    assert page.status_code == 409
    assert "task is done; it cannot move to in-progress" in page.text
    bad = await client.post(f"/tasks/{TASK}/status", data={"csrf_token": token, "status": "deleted"})
    assert bad.status_code == 422
    assert len(services.called("followup", f"/v1/tasks/{TASK}/status")) == 1
