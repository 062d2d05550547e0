"""The care plan's forms: its status with the expected version (a stale one says where the plan is now),
the care team and its contributions, a service request's medical necessity and the patient's choice,
and education given."""

import html
import json
import re

import httpx

PID = "33333333-3333-4333-8333-333333333333"
PATH = f"/v1/patients/{PID}"
GOAL = "aaaaaaaa-0000-4000-8000-000000000001"
EDUCATION = "bbbbbbbb-0000-4000-8000-000000000002"
MEMBER = "44444444-0000-4000-8000-000000000010"
REQUEST = "66666666-0000-4000-8000-000000000012"
OWN = "aaaaaaaa-0000-4000-8000-000000000099"


def plan(version: int = 3, status: str = "active") -> dict:
    return {
        "plan_id": "eeeeeeee-0000-4000-8000-000000000000",
        "patient_id": PID,
        "version": version,
        "status": status,
        "reason": "assessment:phq-9",
        "changed_by": "system",
        "created_at": "2026-03-02T08:30:00+00:00",
        "document": {
            "risk_level": "moderate",
            "preferred_language": "es",
            "needs": ["depression"],
            "goals": [
                {
                    "id": GOAL,
                    "need": "depression",
                    "description": "depression-symptoms-reduced",
                    "target": "PHQ-9 total below 10",
                    "due": "2026-06-01T00:00:00+00:00",
                }
            ],
            "interventions": [
                {
                    "id": EDUCATION,
                    "need": "depression",
                    "kind": "education",
                    "needs_referral": False,
                    "language": "es",
                    "education_materials": ["edu-depression-es"],
                }
            ],
            "follow_up": {"every_days": 30, "priority": "moderate"},
        },
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


def posted(services, service: str, path: str) -> list[dict]:
    return [json.loads(r.content) for r in services.called(service, path) if r.method == "POST"]


def with_plan(services, version: int = 3, status: str = "active") -> None:
    services.answer("intake", "GET", PATH, body={"given_name": "Ann", "family_name": "Example"})
    services.answer("careplan", "GET", f"{PATH}/care-plan", body=plan(version, status))


async def test_the_plans_status_changes_naming_the_version_seen(client, services, sign_in):
    with_plan(services)
    services.answer("careplan", "POST", f"{PATH}/care-plan/status", body={"plan_version": 4})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/plan/status")
    assert '<option value="on-hold">On hold</option>' in form.text
    assert '<option value="draft">' not in form.text  # an active plan does not go back to draft
    assert value(form, "expected_version") == "3"
    answer = await client.post(
        f"/patients/{PID}/plan/status", data={**form_of(form), "status": "on-hold", "expected_version": "3"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/patients/{PID}?notice=plan-status-changed#plan"
    assert posted(services, "careplan", f"{PATH}/care-plan/status") == [
        {"status": "on-hold", "expected_version": 3}
    ]


async def test_a_stale_version_shows_where_the_plan_is_now_and_asks_to_reload(client, services, sign_in):
    with_plan(services, version=5)
    services.answer(
        "careplan",
        "POST",
        f"{PATH}/care-plan/status",
        409,
        {"detail": "the plan is at version 5; reload and try again", "current_version": 5},
    )
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/plan/status")
    page = await client.post(
        f"/patients/{PID}/plan/status", data={**form_of(form), "status": "on-hold", "expected_version": "3"}
    )
    assert page.status_code == 409
    assert (
        "The plan changed while this page was open: it is now at version 5, and this form was for version 3."
    ) in html.unescape(page.text)
    assert f'<a href="/patients/{PID}#plan">Reload the patient\'s page</a>' in html.unescape(page.text)
    assert value(page, "expected_version") == "3"  # not quietly moved on: the person reloads first


async def test_a_move_the_plan_cannot_make_is_said(client, services, sign_in):
    with_plan(services, status="completed")
    services.answer(
        "careplan",
        "POST",
        f"{PATH}/care-plan/status",
        409,
        {"detail": "a completed plan cannot become active"},
    )
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/plan/status")
    assert "A completed plan cannot change its status." in form.text
    page = await client.post(
        f"/patients/{PID}/plan/status",
        data={  # a form from before it completed
            "csrf_token": value(form, "csrf_token"),
            "form_key": "k" * 24,
            "status": "active",
            "expected_version": "3",
        },
    )
    assert "Not possible now: a completed plan cannot become active." in page.text


async def test_no_plan_yet_offers_no_status_form(client, services, sign_in):
    services.answer("careplan", "GET", f"{PATH}/care-plan", 404, {"detail": "care plan not found"})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/plan/status")
    assert page.status_code == 200
    assert "There is no care plan yet" in page.text and 'id="plan-status"' not in page.text


async def test_a_care_team_member_is_added_with_their_role_as_a_code(client, services, sign_in):
    with_plan(services)
    services.answer("careplan", "POST", f"{PATH}/care-team", 201, {"id": MEMBER})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/care-team/new")
    assert 'id="add-care-team-member"' in form.text and '<option value="family">Family</option>' in form.text
    answer = await client.post(
        f"/patients/{PID}/care-team",
        data={
            **form_of(form),
            "name": "Bo Example",
            "relationship": "family",
            "role": "Transport helper",
            "contact": "",
        },
    )
    assert answer.headers["location"] == f"/patients/{PID}?notice=member-added#care-team"
    assert posted(services, "careplan", f"{PATH}/care-team") == [
        {"name": "Bo Example", "relationship": "family", "role": "transport-helper", "contact": None}
    ]


async def test_a_member_needs_a_name_a_relationship_and_a_role_and_a_plan(client, services, sign_in):
    with_plan(services)
    services.answer("careplan", "POST", f"{PATH}/care-team", 404, {"detail": "care plan not found"})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/care-team/new")
    page = await client.post(f"/patients/{PID}/care-team", data={**form_of(form), "relationship": "boss"})
    assert field_errors(page) == {
        "name": ["Enter the member's name."],
        "relationship": ["Choose how they are related to the patient."],
        "role": ["Enter their role in the patient's care, such as primary support."],
    }
    page = await client.post(
        f"/patients/{PID}/care-team",
        data={**form_of(form), "name": "Bo", "relationship": "family", "role": "helper"},
    )
    assert page.status_code == 404
    assert "There is no care plan yet: the care team is kept with the plan" in page.text


BO = {
    "id": MEMBER,
    "name": "Bo Example",
    "relationship": "family",
    "role": "transport-helper",
    "contact": "+1 555 0101",
    "status": "active",
}


async def test_a_members_changed_fields_alone_are_sent(client, services, sign_in):
    with_plan(services)
    services.answer("careplan", "GET", f"{PATH}/care-team", body=[BO])
    services.answer("careplan", "PATCH", f"{PATH}/care-team/{MEMBER}", body={**BO, "contact": None})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/care-team/{MEMBER}/edit")
    assert 'id="change-care-team-member"' in form.text
    assert value(form, "name") == "Bo Example" and value(form, "role") == "Transport helper"
    data = {**form_of(form), "shown": value(form, "shown")}
    data |= {"name": "Bo Example", "relationship": "family", "role": "Transport helper"}
    answer = await client.post(f"/patients/{PID}/care-team/{MEMBER}", data={**data, "contact": " "})
    assert answer.headers["location"] == f"/patients/{PID}?notice=member-changed#care-team"

    def patches() -> list[dict]:
        return [
            json.loads(r.content)
            for r in services.called("careplan", f"{PATH}/care-team/{MEMBER}")
            if r.method == "PATCH"
        ]

    assert patches() == [{"contact": None}]  # cleared; the rest as it was
    same = await client.post(f"/patients/{PID}/care-team/{MEMBER}", data={**data, "contact": BO["contact"]})
    assert same.headers["location"] == f"/patients/{PID}?notice=details-unchanged#care-team"
    # A colleague gave another number meanwhile: a change of the name alone leaves it be.
    services.answer("careplan", "GET", f"{PATH}/care-team", body=[{**BO, "contact": "+1 555 0199"}])
    renamed = {**data, "name": "Bo Examples", "contact": BO["contact"]}
    assert (await client.post(f"/patients/{PID}/care-team/{MEMBER}", data=renamed)).status_code == 303
    assert patches()[-1] == {"name": "Bo Examples"}
    bad = await client.post(f"/patients/{PID}/care-team/{MEMBER}", data={**data, "name": "", "contact": ""})
    assert field_errors(bad) == {"name": ["Enter the member's name."]}
    forged = await client.post(f"/patients/{PID}/care-team/{MEMBER}", data={**data, "shown": "[]"})
    assert forged.status_code == 422
    assert len(patches()) == 2


async def test_a_member_not_on_the_team_cannot_be_changed(client, services, sign_in):
    with_plan(services)
    services.answer("careplan", "GET", f"{PATH}/care-team", body=[{**BO, "status": "inactive"}])
    await sign_in(client)
    assert (await client.get(f"/patients/{PID}/care-team/{MEMBER}/edit")).status_code == 404


async def test_a_contribution_names_its_member_kind_and_the_version_seen(client, services, sign_in):
    with_plan(services)
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/care-team",
        body=[
            {
                "id": MEMBER,
                "name": "Bo Example",
                "relationship": "family",
                "role": "transport-helper",
                "status": "active",
            }
        ],
    )
    services.answer("careplan", "POST", f"{PATH}/care-plan/contributions", 201, {"plan_version": 4})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/contributions/new")
    assert f'<option value="{MEMBER}">Bo Example (family, transport helper)</option>' in form.text
    assert f'<option value="{GOAL}">Depression symptoms reduced (depression)</option>' in form.text
    base = {**form_of(form), "member_id": MEMBER, "expected_version": "3"}
    for data in (
        {"kind": "agreed-goal", "goal_id": GOAL},
        {"kind": "note", "note": " Drives her Tuesdays "},
        {"kind": "preference", "contact_preference": "text"},
        {"kind": "stated-need", "need": "transportation-insecurity"},
        {"kind": "need-withdrawn", "need": "food-insecurity"},
    ):
        answer = await client.post(f"/patients/{PID}/contributions", data={**base, **data})
        assert answer.status_code == 303
    assert posted(services, "careplan", f"{PATH}/care-plan/contributions") == [
        {"member_id": MEMBER, "kind": "agreed-goal", "expected_version": 3, "goal_id": GOAL},
        {"member_id": MEMBER, "kind": "note", "expected_version": 3, "note": "Drives her Tuesdays"},
        {
            "member_id": MEMBER,
            "kind": "preference",
            "expected_version": 3,
            "preference": {"contact_preference": "text"},
        },
        {
            "member_id": MEMBER,
            "kind": "stated-need",
            "expected_version": 3,
            "need": "transportation-insecurity",
        },
        {"member_id": MEMBER, "kind": "need-withdrawn", "expected_version": 3, "need": "food-insecurity"},
    ]


def one_member(services) -> None:
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/care-team",
        body=[{"id": MEMBER, "name": "Bo", "relationship": "family", "role": "helper", "status": "active"}],
    )


async def test_a_contribution_says_what_its_kind_needs(client, services, sign_in):
    with_plan(services)
    one_member(services)
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/contributions/new")
    base = {**form_of(form), "expected_version": "3"}
    page = await client.post(f"/patients/{PID}/contributions", data={**base, "kind": "note"})
    assert field_errors(page) == {
        "member_id": ["Choose the care-team member it comes from."],
        "note": ["Write the note."],
    }
    page = await client.post(
        f"/patients/{PID}/contributions", data={**base, "member_id": MEMBER, "kind": "preference"}
    )
    assert field_errors(page) == {
        "preferred_language": ["Choose a language or a way of contact they prefer."]
    }
    assert '<option value="transportation-insecurity">Transportation insecurity</option>' in form.text
    for need in ("", "legal-aid"):  # none, or one the plan library does not name
        page = await client.post(
            f"/patients/{PID}/contributions",
            data={**base, "member_id": MEMBER, "kind": "stated-need", "need": need},
        )
        assert field_errors(page) == {"need": ["Choose the need they raised."]}
        page = await client.post(
            f"/patients/{PID}/contributions",
            data={**base, "member_id": MEMBER, "kind": "need-withdrawn", "need": need},
        )
        assert field_errors(page) == {"need": ["Choose the need that is no longer theirs."]}
    assert not services.called("careplan", f"{PATH}/care-plan/contributions")


async def test_a_goal_in_their_own_words_is_sent_with_its_need_and_its_day_at_noon_in_the_workspace_zone(
    make_app, open_browser, services, sign_in
):
    from workspace.config import WorkspaceSettings

    with_plan(services)
    one_member(services)
    services.answer("careplan", "POST", f"{PATH}/care-plan/contributions", 201, {"plan_version": 4})
    async with open_browser(make_app(WorkspaceSettings(time_zone="America/Chicago"))) as http:
        await sign_in(http)
        form = await http.get(f"/patients/{PID}/contributions/new")
        assert 'value="personal-goal"' in form.text and 'type="date"' in form.text
        base = {**form_of(form), "member_id": MEMBER, "expected_version": "3", "kind": "personal-goal"}
        for data, problems in (
            ({"note": "  "}, {"note": ["Write the goal as they put it."]}),
            ({"note": "Cook for the family", "due": "2026-03-02"}, {"due": ["Choose a day after today."]}),
            ({"note": "Cook for the family", "due": "March"}, {"due": ["Enter a date, such as 2027-03-01."]}),
            (
                {"note": "Cook for the family", "need": "legal-aid"},
                {"need": ["Choose one of the needs, or none."]},
            ),
        ):
            refused = await http.post(f"/patients/{PID}/contributions", data={**base, **data})
            assert field_errors(refused) == problems, data
        assert not services.called("careplan", f"{PATH}/care-plan/contributions")
        for data in (
            {"note": " Cook for the family again ", "need": "food-insecurity", "due": "2026-06-01"},
            {"note": "Get back to choir"},
        ):
            answer = await http.post(f"/patients/{PID}/contributions", data={**base, **data})
            assert answer.status_code == 303
    assert posted(services, "careplan", f"{PATH}/care-plan/contributions") == [
        {
            "member_id": MEMBER,
            "kind": "personal-goal",
            "expected_version": 3,
            "note": "Cook for the family again",
            "need": "food-insecurity",
            "due": "2026-06-01T12:00:00-05:00",
        },
        {
            "member_id": MEMBER,
            "kind": "personal-goal",
            "expected_version": 3,
            "note": "Get back to choir",
            "need": None,
        },
    ]


async def test_a_service_request_shows_its_necessity_decision_and_records_the_choice(
    client, services, sign_in
):
    with_plan(services)
    services.answer(
        "careplan",
        "POST",
        f"{PATH}/service-requests",
        201,
        {
            "service_request_id": REQUEST,
            "service_code": "home-health-visits",
            "decision": "not-met",
            "failed_criteria": ["risk-at-least-high"],
            "alternatives": ["telehealth-check-ins"],
            "criteria_version": "n-1",
            "plan_version": 3,
        },
    )
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/service-requests",
        body=[
            {
                "id": REQUEST,
                "service_code": "home-health-visits",
                "met": False,
                "failed_criteria": ["risk-at-least-high", "community-referral-tried-first"],
                "alternatives": ["community-health-worker-visits", "telehealth-check-ins"],
                "criteria_version": "n-1",
                "chosen_alternative": None,
                "chosen_at": None,
                "created_at": "2026-03-02T08:25:00+00:00",
            }
        ],
    )
    services.answer("careplan", "POST", f"{PATH}/service-requests/{REQUEST}/choice", body={"plan_version": 4})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/service-requests/new")
    assert "Home health aide visits" in form.text and 'id="request-service"' in form.text
    answer = await client.post(
        f"/patients/{PID}/service-requests",
        data={**form_of(form), "service_code": "home-health-visits", "expected_version": "3"},
    )
    assert answer.headers["location"] == f"/patients/{PID}/service-requests/{REQUEST}"
    assert posted(services, "careplan", f"{PATH}/service-requests") == [
        {"service_code": "home-health-visits", "expected_version": 3}
    ]
    decision = await client.get(answer.headers["location"])
    text = " ".join(re.sub(r"<[^>]+>", " ", decision.text).split())
    assert "Home health aide visits: criteria not met" in text
    assert "Criteria not met Risk at least high Community referral tried first" in text
    assert "Community health worker visits" in text and "Telehealth check-ins" in text
    choice = await client.post(
        f"/patients/{PID}/service-requests/{REQUEST}/choice",
        data={
            **form_of(decision),
            "alternative": "telehealth-check-ins",
            "expected_version": value(decision, "expected_version"),
        },
    )
    assert choice.headers["location"] == f"/patients/{PID}?notice=alternative-chosen#service-requests"
    assert posted(services, "careplan", f"{PATH}/service-requests/{REQUEST}/choice") == [
        {"alternative": "telehealth-check-ins", "expected_version": 3}
    ]
    unknown = await client.get(f"/patients/{PID}/service-requests/{PID}")
    assert unknown.status_code == 404


async def test_a_met_request_says_it_joins_the_plan_and_asks_no_choice(client, services, sign_in):
    with_plan(services)
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/service-requests",
        body=[
            {
                "id": REQUEST,
                "service_code": "telehealth-check-ins",
                "met": True,
                "failed_criteria": [],
                "alternatives": [],
                "criteria_version": "n-1",
                "chosen_alternative": None,
                "chosen_at": None,
                "created_at": "2026-03-02T08:25:00+00:00",
            }
        ],
    )
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/service-requests/{REQUEST}")
    assert "meets the medical-necessity criteria (n-1) and joins the plan" in page.text
    assert 'id="choose-alternative"' not in page.text


async def test_education_given_offers_the_needs_materials_and_records_how(client, services, sign_in):
    with_plan(services)
    services.page(
        "careplan",
        "/v1/education/materials",
        [
            {
                "topic": "depression",
                "materials": [
                    {
                        "material_id": "edu-depression-es",
                        "language": "es",
                        "title": "La depresión",
                        "version": "2026.1",
                        "reviewed": "2026-01-01",
                    }
                ],
            }
        ],
    )
    services.answer(
        "careplan", "POST", f"{PATH}/care-plan/interventions/{EDUCATION}/education", 201, {"plan_version": 4}
    )
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/interventions/{EDUCATION}/education")
    assert 'id="record-education"' in form.text
    assert re.search(r'value="edu-depression-es" checked', form.text)  # the intervention's own, ticked
    assert "La depresión (es, version 2026.1)" in form.text
    [materials] = services.called("careplan", "/v1/education/materials")
    assert (materials.url.params["need"], materials.url.params["language"]) == ("depression", "es")
    answer = await client.post(
        f"/patients/{PID}/interventions/{EDUCATION}/education",
        data={**form_of(form), "materials": ["edu-depression-es"], "channel": "phone", "teach_back": "yes"},
    )
    assert answer.headers["location"] == f"/patients/{PID}?notice=education-recorded#education"
    await client.post(
        f"/patients/{PID}/interventions/{EDUCATION}/education", data={**form_of(form), "teach_back": ""}
    )
    assert posted(services, "careplan", f"{PATH}/care-plan/interventions/{EDUCATION}/education") == [
        {"materials": ["edu-depression-es"], "channel": "phone", "teach_back_confirmed": True},
        {"materials": None, "channel": None, "teach_back_confirmed": None},
    ]


async def test_an_unknown_material_is_said_beside_the_materials(client, services, sign_in):
    with_plan(services)
    services.page("careplan", "/v1/education/materials", [])
    detail = [
        {"loc": ["body", "materials", 0], "type": "unknown_material", "msg": "no such education material"}
    ]
    services.answer(
        "careplan", "POST", f"{PATH}/care-plan/interventions/{EDUCATION}/education", 422, {"detail": detail}
    )
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/interventions/{EDUCATION}/education")
    page = await client.post(
        f"/patients/{PID}/interventions/{EDUCATION}/education",
        data={**form_of(form), "materials": ["edu-depression-es"], "teach_back": "no"},
    )
    assert page.status_code == 422
    assert field_errors(page) == {"materials": ["0: no such education material"]}


async def test_a_need_withdrawn_that_nobody_raised_says_careplan_s_refusal_on_the_form(
    client, services, sign_in
):
    with_plan(services)
    one_member(services)
    refusal = "that need is not one the care team raised for this plan; nothing to withdraw"
    services.answer("careplan", "POST", f"{PATH}/care-plan/contributions", 409, {"detail": refusal})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/contributions/new")
    assert "No longer a need for them" in form.text
    data = {**form_of(form), "expected_version": "3", "member_id": MEMBER, "kind": "need-withdrawn"}
    page = await client.post(f"/patients/{PID}/contributions", data={**data, "need": "depression"})
    assert page.status_code == 409 and refusal in page.text
    assert 'value="need-withdrawn" checked' in page.text  # what was entered is kept


async def test_their_goal_in_new_words_names_the_goal_shown_in_its_words_and_sends_the_new_ones(
    client, services, sign_in
):
    with_plan(services)
    shown = plan()
    own = {**shown["document"]["goals"][0], "id": OWN, "description": "personal-goal", "need": "personal"}
    shown["document"]["goals"].append(own)
    services.answer("careplan", "GET", f"{PATH}/care-plan", body=shown)
    said = {"kind": "personal-goal", "goal_id": OWN, "note": "Sing in the choir"}
    services.page("careplan", f"{PATH}/care-team/contributions", [said])
    one_member(services)
    services.answer("careplan", "POST", f"{PATH}/care-plan/contributions", 201, {"plan_version": 3})
    await sign_in(client)
    form = await client.get(f"/patients/{PID}/contributions/new")
    assert f'<option value="{OWN}">“Sing in the choir” (personal)</option>' in form.text
    base = {**form_of(form), "member_id": MEMBER, "expected_version": "3", "kind": "goal-reworded"}
    page = await client.post(f"/patients/{PID}/contributions", data=base)
    assert field_errors(page) == {
        "goal_id": ["Choose the goal in their own words to put anew."],
        "note": ["Write the goal as they put it now."],
    }
    sent = await client.post(
        f"/patients/{PID}/contributions", data={**base, "goal_id": OWN, "note": " Sing solo at Easter "}
    )
    assert sent.status_code == 303
    assert posted(services, "careplan", f"{PATH}/care-plan/contributions") == [
        {
            "member_id": MEMBER,
            "kind": "goal-reworded",
            "expected_version": 3,
            "goal_id": OWN,
            "note": "Sing solo at Easter",
        }
    ]
