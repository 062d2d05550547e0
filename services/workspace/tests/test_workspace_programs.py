"""Your programs: a receiving agency says whether each of its programs takes referrals now; the page
lists only the agency's own programs, sends the capacity once, and says what the service refused."""

import json
import re

import httpx

JOE = {"agency": "agency-community-health", "role": "provider", "subject": "pr-community-joe"}
ANA = {"agency": "agency-riverside", "role": "care-manager", "subject": "cm-riverside-ana"}
PROGRAM = {
    "id": "prg-community-bh",
    "organization_id": "org-community-health",
    "name": "Community Behavioral Health",
    "program_category": "behavioral-health",
    "needs": ["depression"],
    "status": "active",
    "capacity": {"status": "capacity", "notes": None},
    "capacity_updated_at": "2026-03-01T10:00:00+00:00",
    "capacity_changed_by": None,
    "receiving_agency_id": "agency-community-health",
    "quality": {"referrals": 8, "acceptance_rate": 0.75},
}
CAPACITY = "/v1/services/prg-community-bh/capacity"


def form_of(page: httpx.Response, csrf_of) -> dict[str, str]:
    [key] = re.findall(r'name="idempotency_key" value="([^"]+)"', page.text)
    return {"csrf_token": csrf_of(page), "idempotency_key": key, "service_id": PROGRAM["id"], "programs": "0"}


async def test_the_agencys_programs_are_listed_with_their_capacity_and_a_form_each(client, services, sign_in):
    services.page("referral", "/v1/services", [PROGRAM])
    await sign_in(client, JOE)
    page = await client.get("/programs")
    assert page.status_code == 200
    [asked] = services.called("referral", "/v1/services")
    assert dict(asked.url.params) == {
        "receiving_agency_id": "agency-community-health",
        "offset": "0",
        "limit": "20",
    }
    assert '<a href="/programs" aria-current="page">Your programs</a>' in page.text
    assert "Community Behavioral Health" in page.text and "8, 75% accepted" in page.text
    assert '<option value="capacity" selected>Taking referrals</option>' in page.text
    assert '<span class="visually-hidden"> the capacity of Community Behavioral Health</span>' in page.text


async def test_saying_the_capacity_sends_it_once_and_goes_back_to_the_list(
    client, services, sign_in, csrf_of
):
    services.page("referral", "/v1/services", [PROGRAM])
    services.answer("referral", "POST", CAPACITY, body=PROGRAM)
    await sign_in(client, JOE)
    form = form_of(await client.get("/programs"), csrf_of)
    done = await client.post(
        "/programs/capacity", data={**form, "status": "waitlist", "notes": " About 3 weeks. "}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/programs?notice=capacity-changed&programs=0"
    [sent] = services.called("referral", CAPACITY)
    assert json.loads(sent.content) == {"status": "waitlist", "notes": "About 3 weeks."}
    assert sent.headers["Idempotency-Key"] == form["idempotency_key"]
    assert "The program&#39;s capacity is changed" in (await client.get(done.headers["location"])).text


async def test_a_status_not_offered_is_said_beside_the_field_and_nothing_is_sent(
    client, services, sign_in, csrf_of
):
    services.page("referral", "/v1/services", [PROGRAM])
    await sign_in(client, JOE)
    form = form_of(await client.get("/programs"), csrf_of)
    page = await client.post("/programs/capacity", data={**form, "status": "full", "notes": "Kept."})
    assert page.status_code == 422
    assert 'id="program-1-status-error-1">Choose whether it takes referrals now.</p>' in page.text
    assert ">Kept.</textarea>" in page.text
    assert f'value="{form["idempotency_key"]}"' in page.text
    assert services.called("referral", CAPACITY) == []


async def test_a_refusal_of_the_service_is_shown_on_the_programs_form(client, services, sign_in, csrf_of):
    services.page("referral", "/v1/services", [PROGRAM])
    refusal = {"detail": "only a directory administrator or the organisation itself may change its capacity"}
    services.answer("referral", "POST", CAPACITY, 403, refusal)
    await sign_in(client, JOE)
    form = form_of(await client.get("/programs"), csrf_of)
    page = await client.post("/programs/capacity", data={**form, "status": "no-capacity"})
    assert page.status_code == 403
    assert 'id="program-1-problem">Your role may not do this.</p>' in page.text


async def test_a_role_without_directory_changes_has_no_programs_page_and_nothing_is_asked(
    client, services, sign_in
):
    await sign_in(client, ANA)
    page = await client.get("/programs")
    assert page.status_code == 403
    assert 'href="/programs"' not in page.text
    assert services.called("referral", "/v1/services") == []


async def test_an_agency_with_no_program_is_told_so(client, services, sign_in):
    services.page("referral", "/v1/services", [])
    await sign_in(client, JOE)
    page = await client.get("/programs")
    assert "No program in the directory names agency-community-health" in page.text
