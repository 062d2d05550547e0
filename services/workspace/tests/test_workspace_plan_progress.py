"""Progress on the plan by hand: an intervention no referral serves moved along its status, a goal's
lifecycle and achievement said, each against the version the person saw (a stale one says where the
plan is now), and an intervention a referral serves left to its referral."""

import json

from .test_workspace_plan_forms import EDUCATION, GOAL, PATH, PID, field_errors, form_of, plan, with_plan

INTERVENTION_PAGE = f"/patients/{PID}/interventions/{EDUCATION}/status"
GOAL_PAGE = f"/patients/{PID}/goals/{GOAL}/status"
REFERRED = "bbbbbbbb-0000-4000-8000-000000000009"


async def test_an_intervention_is_moved_against_the_version_seen(client, services, sign_in):
    with_plan(services)
    path = f"{PATH}/care-plan/interventions/{EDUCATION}/status"
    services.answer("careplan", "POST", path, body={"plan_version": 4})
    await sign_in(client)
    page = await client.get(INTERVENTION_PAGE)
    assert page.status_code == 200
    assert "The intervention <strong>education for depression</strong> is not started." in page.text
    offered = page.text.split('id="status"', 1)[1].split("</select>", 1)[0]
    assert [
        o for o in ("scheduled", "in-progress", "completed", "cancelled", "stopped") if f'"{o}"' in offered
    ] == [
        "scheduled",
        "in-progress",
        "completed",
        "cancelled",
    ]
    form = form_of(page)
    done = await client.post(INTERVENTION_PAGE, data={**form, "expected_version": "3", "status": "completed"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/patients/{PID}?notice=plan-progress-recorded#plan"
    [sent] = services.called("careplan", path)
    assert json.loads(sent.content) == {"status": "completed", "expected_version": 3}
    assert sent.headers["Idempotency-Key"] == form["form_key"]


async def test_a_stale_version_says_where_the_plan_is_now(client, services, sign_in):
    with_plan(services, version=5)
    path = f"{PATH}/care-plan/goals/{GOAL}/status"
    stale = {"detail": "the plan is at version 5; reload and try again", "current_version": 5}
    services.answer("careplan", "POST", path, 409, stale)
    await sign_in(client)
    form = form_of(await client.get(GOAL_PAGE))
    page = await client.post(GOAL_PAGE, data={**form, "expected_version": "3", "lifecycle_status": "on-hold"})
    assert page.status_code == 409
    assert "it is now at version 5, and this form was for version 3" in page.text
    assert 'name="expected_version" value="3"' in page.text  # still the version the person saw
    assert '<option value="on-hold" selected>On hold</option>' in page.text


async def test_a_goal_is_said_on_hold_with_its_progress_and_saying_nothing_is_explained(
    client, services, sign_in
):
    with_plan(services)
    path = f"{PATH}/care-plan/goals/{GOAL}/status"
    services.answer("careplan", "POST", path, body={"plan_version": 4})
    await sign_in(client)
    page = await client.get(GOAL_PAGE)
    assert "is active, its progress not yet assessed" in page.text
    assert '<option value="not-attainable">Not attainable</option>' in page.text
    form = form_of(page)
    data = {
        **form,
        "expected_version": "3",
        "lifecycle_status": "on-hold",
        "achievement_status": "no-progress",
    }
    assert (await client.post(GOAL_PAGE, data=data)).status_code == 303
    sent = json.loads(services.called("careplan", path)[-1].content)
    assert sent == {"lifecycle_status": "on-hold", "achievement_status": "no-progress", "expected_version": 3}
    page = await client.post(GOAL_PAGE, data={**form, "expected_version": "3"})  # nothing said
    assert page.status_code == 422
    assert field_errors(page) == {
        "lifecycle_status": ["Say where the goal stands, how it is going, or both."]
    }
    assert len(services.called("careplan", path)) == 1  # nothing sent for it


async def test_an_intervention_a_referral_serves_or_one_not_in_the_plan_offers_no_form(
    client, services, sign_in
):
    shown = plan()
    shown["document"]["interventions"].append(
        {
            "id": REFERRED,
            "need": "depression",
            "kind": "referral",
            "needs_referral": True,
            "status": "scheduled",
        }
    )
    services.answer("intake", "GET", PATH, body={"given_name": "Ann", "family_name": "Example"})
    services.answer("careplan", "GET", f"{PATH}/care-plan", body=shown)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}/interventions/{REFERRED}/status")
    assert "it follows its referral" in page.text and 'id="plan-progress"' not in page.text
    page = await client.get(
        f"/patients/{PID}/interventions/{GOAL}/status"
    )  # a goal's id: no such intervention
    assert "This intervention is not in the patient's current plan." in page.text
    assert 'id="plan-progress"' not in page.text


async def test_a_closed_plan_offers_no_form(client, services, sign_in):
    with_plan(services, status="completed")
    await sign_in(client)
    page = await client.get(GOAL_PAGE)
    assert "The plan is completed: nothing in it changes." in page.text
    assert 'id="plan-progress"' not in page.text


async def test_progress_on_a_goal_in_the_patient_s_own_words_names_it_in_their_words(
    client, services, sign_in
):
    shown = plan()
    [goal] = [g for g in shown["document"]["goals"] if g["id"] == GOAL]
    goal |= {"description": "personal-goal", "need": "personal", "target": "In the patient's own words"}
    services.answer("intake", "GET", PATH, body={"given_name": "Ann", "family_name": "Example"})
    services.answer("careplan", "GET", f"{PATH}/care-plan", body=shown)
    said = {"kind": "personal-goal", "goal_id": GOAL, "note": "Cook for my grandchildren"}
    anew = {"kind": "goal-reworded", "goal_id": GOAL, "note": "Cook Sunday lunch for my grandchildren"}
    services.page("careplan", f"{PATH}/care-team/contributions", [said, anew])
    await sign_in(client)
    page = await client.get(GOAL_PAGE)
    assert (  # the words they put it in last
        "The goal <strong>“Cook Sunday lunch for my grandchildren”</strong> (in their own words) (personal;"
        in page.text
    )
    [asked] = services.called("careplan", f"{PATH}/care-team/contributions")
    assert asked.url.params.get_list("kind") == ["personal-goal", "goal-reworded"]
