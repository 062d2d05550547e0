"""Changing a patient's details: the form shows them as intake has them, sends only what the person
changed, and says what needs correcting before anything is sent."""

import json
import re

import httpx

from services.workspace.tests.conftest import ANN, ANN_ID, form_value

PID = ANN_ID
OTHER = "44444444-4444-4444-8444-444444444444"
PATH = f"/v1/patients/{PID}"
PATIENT = {**ANN, "email": "ann@example.org"}
PROVIDER = {"agency": "agency-community-health", "role": "provider", "subject": "pr-community-joe"}


def ticked(page: httpx.Response, name: str) -> list[str]:
    return re.findall(
        rf'<input type="checkbox" id="{name}-\d+" name="{name}" value="([^"]+)" checked', page.text
    )


async def open_form(client, services, sign_in) -> tuple[httpx.Response, dict[str, object]]:
    """The form as shown, and what submitting it unchanged would post."""
    services.answer("intake", "GET", PATH, body=PATIENT)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/details/edit")
    assert form.status_code == 200, form.text
    fields = ("given_name", "family_name", "birth_date", "phone", "email", "postal_code")
    data: dict[str, object] = {f: form_value(form, f) for f in fields}
    data |= {
        "preferred_language": "es",
        "contact_preference": "text",
        "safe_channels": ticked(form, "safe_channels"),
        "csrf_token": form_value(form, "csrf_token"),
        "form_key": form_value(form, "form_key"),
        "shown": form_value(form, "shown"),
    }
    return form, data


def patched(services) -> list[tuple[dict, httpx.Request]]:
    return [(json.loads(r.content), r) for r in services.called("intake", PATH) if r.method == "PATCH"]


async def test_the_form_shows_the_details_as_intake_has_them(client, services, sign_in):
    form, data = await open_form(client, services, sign_in)
    assert "For <strong>Ann Example</strong>" in form.text
    assert (data["given_name"], data["birth_date"], data["phone"]) == ("Ann", "1958-04-11", "+1 555 0100")
    assert data["safe_channels"] == ["text"]
    assert re.search(r'<option value="es" selected>', form.text)
    assert json.loads(str(data["shown"]))["email"] == "ann@example.org"


async def test_only_what_was_changed_is_sent_and_the_patient_page_says_so(client, services, sign_in):
    _, data = await open_form(client, services, sign_in)
    services.answer("intake", "PATCH", PATH, body=PATIENT)
    answer = await client.post(
        f"/patients/{PID}/details", data={**data, "phone": " +1 555 0199 ", "email": ""}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/patients/{PID}?notice=details-changed#details"
    [(body, request)] = patched(services)
    assert body == {"phone": "+1 555 0199", "email": None}  # a colleague's change elsewhere stays
    assert request.headers["idempotency-key"] == data["form_key"]


async def test_the_safe_channels_not_asked_none_safe_and_some_are_told_apart(client, services, sign_in):
    _, data = await open_form(client, services, sign_in)
    services.answer("intake", "PATCH", PATH, body=PATIENT)
    for boxes in (["none"], [], ["text", "in-person"], ["text"]):
        await client.post(f"/patients/{PID}/details", data={**data, "safe_channels": boxes})
    assert [body for body, _ in patched(services)] == [
        {"safe_channels": []},
        {"safe_channels": None},
        {"safe_channels": ["text", "in-person"]},
    ]  # the last is as shown: nothing sent


async def test_nothing_changed_sends_nothing(client, services, sign_in):
    _, data = await open_form(client, services, sign_in)
    answer = await client.post(f"/patients/{PID}/details", data=data)
    assert answer.headers["location"] == f"/patients/{PID}?notice=details-unchanged#details"
    assert patched(services) == []


async def test_what_needs_correcting_is_said_beside_each_field_and_nothing_is_sent(client, services, sign_in):
    _, data = await open_form(client, services, sign_in)
    wrong = {**data, "given_name": " ", "phone": "call me", "birth_date": "2999-01-01"}
    page = await client.post(f"/patients/{PID}/details", data=wrong)
    assert page.status_code == 422
    assert "Enter the patient&#39;s given name." in page.text
    assert "A phone number: 7 to 25 digits" in page.text
    assert "The birth date cannot be in the future." in page.text
    assert form_value(page, "phone") == "call me" and form_value(page, "shown") == data["shown"]
    assert patched(services) == []


async def test_a_name_and_birth_date_of_another_patient_is_refused_with_a_link_to_them(
    client, services, sign_in
):
    _, data = await open_form(client, services, sign_in)
    services.answer("intake", "PATCH", PATH, 409, {"detail": "likely duplicate", "existing_id": OTHER})
    page = await client.post(f"/patients/{PID}/details", data={**data, "family_name": "Other"})
    assert page.status_code == 409
    assert f'<a href="/patients/{OTHER}">Open the patient already registered' in page.text


async def test_a_form_whose_shown_details_were_tampered_with_sends_nothing(client, services, sign_in):
    _, data = await open_form(client, services, sign_in)
    for shown in ("not json", "[]", json.dumps({"phone": 7}), ""):
        page = await client.post(
            f"/patients/{PID}/details", data={**data, "shown": shown, "phone": "+1 555 0101"}
        )
        assert page.status_code == 422
        assert "The form was not as the workspace showed it" in page.text
    assert patched(services) == []


async def test_the_patient_page_offers_the_change_and_a_provider_may_not_make_it(client, services, sign_in):
    _, data = await open_form(client, services, sign_in)
    await client.post("/signout", data={"csrf_token": data["csrf_token"]})
    await sign_in(client, PROVIDER)
    assert (await client.get(f"/patients/{PID}/details/edit")).status_code == 403
    inbox = await client.get("/inbox")
    refused = await client.post(
        f"/patients/{PID}/details", data={**data, "csrf_token": form_value(inbox, "csrf_token")}
    )
    assert refused.status_code == 403
    assert patched(services) == []
