"""Finding a patient by the whole name and birth date: what the form sends to intake, what it shows, and
that nothing typed reaches a URL."""

import html
import json
import re

import httpx

from services.workspace.tests.conftest import form_value

PID = "33333333-3333-4333-8333-333333333333"
SEARCH = "/v1/patients/search"
FOUND = {
    "id": PID,
    "given_name": "Ann",
    "family_name": "Núñez-O'Brien",
    "birth_date": "1958-04-11",
    "care_manager_id": "cm-riverside-ben",
    "created_at": "2026-03-02T09:00:00+00:00",
}
ASKED = {"given_name": " ann ", "family_name": "Nunez-OBrien", "birth_date": "1958-04-11"}
PROVIDER = {"agency": "agency-community-health", "role": "provider", "subject": "pr-community-joe"}
SUPERVISOR = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}


def found(services, patients: list[dict]) -> None:
    """intake's answer to the search: these patients."""
    services.answer(
        "intake", "POST", SEARCH, 200, {"items": patients, "limit": 50, "offset": 0, "next_offset": None}
    )


def csrf(page: httpx.Response) -> dict[str, str]:
    return {"csrf_token": form_value(page, "csrf_token")}


def found_rows(page: httpx.Response) -> list[str]:
    part = page.text.split('id="found-heading"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", part, flags=re.S)[1:]  # the header row aside
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in rows]


async def test_the_form_sends_the_name_and_birth_date_in_a_post_and_shows_whom_intake_found(
    client, services, sign_in
):
    found(services, [FOUND])
    await sign_in(client)
    form = await client.get("/patients/find")
    assert form.status_code == 200
    assert '<form method="post" action="/patients/find"' in form.text
    assert 'href="/patients/find" aria-current="page"' in form.text
    page = await client.post("/patients/find", data={**csrf(form), **ASKED})
    assert page.status_code == 200, page.text
    [request] = services.called("intake", SEARCH)
    assert request.method == "POST"
    assert json.loads(request.content) == {
        "given_name": "ann",
        "family_name": "Nunez-OBrien",
        "birth_date": "1958-04-11",
    }
    assert found_rows(page) == ["Ann Núñez-O'Brien 33333333 1958-04-11 cm-riverside-ben Mon 02 Mar 09:00"]
    assert f'<a href="/patients/{PID}">Ann Núñez-O&#39;Brien</a>' in page.text
    # What was typed stays in the form, and no request's URL carried it.
    assert 'value="Nunez-OBrien"' in page.text
    assert not [r for r in services.requests if "Nunez" in str(r.url) or "1958" in str(r.url)]


async def test_nobody_found_says_so_and_offers_registration(client, services, sign_in):
    found(services, [])
    await sign_in(client)
    form = await client.get("/patients/find")
    page = await client.post("/patients/find", data={**csrf(form), **ASKED})
    assert "No patient of your agency has this name and birth date." in page.text
    assert '<a href="/patients/new">Register a patient</a>' in page.text


async def test_a_missing_or_impossible_answer_is_named_beside_its_field_and_nothing_is_asked(
    client, services, sign_in
):
    await sign_in(client)
    form = await client.get("/patients/find")
    page = await client.post(
        "/patients/find",
        data={**csrf(form), "given_name": "", "family_name": "Example", "birth_date": "2999-01-01"},
    )
    assert page.status_code == 422
    assert "Enter the patient&#39;s given name." in page.text
    assert "The birth date cannot be in the future." in page.text
    assert not services.called("intake", SEARCH)
    assert 'id="found-heading"' not in page.text


async def test_intakes_refusal_of_a_field_is_shown_on_the_form(client, services, sign_in):
    refusal = {"detail": [{"loc": ["body", "family_name"], "type": "string_too_long", "msg": "too long"}]}
    services.answer("intake", "POST", SEARCH, 422, refusal)
    await sign_in(client)
    form = await client.get("/patients/find")
    page = await client.post("/patients/find", data={**csrf(form), **ASKED, "family_name": "x" * 300})
    assert page.status_code == 422
    assert re.search(r'<p class="field-error" id="family_name-error-\d+">[^<]*too long', page.text), page.text
    assert 'id="found-heading"' not in page.text


async def test_a_supervisor_finds_too_and_a_provider_neither_sees_the_link_nor_may_search(
    client, services, sign_in
):
    found(services, [FOUND])
    await sign_in(client, SUPERVISOR)
    form = await client.get("/patients/find")
    assert found_rows(await client.post("/patients/find", data={**csrf(form), **ASKED}))[0].startswith("Ann")
    await client.post("/signout", data=csrf(form))
    await sign_in(client, PROVIDER)
    inbox = await client.get("/inbox")
    assert 'href="/patients/find"' not in inbox.text
    assert (await client.get("/patients/find")).status_code == 403
    refused = await client.post("/patients/find", data={**csrf(inbox), **ASKED})
    assert refused.status_code == 403
    assert len(services.called("intake", SEARCH)) == 1  # the supervisor's only
