"""A to-do of one's own about a patient: what the form offers and sends, what needs correcting, who may,
and how the to-do reads on My day."""

import json

from services.workspace.tests.test_workspace_contacts import PID, PROVIDER
from services.workspace.tests.test_workspace_followup_forms import field_errors, form_of, value
from services.workspace.tests.test_workspace_my_day import rows

PATH = f"/v1/patients/{PID}"
TASK = "dddddddd-0000-4000-8000-000000000088"


def answer_patient(services) -> None:
    services.answer("intake", "GET", PATH, body={"given_name": "Ann", "family_name": "Example"})


async def test_a_to_do_is_sent_with_its_purpose_priority_and_the_end_of_its_day_in_the_workspace_zone(
    make_app, open_browser, services, sign_in
):
    from workspace.config import WorkspaceSettings

    answer_patient(services)
    services.answer("followup", "POST", "/v1/tasks", 201, {"id": TASK})
    async with open_browser(make_app(WorkspaceSettings(time_zone="America/Chicago"))) as http:
        await sign_in(http)
        form = await http.get(f"/patients/{PID}/tasks/new")
        assert form.status_code == 200 and "America/Chicago time" in form.text
        assert '<option value="benefits-application">Benefits application</option>' in form.text
        answer = await http.post(
            f"/patients/{PID}/tasks",
            data={**form_of(form), "purpose": "paperwork", "priority": "high", "due_on": "2026-03-04"},
        )
        assert answer.headers["location"] == f"/patients/{PID}?notice=to-do-added#tasks"
    [request] = services.called("followup", "/v1/tasks")
    assert json.loads(request.content) == {
        "patient_id": PID,
        "purpose": "paperwork",
        "priority": "high",
        "due_at": "2026-03-04T17:00:00-06:00",
    }
    assert request.headers["idempotency-key"] == value(form, "form_key")


async def test_the_to_do_form_says_what_needs_correcting_and_sends_nothing(client, services, sign_in):
    answer_patient(services)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/tasks/new")
    base = form_of(form)
    for data, problems in (
        (
            {"purpose": "", "priority": "stat", "due_on": ""},
            {
                "purpose": ["Choose what the to-do is for."],
                "priority": ["Choose how pressing it is."],
                "due_on": ["Choose the day it is due."],
            },
        ),
        ({"purpose": "paperwork", "priority": "routine", "due_on": "2026-03-01"}, None),
        ({"purpose": "paperwork", "priority": "routine", "due_on": "2027-03-09"}, None),
        ({"purpose": "paperwork", "priority": "routine", "due_on": "soon"}, None),
    ):
        page = await client.post(f"/patients/{PID}/tasks", data={**base, **data})
        assert page.status_code == 422, data
        if problems is not None:
            assert field_errors(page) == problems
        else:
            assert list(field_errors(page)) == ["due_on"], data
    assert not services.called("followup", "/v1/tasks")


async def test_followup_s_refusal_is_shown_on_the_form(client, services, sign_in):
    answer_patient(services)
    services.answer(
        "followup",
        "POST",
        "/v1/tasks",
        422,
        {
            "detail": [
                {"loc": ["body", "due_at"], "msg": "must be in the future, within 365 days", "type": "x"}
            ]
        },
    )
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/tasks/new")
    page = await client.post(
        f"/patients/{PID}/tasks",
        data={**form_of(form), "purpose": "visit", "priority": "urgent", "due_on": "2026-03-02"},
    )
    assert page.status_code == 422
    assert field_errors(page) == {"due_on": ["must be in the future, within 365 days"]}


async def test_a_provider_may_not_add_a_to_do(client, services, sign_in):
    await sign_in(client, person=PROVIDER)
    assert (await client.get(f"/patients/{PID}/tasks/new")).status_code == 403
    assert not services.called("followup", "/v1/tasks")


async def test_my_day_says_what_a_to_do_is_for(client, services, sign_in, make_task):
    services.page("followup", "/v1/tasks", [make_task("high", "to-do", purpose="benefits-application")])
    await sign_in(client)
    [_, row] = rows(await client.get("/"), "tasks")
    assert row.startswith("high To do: benefits application Patient")
