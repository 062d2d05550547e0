"""A to-do of one's own about a patient: what the form offers and sends, what needs correcting, who may,
and how the to-do reads on My day."""

import json

from services.workspace.tests.test_workspace_contacts import PID, PROVIDER
from services.workspace.tests.test_workspace_followup_forms import field_errors, form_of, value
from services.workspace.tests.test_workspace_my_day import rows
from workspace.notices import NOTICES

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
        "for_care_manager": False,
    }
    assert request.headers["idempotency-key"] == value(form, "form_key")


async def test_the_to_do_form_says_what_needs_correcting_and_sends_nothing(client, services, sign_in):
    answer_patient(services)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/tasks/new")
    base = form_of(form)
    for data, problems in (
        (
            {"purpose": "", "priority": "stat", "due_on": "", "for_whom": "boss"},
            {
                "purpose": ["Choose what the to-do is for."],
                "priority": ["Choose how pressing it is."],
                "for_whom": ["Choose whom it is for."],
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


async def test_a_to_do_for_their_care_manager_is_sent_so_and_a_patient_without_one_is_said(
    client, services, sign_in
):
    answer_patient(services)
    refusal = "the patient has no care manager yet: add the to-do for yourself"
    services.answer("followup", "POST", "/v1/tasks", 409, {"detail": refusal})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/tasks/new")
    assert 'value="care-manager"' in form.text and "Their care manager" in form.text
    data = {**form_of(form), "purpose": "call-patient", "priority": "urgent", "due_on": "2026-03-02"}
    page = await client.post(f"/patients/{PID}/tasks", data={**data, "for_whom": "care-manager"})
    assert page.status_code == 409 and refusal in page.text
    assert 'value="care-manager" checked' in page.text  # what was entered is kept
    [request] = services.called("followup", "/v1/tasks")
    assert json.loads(request.content)["for_care_manager"] is True
    services.answer("followup", "POST", "/v1/tasks", 201, {"id": TASK})  # one they have: it is theirs
    added = await client.post(f"/patients/{PID}/tasks", data={**data, "for_whom": "care-manager"})
    assert added.headers["location"] == f"/patients/{PID}?notice=to-do-added-for-care-manager#tasks"
    assert (
        NOTICES["to-do-added-for-care-manager"] == "The to-do is on the patient's care manager's task list."
    )


async def test_a_to_do_someone_else_added_says_who_on_my_day(client, services, sign_in, make_task):
    asked = make_task(
        "urgent", "to-do", purpose="call-patient", opened_by="sv-sam", opened_by_role="supervisor"
    )
    own = make_task("routine", "to-do", purpose="paperwork", opened_by="cm-riverside-ana")
    services.page("followup", "/v1/tasks", [asked, own])
    await sign_in(client)
    [_, first, second] = rows(await client.get("/"), "tasks")
    assert first.startswith("urgent To do: call patient (from sv-sam) Patient")
    assert "(from" not in second
