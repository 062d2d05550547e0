"""Erasing a patient's identifying details from the workspace: a supervisor's, with a reason and a
confirmation, sent once; a care manager may not."""

import html
import json
import re

import httpx

from services.workspace.tests.conftest import ANA, ANN, ANN_ID, form_value

PID = ANN_ID
ERASURE = f"/v1/patients/{PID}/erasure"
SUPERVISOR = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}
ERASED = {"detail": "patient details erased", "erased_at": "2026-03-02T09:00:00+00:00"}


async def open_form(client, services, sign_in, person=SUPERVISOR) -> httpx.Response:
    services.answer("intake", "GET", f"/v1/patients/{PID}", body=ANN)
    await sign_in(client, person)
    return await client.get(f"/patients/{PID}/erasure/new")


def posted(form: httpx.Response, **fields: str) -> dict[str, str]:
    return {"csrf_token": form_value(form, "csrf_token"), "form_key": form_value(form, "form_key"), **fields}


async def test_the_form_says_what_goes_and_what_stays_and_sends_the_reason_once_confirmed(
    client, services, sign_in
):
    form = await open_form(client, services, sign_in)
    assert form.status_code == 200
    assert "For <strong>Ann Example</strong>" in form.text and "nothing can undo" in form.text
    services.answer(
        "intake", "POST", ERASURE, body={"patient_id": PID, "erased_at": "2026-03-02T09:00:00+00:00"}
    )
    answer = await client.post(
        f"/patients/{PID}/erasure", data=posted(form, reason=" The patient's request ", confirm="erase")
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/patients/{PID}?notice=patient-erased"
    [request] = services.called("intake", ERASURE)
    assert json.loads(request.content) == {"reason": "The patient's request"}
    assert request.headers["idempotency-key"] == form_value(form, "form_key")


async def test_without_a_reason_or_the_confirmation_nothing_is_sent(client, services, sign_in):
    form = await open_form(client, services, sign_in)
    for fields, message in (
        ({"reason": "", "confirm": "erase"}, "Say why the details are erased"),
        ({"reason": "no", "confirm": "erase"}, "The reason is 3 to 500 characters."),
        ({"reason": "x" * 501, "confirm": "erase"}, "The reason is 3 to 500 characters."),
        ({"reason": "The patient's request"}, "Tick the box to confirm: an erasure cannot be undone."),
    ):
        page = await client.post(f"/patients/{PID}/erasure", data=posted(form, **fields))
        assert page.status_code == 422 and message in html.unescape(page.text), fields
    assert not services.called("intake", ERASURE)


async def test_erased_before_goes_to_the_page_which_says_so(client, services, sign_in):
    form = await open_form(client, services, sign_in)
    services.answer("intake", "POST", ERASURE, 410, ERASED)
    answer = await client.post(
        f"/patients/{PID}/erasure", data=posted(form, reason="request", confirm="erase")
    )
    assert answer.headers["location"] == f"/patients/{PID}?notice=patient-erased"
    services.answer("intake", "GET", f"/v1/patients/{PID}", 410, ERASED)
    page = await client.get(answer.headers["location"])
    assert page.status_code == 200
    assert "<h1>Patient 33333333</h1>" in page.text
    assert "The patient&#39;s identifying details were erased; the pseudonymous case stays." in page.text


async def test_a_supervisor_is_offered_the_erasure_and_a_care_manager_is_not_and_may_not(
    client, services, sign_in
):
    form = await open_form(client, services, sign_in)
    page = await client.get(f"/patients/{PID}")
    assert f'<a href="/patients/{PID}/erasure/new">Erase the identifying details</a>' in page.text
    await client.post("/signout", data={"csrf_token": form_value(form, "csrf_token")})
    refused = await open_form(client, services, sign_in, person=ANA)  # a care manager
    assert refused.status_code == 403
    page = await client.get(f"/patients/{PID}")
    assert "/erasure/new" not in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    fields = {"csrf_token": csrf, "form_key": "k" * 20, "reason": "request", "confirm": "erase"}
    answer = await client.post(f"/patients/{PID}/erasure", data=fields)
    assert answer.status_code == 403
    assert not services.called("intake", ERASURE)


async def test_a_form_about_a_patient_erased_meanwhile_says_so_and_is_no_server_error(
    client, services, sign_in
):
    services.answer("intake", "GET", f"/v1/patients/{PID}", 410, ERASED)
    await sign_in(client, ANA)
    page = await client.get(f"/patients/{PID}/details/edit")
    assert page.status_code == 410
    assert "The patient&#39;s identifying details were erased; the pseudonymous case stays." in page.text
