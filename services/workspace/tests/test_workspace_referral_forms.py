"""Referring by hand: the directory search starts from the intervention and the patient (read on the
server, never put in a URL), and the referral names the patient, the intervention and the program."""

import html
import json
import re

import httpx

PID = "33333333-3333-4333-8333-333333333333"
PATH = f"/v1/patients/{PID}"
RIDES = "bbbbbbbb-0000-4000-8000-000000000002"
SAFETY = "bbbbbbbb-0000-4000-8000-000000000003"
PROGRAM = {
    "id": "prg-ride-share-health",
    "organization_id": "org-transit-aid",
    "name": "Ride Share for Health",
    "program_category": "transportation",
    "needs": ["transportation-insecurity"],
    "status": "active",
    "languages": ["en", "es"],
    "interpretation_services": False,
    "eligibility": {"postal_prefixes": [], "requirements": []},
    "hours": [],
    "capacity": {"status": "waitlist", "notes": "About three weeks"},
    "contact": {},
    "location_ids": [],
    "receiving_agency_id": "agency-transit-aid",
    "quality": {"referrals": 8, "acceptance_rate": 0.75},
}
AUTOMATIC = {
    "id": "cccccccc-0000-4000-8000-000000000004",
    "intervention_id": RIDES,
    "program_id": "prg-other",
    "status": "requested",
    "status_reason": None,
    "choice": "automatic",
    "made_at": "2026-03-02T08:31:00+00:00",
    "created_at": "2026-03-02T08:31:00+00:00",
}


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


def answer_patient_and_plan(services) -> None:
    services.answer(
        "intake",
        "GET",
        PATH,
        body={
            "given_name": "Ann",
            "family_name": "Example",
            "preferred_language": "es",
            "postal_code": "94110",
        },
    )
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/care-plan",
        body={
            "version": 2,
            "status": "active",
            "document": {
                "interventions": [
                    {
                        "id": RIDES,
                        "need": "transportation-insecurity",
                        "kind": "referral",
                        "program_category": "transportation",
                        "needs_referral": True,
                        "status": "scheduled",
                    },
                    {"id": SAFETY, "need": "suicidal-ideation", "kind": "clinical", "needs_referral": False},
                ]
            },
        },
    )
    services.page("referral", "/v1/services", [PROGRAM], next_offset=20)
    services.page("referral", "/v1/referrals", [AUTOMATIC])


async def test_the_first_search_is_the_interventions_need_and_the_patients_language_and_area(
    client, services, sign_in
):
    answer_patient_and_plan(services)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/interventions/{RIDES}/referral")
    assert page.status_code == 200
    [search] = services.called("referral", "/v1/services")
    assert dict(search.url.params) == {
        "need": "transportation-insecurity",
        "program_category": "transportation",
        "language": "es",
        "postal_code": "94110",
        "offset": "0",
        "limit": "20",
    }
    assert '<label for="service-1">Ride Share for Health</label>' in page.text
    assert "75% of 8" in page.text
    assert 'Waitlist <span class="muted">(About three weeks)</span>' in page.text  # the provider's notes
    text = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page.text)).split())
    assert "An open automatic referral to prg-other is requested." in text
    assert "94110" not in "".join(re.findall(r'(?:href|action)="([^"]+)"', page.text))  # never in a URL
    [referrals] = services.called("referral", "/v1/referrals")
    assert referrals.url.params["patient_id"] == PID


async def test_a_search_is_a_post_and_says_what_needs_correcting(client, services, sign_in):
    answer_patient_and_plan(services)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/interventions/{RIDES}/referral")
    assert 'method="post" action="/patients/' + PID + f'/interventions/{RIDES}/referral/search"' in page.text
    assert 'form="directory-search" name="offset" value="20"' in page.text  # more results, same search
    found = await client.post(
        f"/patients/{PID}/interventions/{RIDES}/referral/search",
        data={
            **form_of(page),
            "need": "",
            "program_category": "transportation",
            "language": "",
            "postal_code": "",
            "capacity": "capacity",
            "offset": "20",
        },
    )
    assert found.status_code == 200
    search = services.called("referral", "/v1/services")[-1]
    assert dict(search.url.params) == {
        "program_category": "transportation",
        "capacity": "capacity",
        "offset": "20",
        "limit": "20",
    }
    assert value(found, "form_key") == value(page, "form_key")
    wrong = await client.post(
        f"/patients/{PID}/interventions/{RIDES}/referral/search",
        data={**form_of(page), "need": "Not a code", "postal_code": "#"},
    )
    assert wrong.status_code == 422
    assert field_errors(wrong) == {
        "need": ["Choose a need from the list."],
        "postal_code": ["A postal code: 2 to 12 letters or digits."],
    }
    assert len(services.called("referral", "/v1/services")) == 2


async def test_a_referral_by_hand_names_the_patient_the_intervention_and_the_program(
    client, services, sign_in
):
    answer_patient_and_plan(services)
    services.answer("referral", "POST", "/v1/referrals", 201, {"id": "x", "status": "requested"})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/interventions/{RIDES}/referral")
    answer = await client.post(
        f"/patients/{PID}/interventions/{RIDES}/referral",
        data={
            **form_of(page),
            "service_id": "prg-ride-share-health",
            "priority": "urgent",
            "note": " Call after 5 ",
        },
    )
    assert answer.headers["location"] == f"/patients/{PID}?notice=referral-made#referrals"
    [request] = [r for r in services.called("referral", "/v1/referrals") if r.method == "POST"]
    assert json.loads(request.content) == {
        "patient_id": PID,
        "intervention_id": RIDES,
        "service_id": "prg-ride-share-health",
        "priority": "urgent",
        "note": "Call after 5",
    }
    assert request.headers["idempotency-key"] == value(page, "form_key")


async def test_a_referral_waiting_for_consent_says_so(client, services, sign_in):
    answer_patient_and_plan(services)
    services.answer("referral", "POST", "/v1/referrals", 201, {"id": "x", "status": "draft"})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/interventions/{RIDES}/referral")
    answer = await client.post(
        f"/patients/{PID}/interventions/{RIDES}/referral",
        data={**form_of(page), "service_id": "prg-ride-share-health"},
    )
    assert answer.headers["location"] == f"/patients/{PID}?notice=referral-waits-for-consent#referrals"
    services.answer("careplan", "GET", f"{PATH}/care-plan", 404, {"detail": "care plan not found"})
    services.page("referral", "/v1/referrals", [])
    services.answer(
        "intake",
        "GET",
        PATH,
        body={
            "given_name": "Ann",
            "family_name": "Example",
            "birth_date": "1958-04-11",
            "preferred_language": "es",
            "contact_preference": "phone",
            "phone": "+1 555 0100",
            "email": None,
            "postal_code": "94110",
            "care_manager_id": "cm-riverside-ana",
            "safe_channels": None,
            "created_at": "2026-03-02T08:00:00+00:00",
        },
    )
    shown = await client.get(answer.headers["location"])
    assert "waits as a draft until the patient consents" in shown.text


async def test_a_program_that_cannot_take_the_patient_is_said_beside_the_choice(client, services, sign_in):
    answer_patient_and_plan(services)
    detail = [
        {
            "loc": ["body", "service_id"],
            "type": "cannot_take",
            "msg": "the program does not serve the patient's area",
        }
    ]
    services.answer("referral", "POST", "/v1/referrals", 422, {"detail": detail})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/interventions/{RIDES}/referral")
    refused = await client.post(
        f"/patients/{PID}/interventions/{RIDES}/referral",
        data={**form_of(page), "service_id": "prg-ride-share-health"},
    )
    assert refused.status_code == 422
    assert field_errors(refused) == {"service_id": ["the program does not serve the patient's area"]}
    assert re.search(r'value="prg-ride-share-health" checked', refused.text)
    nothing = await client.post(f"/patients/{PID}/interventions/{RIDES}/referral", data=form_of(page))
    assert field_errors(nothing) == {"service_id": ["Choose the program to refer the patient to."]}


async def test_an_intervention_not_in_the_plan_is_said_and_nothing_is_searched(client, services, sign_in):
    answer_patient_and_plan(services)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/interventions/{PID}/referral")
    assert "This intervention is not in the patient's current plan." in html.unescape(page.text)
    assert not services.called("referral", "/v1/services")
