"""Network gaps and the recruitment pipeline: the report, adding a prospect, moving one along."""

import json
import re

import httpx
from pydantic import TypeAdapter

from careloop_shared.contact import Email

EMAIL = TypeAdapter(Email).json_schema()["pattern"]

SAM = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}
KIM = {"agency": "agency-riverside", "role": "admin", "subject": "ad-riverside-kim"}
AL = {"agency": "agency-riverside", "role": "analyst", "subject": "an-riverside-al"}
GAP = {
    "need": "transportation-insecurity",
    "program_category": "transportation",
    "postal_area": "946",
    "language": "vi",
    "patients_waiting": 3,
    "interventions_waiting": 4,
    "oldest_waiting_since": "2026-02-20T08:00:00+00:00",
}


def prospect(status="prospect", **changes):
    return {
        "id": "org-city-rides",
        "name": "City Rides",
        "agency_id": "agency-city-rides",
        "program_categories": ["transportation"],
        "needs": ["transportation-insecurity"],
        "languages": ["en", "vi"],
        "owner_id": "sv-riverside-sam",
        "status": status,
        "status_reason": None,
        "created_at": "2026-02-27T10:00:00+00:00",
        "updated_at": "2026-03-01T10:00:00+00:00",
        "changed_by": "sv-riverside-sam",
        "changed_by_role": "supervisor",
        **changes,
    }


def rows(page: httpx.Response, section: str) -> list[str]:
    part = page.text.split(f'id="{section}-heading"', 1)[1].split("</section>", 1)[0]
    body = part.split("<tbody>", 1)[1] if "<tbody>" in part else ""
    return [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def form_of(page: httpx.Response, csrf_of, prospect_id: str = "org-city-rides") -> dict[str, str]:
    """The hidden fields of a prospect's move form (or of the add form)."""
    part = page.text.split(f'name="prospect_id" value="{prospect_id}"', 1)[0] if prospect_id else page.text
    key = re.findall(r'name="idempotency_key" value="([^"]+)"', part)[-1]
    return {"csrf_token": csrf_of(page), "idempotency_key": key}


async def test_the_gap_report_and_the_pipeline_with_a_move_form_for_each_open_prospect(
    client, services, sign_in
):
    services.page("referral", "/v1/network-gaps", [GAP], next_offset=20)
    services.page("referral", "/v1/prospects", [prospect(), prospect("active", id="org-old", name="Old Co")])
    await sign_in(client, SAM)
    page = await client.get("/supervisor/network?gaps=0&prospects=0")
    assert page.status_code == 200
    assert rows(page, "gaps") == ["Transportation insecurity Transportation 946 vi 3 4 Fri 20 Feb 08:00"]
    pipeline = rows(page, "pipeline")
    assert pipeline[0].startswith(
        "City Rides (org-city-rides) Prospect Transportation needs: Transportation insecurity"
        " agency-city-rides sv-riverside-sam Sun 01 Mar 10:00 by sv-riverside-sam Move City Rides"
    )
    assert pipeline[1].endswith(
        "Old Co (org-old) Active: in the directory Transportation needs: Transportation"
        " insecurity agency-city-rides sv-riverside-sam Sun 01 Mar 10:00 by sv-riverside-sam —"
    )
    assert re.findall(r'<option value="(\w+)">', page.text.split("org-city-rides", 2)[2])[:2] == [
        "contacted",
        "declined",
    ]
    assert 'href="/supervisor/network?gaps=20&amp;prospects=0" rel="next"' in page.text
    assert 'href="/supervisor/prospects/new"' in page.text
    assert 'href="/supervisor"' in page.text  # the team tab


async def test_an_admin_sees_gaps_and_pipeline_but_no_team_tab(client, services, sign_in):
    services.page("referral", "/v1/network-gaps", [GAP])
    services.page("referral", "/v1/prospects", [prospect()])
    await sign_in(client, KIM)
    page = await client.get("/supervisor/network")
    assert page.status_code == 200
    assert rows(page, "gaps") and rows(page, "pipeline")
    assert 'href="/supervisor"' not in page.text


async def test_an_analyst_sees_the_gap_report_only(client, services, sign_in):
    services.page("referral", "/v1/network-gaps", [GAP])
    await sign_in(client, AL)
    page = await client.get("/supervisor/network")
    assert rows(page, "gaps")
    assert 'id="pipeline-heading"' not in page.text
    assert services.called("referral", "/v1/prospects") == []
    assert (await client.get("/supervisor/prospects/new")).status_code == 403


async def test_adding_a_prospect_sends_its_lists_split_and_no_empty_field(client, services, sign_in, csrf_of):
    services.answer("referral", "POST", "/v1/prospects", 201, prospect())
    await sign_in(client, SAM)
    page = await client.get("/supervisor/prospects/new")
    assert page.status_code == 200
    assert 'id="prospect-languages" name="languages" type="text" value="en"' in page.text
    data = {
        **form_of(page, csrf_of, ""),
        "id": "org-city-rides",
        "name": " City Rides ",
        "program_categories": "transportation, food-assistance",
        "needs": "transportation-insecurity",
        "languages": "en vi",
        "postal_prefixes": "",
        "interpretation_services": "true",
        "phone": "",
        "notes": "Met them at the fair.",
    }
    answer = await client.post("/supervisor/prospects/new", data=data)
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/supervisor/network?notice=prospect-added",
    )
    [sent] = services.called("referral", "/v1/prospects")[-1:]
    assert json.loads(sent.content) == {
        "id": "org-city-rides",
        "name": "City Rides",
        "notes": "Met them at the fair.",
        "program_categories": ["transportation", "food-assistance"],
        "needs": ["transportation-insecurity"],
        "languages": ["en", "vi"],
        "interpretation_services": True,
    }
    assert sent.headers["Idempotency-Key"] == data["idempotency_key"]
    assert [r.method for r in services.called("referral", "/v1/prospects/org-city-rides")] == ["GET"]


async def test_a_prospect_id_that_is_no_directory_id_is_explained_and_not_sent(
    client, services, sign_in, csrf_of
):
    await sign_in(client, SAM)
    page = await client.get("/supervisor/prospects/new")
    data = {**form_of(page, csrf_of, ""), "id": "City Rides", "name": "City Rides", "program_categories": "x"}
    page = await client.post("/supervisor/prospects/new", data=data)
    assert page.status_code == 422
    assert 'id="prospect-id-error-1">An id of 2 to 80 lowercase letters, digits and dashes' in page.text
    assert services.requests == []


async def test_a_prospect_is_never_added_over_one_with_the_same_id(client, services, sign_in, csrf_of):
    services.answer("referral", "GET", "/v1/prospects/org-city-rides", body=prospect())
    await sign_in(client, SAM)
    page = await client.get("/supervisor/prospects/new")
    data = {
        **form_of(page, csrf_of, ""),
        "id": "org-city-rides",
        "name": "City Rides",
        "program_categories": "",
    }
    page = await client.post("/supervisor/prospects/new", data=data)
    assert page.status_code == 422
    assert 'id="prospect-id-error-1">There is already a prospect with this id' in page.text
    assert 'id="prospect-program_categories-error-1">Name at least one program category' in page.text
    assert [r.method for r in services.requests if r.url.path == "/v1/prospects"] == []


async def test_the_services_refusals_of_a_new_prospect_are_shown_beside_their_fields(
    client, services, sign_in, csrf_of
):
    detail = [
        # As pydantic words them: the pattern itself, which is not for people.
        {
            "loc": ["body", "email"],
            "msg": f"String should match pattern '{EMAIL}'",
            "type": "string_pattern_mismatch",
        },
        {
            "loc": ["body", "languages", 1],
            "msg": "String should match pattern '^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$'",
            "type": "string_pattern_mismatch",
        },
    ]
    services.answer("referral", "POST", "/v1/prospects", 422, {"detail": detail})
    await sign_in(client, SAM)
    page = await client.get("/supervisor/prospects/new")
    data = {
        **form_of(page, csrf_of, ""),
        "id": "org-x",
        "name": "X",
        "program_categories": "transportation",
        "email": "nobody",
        "languages": "en, ???",
    }
    page = await client.post("/supervisor/prospects/new", data=data)
    assert page.status_code == 422
    assert 'id="prospect-email-error-1">is not in the expected form</p>' in page.text
    assert 'id="prospect-languages-error-1">1: is not in the expected form</p>' in page.text
    assert 'value="en, ???"' in page.text


async def test_moving_a_prospect_sends_the_move_and_a_decline_its_reason(client, services, sign_in, csrf_of):
    services.page("referral", "/v1/prospects", [prospect()])
    moved = {"prospect": {**prospect("declined"), "history": []}, "service_ids": [], "referred": None}
    services.answer("referral", "POST", "/v1/prospects/org-city-rides/status", body=moved)
    await sign_in(client, SAM)
    page = await client.get("/supervisor/network")
    form = form_of(page, csrf_of)
    for status, reason, sent_reason in (
        ("contacted", "no-capacity", None),
        ("declined", "no-capacity", "no-capacity"),
    ):
        data = {
            **form,
            "prospect_id": "org-city-rides",
            "status": status,
            "reason": reason,
            "note": " Called. ",
        }
        answer = await client.post("/supervisor/prospects/status", data=data)
        assert answer.headers["location"] == "/supervisor/network?notice=prospect-moved"
        sent = services.called("referral", "/v1/prospects/org-city-rides/status")[-1]
        assert json.loads(sent.content) == {"status": status, "reason": sent_reason, "note": "Called."}
    assert sent.headers["Idempotency-Key"] == form["idempotency_key"]
    page = await client.get("/supervisor/network?notice=prospect-moved")
    assert "The prospect moved along the pipeline." in page.text


async def test_a_refused_move_is_shown_on_its_prospects_form_left_open(client, services, sign_in, csrf_of):
    services.page("referral", "/v1/prospects", [prospect("onboarding", agency_id=None)])
    detail = [{"loc": ["body", "status"], "msg": "a prospect needs the agency_id", "type": "missing_agency"}]
    services.answer("referral", "POST", "/v1/prospects/org-city-rides/status", 422, {"detail": detail})
    await sign_in(client, SAM)
    form = form_of(await client.get("/supervisor/network"), csrf_of)
    data = {**form, "prospect_id": "org-city-rides", "status": "active", "reason": "", "note": "Signed."}
    page = await client.post("/supervisor/prospects/status", data=data)
    assert page.status_code == 422
    assert "<details open>" in page.text
    assert 'id="move-1-status-error-1">a prospect needs the agency_id</p>' in page.text
    assert '<option value="active" selected>' in page.text
    assert f'value="{form["idempotency_key"]}"' in page.text


async def test_a_refused_move_of_a_prospect_not_on_the_page_is_said_at_the_top(
    client, services, sign_in, csrf_of
):
    services.page("referral", "/v1/prospects", [prospect()])
    services.answer(
        "referral",
        "POST",
        "/v1/prospects/org-gone/status",
        409,
        {"detail": "a prospect that is active cannot become declined"},
    )
    await sign_in(client, SAM)
    form = form_of(await client.get("/supervisor/network"), csrf_of)
    page = await client.post(
        "/supervisor/prospects/status",
        data={**form, "prospect_id": "org-gone", "status": "declined", "reason": "other"},
    )
    assert page.status_code == 409
    assert (
        "Prospect org-gone: Not possible now: a prospect that is active cannot become declined." in page.text
    )


async def test_activating_a_prospect_shows_the_programs_it_became_and_the_patients_referred(
    client, services, sign_in, csrf_of
):
    services.page("referral", "/v1/prospects", [prospect("onboarding")])
    history = [
        {
            "from_status": None,
            "to_status": "prospect",
            "reason": None,
            "note": None,
            "by_subject": "sv-riverside-sam",
            "by_role": "supervisor",
            "by_agency_id": "agency-riverside",
            "changed_at": "2026-02-27T10:00:00+00:00",
        },
        {
            "from_status": "onboarding",
            "to_status": "active",
            "reason": None,
            "note": "Signed.",
            "by_subject": "sv-riverside-sam",
            "by_role": "supervisor",
            "by_agency_id": "agency-riverside",
            "changed_at": "2026-03-02T09:00:00+00:00",
        },
    ]
    moved = {
        "prospect": {**prospect("active"), "history": history},
        "service_ids": ["org-city-rides-transportation"],
        "referred": 3,
    }
    services.answer("referral", "POST", "/v1/prospects/org-city-rides/status", body=moved)
    await sign_in(client, SAM)
    form = form_of(await client.get("/supervisor/network"), csrf_of)
    page = await client.post(
        "/supervisor/prospects/status", data={**form, "prospect_id": "org-city-rides", "status": "active"}
    )
    assert page.status_code == 200
    assert "<h1>City Rides is active</h1>" in page.text
    assert "<li><code>org-city-rides-transportation</code></li>" in page.text
    assert "<strong>3</strong> referrals were made to it" in page.text
    assert (
        rows(page, "history")[1]
        == "Mon 02 Mar 09:00 Onboarding Active: in the directory sv-riverside-sam (supervisor) — Signed."
    )


async def test_a_malformed_prospect_id_is_refused_before_any_service_is_asked(
    client, services, sign_in, csrf_of
):
    services.page("referral", "/v1/prospects", [prospect()])
    await sign_in(client, SAM)
    form = form_of(await client.get("/supervisor/network"), csrf_of)
    answer = await client.post(
        "/supervisor/prospects/status", data={**form, "prospect_id": "../../v1/x", "status": "active"}
    )
    assert answer.status_code == 422
    assert [r for r in services.requests if r.method == "POST"] == []
