"""Arranging a contact with the patient and calling one off: what the form offers, what is sent, and what
is said when something needs correcting or is refused."""

import json
import re

from services.workspace.tests.test_workspace_followup_forms import field_errors, form_of, value
from services.workspace.tests.test_workspace_patient import answer_everything, section

PID = "33333333-3333-4333-8333-333333333333"
PATH = f"/v1/patients/{PID}"
CONTACT = "dddddddd-0000-4000-8000-000000000077"
PROVIDER = {"agency": "agency-food", "role": "provider", "subject": "pr-food-kai"}


def answer_plan(services, channel: str | None = "phone") -> None:
    services.answer("intake", "GET", PATH, body={"given_name": "Ann", "family_name": "Example"})
    if channel is None:
        services.answer("careplan", "GET", f"{PATH}/care-plan", 404, {"detail": "no care plan yet"})
        return
    body = {"version": 2, "document": {"goals": [], "follow_up": {"every_days": 30, "channel": channel}}}
    services.answer("careplan", "GET", f"{PATH}/care-plan", body=body)


def offered_channels(page) -> list[str]:
    return re.findall(r'name="channel" value="([^"]+)"', page.text)


async def test_a_contact_is_arranged_in_the_workspace_time_zone_by_a_way_the_plan_allows(
    make_app, open_browser, services, sign_in
):
    from workspace.config import WorkspaceSettings

    answer_plan(services, channel="text")
    services.answer("followup", "POST", "/v1/follow-ups", 201, {"id": CONTACT})
    async with open_browser(make_app(WorkspaceSettings(time_zone="America/Chicago"))) as http:
        await sign_in(http)
        form = await http.get(f"/patients/{PID}/follow-ups/new")
        assert form.status_code == 200
        assert "In America/Chicago time" in form.text
        assert "The plan reaches them by text, or in person." in form.text
        assert offered_channels(form) == ["text", "in-person-only"]
        answer = await http.post(
            f"/patients/{PID}/follow-ups",
            data={**form_of(form), "due_at": "2026-03-09T10:00", "channel": "text", "purpose": "plan-review"},
        )
        assert answer.headers["location"] == f"/patients/{PID}?notice=contact-arranged#follow-ups"
    [request] = services.called("followup", "/v1/follow-ups")
    assert json.loads(request.content) == {
        "patient_id": PID,
        "due_at": "2026-03-09T10:00:00-05:00",
        "channel": "text",
        "purpose": "plan-review",
    }
    assert request.headers["idempotency-key"] == value(form, "form_key")


async def test_before_a_plan_every_way_is_offered(client, services, sign_in):
    answer_plan(services, channel=None)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/new")
    assert offered_channels(form) == ["phone", "text", "email", "in-person-only"]
    assert "There is no plan yet to say how they prefer to be reached." in form.text


async def test_the_form_says_what_needs_correcting_and_sends_nothing(client, services, sign_in):
    answer_plan(services)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/new")
    page = await client.post(
        f"/patients/{PID}/follow-ups",
        data={**form_of(form), "due_at": "2026-03-01T10:00", "channel": "pigeon", "purpose": "lunch"},
    )
    assert page.status_code == 422
    assert field_errors(page) == {
        "due_at": ["Choose a time in the future."],
        "channel": ["Choose how you will be in touch."],
        "purpose": ["Choose what the contact is for."],
    }
    blank = await client.post(f"/patients/{PID}/follow-ups", data={**form_of(form)})
    assert field_errors(blank)["due_at"] == ["Choose when you agreed to be in touch."]
    odd = await client.post(
        f"/patients/{PID}/follow-ups",
        data={**form_of(form), "due_at": "next tuesday", "channel": "phone", "purpose": "check-in"},
    )
    assert field_errors(odd) == {"due_at": ["Enter a date and time, such as 2026-03-09T10:00."]}
    assert not services.called("followup", "/v1/follow-ups")


async def test_the_services_refusal_is_shown_beside_its_field(client, services, sign_in):
    answer_plan(services)
    detail = [{"loc": ["body", "channel"], "msg": "must be one of in-person-only, phone for this patient"}]
    services.answer("followup", "POST", "/v1/follow-ups", 422, {"detail": detail})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/new")
    page = await client.post(
        f"/patients/{PID}/follow-ups",
        data={**form_of(form), "due_at": "2026-03-09T10:00", "channel": "text", "purpose": "check-in"},
    )
    assert page.status_code == 422
    assert field_errors(page) == {"channel": ["must be one of in-person-only, phone for this patient"]}


async def test_an_erased_patient_s_refusal_is_said(client, services, sign_in):
    answer_plan(services)
    gone = {"detail": "this patient was erased: no contact can be arranged"}
    services.answer("followup", "POST", "/v1/follow-ups", 410, gone)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/new")
    page = await client.post(
        f"/patients/{PID}/follow-ups",
        data={**form_of(form), "due_at": "2026-03-09T10:00", "channel": "phone", "purpose": "check-in"},
    )
    assert page.status_code == 410
    assert "The patient&#39;s identifying details were erased" in page.text


async def test_a_provider_may_neither_arrange_nor_call_off(client, services, sign_in, csrf_of):
    await sign_in(client, person=PROVIDER)
    form = await client.get(f"/patients/{PID}/follow-ups/new")
    assert form.status_code == 403
    token = csrf_of(await client.get("/inbox"))
    sent = await client.post(f"/patients/{PID}/follow-ups/{CONTACT}/cancel", data={"csrf_token": token})
    assert sent.status_code == 403
    assert not [r for r in services.requests if r.method == "POST"]


async def test_an_arranged_contact_shows_what_it_is_for_and_is_called_off_once(
    client, services, sign_in, make_task, csrf_of
):
    answer_everything(services, make_task)
    contact = {
        "id": CONTACT,
        "patient_id": PID,
        "reason": "arranged-contact",
        "purpose": "plan-review",
        "priority": "moderate",
        "due_at": "2026-03-04T15:00:00+00:00",
        "overdue_at": "2026-03-07T15:00:00+00:00",
        "status": "scheduled",
        "attempt": 1,
        "channel": "in-person-only",
        "assignee_id": "cm-riverside-ana",
    }
    services.page("followup", "/v1/follow-ups", [contact])
    services.answer("followup", "GET", f"/v1/follow-ups/{CONTACT}", body={**contact, "outcomes": []})
    services.answer(
        "followup", "POST", f"/v1/follow-ups/{CONTACT}/cancel", body={**contact, "status": "cancelled"}
    )
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    follow_ups = section(page, "follow-ups")
    assert "Arranged contact, due Wed 04 Mar 15:00" in follow_ups
    assert "Contact by In person only For Plan review" in follow_ups
    assert f'href="/patients/{PID}/follow-ups/new"' in page.text
    assert f'action="/patients/{PID}/follow-ups/{CONTACT}/cancel"' in page.text
    assert f'href="/patients/{PID}/follow-ups/{CONTACT}/arrangement"' in page.text
    token = csrf_of(page)
    refused = await client.post(
        f"/patients/{PID}/follow-ups/{CONTACT}/cancel", data={"csrf_token": token, "reason": "bored"}
    )
    assert refused.status_code == 422
    for _ in range(2):
        answer = await client.post(
            f"/patients/{PID}/follow-ups/{CONTACT}/cancel",
            data={"csrf_token": token, "reason": "patient-request"},
        )
        assert answer.headers["location"] == f"/patients/{PID}?notice=contact-called-off#follow-ups"
    first, second = services.called("followup", f"/v1/follow-ups/{CONTACT}/cancel")
    assert json.loads(first.content) == {"reason": "patient-request"}
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


async def test_another_patient_s_contact_is_not_called_off_here(client, services, sign_in, csrf_of):
    other = "99999999-0000-4000-8000-000000000000"
    services.answer("followup", "GET", f"/v1/follow-ups/{CONTACT}", body={"id": CONTACT, "patient_id": other})
    await sign_in(client)
    token = csrf_of(await client.get("/"))
    page = await client.post(
        f"/patients/{PID}/follow-ups/{CONTACT}/cancel",
        data={"csrf_token": token, "reason": "patient-request"},
    )
    assert page.status_code == 404
    assert not services.called("followup", f"/v1/follow-ups/{CONTACT}/cancel")


async def test_a_contact_no_longer_open_says_why(client, services, sign_in, csrf_of):
    services.answer("followup", "GET", f"/v1/follow-ups/{CONTACT}", body={"id": CONTACT, "patient_id": PID})
    services.answer(
        "followup", "POST", f"/v1/follow-ups/{CONTACT}/cancel", 409, {"detail": "follow-up is completed"}
    )
    await sign_in(client)
    token = csrf_of(await client.get("/"))
    page = await client.post(
        f"/patients/{PID}/follow-ups/{CONTACT}/cancel",
        data={"csrf_token": token, "reason": "patient-request"},
    )
    assert page.status_code == 409
    assert "follow-up is completed" in page.text


OPEN_CONTACT = {
    "id": CONTACT,
    "patient_id": PID,
    "reason": "arranged-contact",
    "purpose": "plan-review",
    "due_at": "2026-03-04T15:00:00+00:00",
    "status": "scheduled",
    "channel": "phone",
}


async def test_a_contact_is_changed_to_another_way_the_plan_allows_or_another_purpose(
    client, services, sign_in
):
    answer_plan(services, channel="phone")
    services.answer("followup", "GET", f"/v1/follow-ups/{CONTACT}", body=OPEN_CONTACT)
    services.answer("followup", "POST", f"/v1/follow-ups/{CONTACT}/arrangement", body=OPEN_CONTACT)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/{CONTACT}/arrangement")
    assert form.status_code == 200 and "stays at its time" in form.text
    assert offered_channels(form) == ["phone", "in-person-only"]
    assert 'value="phone" checked' in form.text  # as it is now
    assert '<option value="plan-review" selected>' in form.text
    bad = await client.post(
        f"/patients/{PID}/follow-ups/{CONTACT}/arrangement",
        data={**form_of(form), "channel": "phone", "purpose": "gossip"},
    )
    assert field_errors(bad) == {"purpose": ["Choose what the contact is for."]}
    changed = await client.post(
        f"/patients/{PID}/follow-ups/{CONTACT}/arrangement",
        data={**form_of(form), "channel": "in-person-only", "purpose": "home-visit"},
    )
    assert changed.headers["location"] == f"/patients/{PID}?notice=contact-changed#follow-ups"
    [request] = services.called("followup", f"/v1/follow-ups/{CONTACT}/arrangement")
    assert json.loads(request.content) == {"channel": "in-person-only", "purpose": "home-visit"}
    assert request.headers["idempotency-key"] == value(form, "form_key")


async def test_a_contact_that_cannot_change_says_why_and_another_patient_s_is_not_found(
    client, services, sign_in
):
    answer_plan(services, channel="phone")
    services.answer("followup", "GET", f"/v1/follow-ups/{CONTACT}", body=OPEN_CONTACT)
    services.answer(
        "followup",
        "POST",
        f"/v1/follow-ups/{CONTACT}/arrangement",
        409,
        {"detail": "follow-up is completed"},
    )
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/follow-ups/{CONTACT}/arrangement")
    page = await client.post(
        f"/patients/{PID}/follow-ups/{CONTACT}/arrangement",
        data={**form_of(form), "channel": "phone", "purpose": "check-in"},
    )
    assert page.status_code == 409 and "follow-up is completed" in page.text
    services.answer(
        "followup", "GET", f"/v1/follow-ups/{CONTACT}", body={**OPEN_CONTACT, "status": "completed"}
    )
    done = await client.get(f"/patients/{PID}/follow-ups/{CONTACT}/arrangement")
    assert "nothing to change" in done.text and 'id="change-contact"' not in done.text
    other = {**OPEN_CONTACT, "patient_id": "99999999-0000-4000-8000-000000000000"}
    services.answer("followup", "GET", f"/v1/follow-ups/{CONTACT}", body=other)
    assert (await client.get(f"/patients/{PID}/follow-ups/{CONTACT}/arrangement")).status_code == 404


async def test_a_provider_may_not_change_a_contact(client, services, sign_in):
    await sign_in(client, person=PROVIDER)
    assert (await client.get(f"/patients/{PID}/follow-ups/{CONTACT}/arrangement")).status_code == 403
