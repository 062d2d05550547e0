"""The patient page, rendered from the fake services' answers: every section, who sees which, what is
asked of the services, and sections that fail on their own."""

import re

import httpx
import pytest

from careloop_shared.auth import PEOPLE_ROLES
from services.workspace.tests.conftest import ANN, ANN_ID
from workspace.web import interval

PID = ANN_ID
PATH = f"/v1/patients/{PID}"
GOAL = "aaaaaaaa-0000-4000-8000-000000000001"
RIDES = "bbbbbbbb-0000-4000-8000-000000000002"
SAFETY = "bbbbbbbb-0000-4000-8000-000000000003"
REFERRAL = "cccccccc-0000-4000-8000-000000000004"
FOLLOW_UP = "dddddddd-0000-4000-8000-000000000005"
PROVIDER = {"agency": "agency-transit-aid", "role": "provider", "subject": "pr-transit-aid-kai"}
SUPERVISOR = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}

PATIENT = {**ANN, "safe_channels": ["text", "in-person"]}


def plan(version: int = 2, status: str = "active") -> dict:
    return {
        "plan_id": "eeeeeeee-0000-4000-8000-000000000000",
        "patient_id": PID,
        "version": version,
        "status": status,
        "reason": "referral-status-changed",
        "changed_by": "system",
        "changed_by_subject": None,
        "created_at": "2026-03-02T08:30:00+00:00",
        "document": {
            "library_version": "plan-library.v1",
            "risk_level": "urgent",
            "urgent_flags": ["suicidal-ideation"],
            "needs": ["transportation-insecurity"],
            "goals": [
                {
                    "id": GOAL,
                    "need": "transportation-insecurity",
                    "description": "reliable-transportation",
                    "target": "No missed care for lack of transport",
                    "due": "2026-05-01T08:30:00+00:00",
                    "lifecycle_status": "active",
                    "achievement_status": None,
                }
            ],
            "interventions": [
                {
                    "id": RIDES,
                    "need": "transportation-insecurity",
                    "kind": "referral",
                    "program_category": "transportation",
                    "needs_referral": True,
                    "status": "scheduled",
                    "priority": "routine",
                    "education_materials": ["edu-rides-to-care-es"],
                },
                {
                    "id": SAFETY,
                    "need": "suicidal-ideation",
                    "kind": "clinical",
                    "needs_referral": False,
                    "status": "not-started",
                    "priority": "stat",
                    "service_code": "urgent-safety-evaluation",
                },
            ],
            "follow_up": {"every_days": 1, "priority": "urgent", "channel": "text"},
        },
    }


ASSESSMENT = {
    "id": "ffffffff-0000-4000-8000-000000000006",
    "patient_id": PID,
    "instrument": "phq-9",
    "rules_version": "screening-2026.11.4",
    "observations": [],
    "total_score": 9,
    "interpretation": "mild",
    "needs": [{"code": "depression", "severity": "mild"}],
    "risk_level": "urgent",
    "urgent_flags": ["suicidal-ideation"],
    "recommended_instruments": [],
    "assessed_at": "2026-03-02T08:10:00+00:00",
    "assessed_by": "cm-riverside-ana",
}
REFERRAL_ROW = {
    "id": REFERRAL,
    "patient_id": PID,
    "intervention_id": RIDES,
    "need": "transportation-insecurity",
    "program_category": "transportation",
    "program_id": "prg-ride-share-health",
    "receiving_agency_id": "agency-transit-aid",
    "status": "accepted",
    "status_reason": None,
    "priority": "routine",
    "outcome": None,
    "choice": "automatic",
    "made_at": "2026-03-02T08:31:00+00:00",
    "response_due_at": "2026-03-04T08:31:00+00:00",
    "outcome_due_at": "2026-03-16T08:31:00+00:00",
    "response_overdue": False,
    "outcome_overdue": False,
}
HISTORY = [
    {
        "from_status": None,
        "to_status": "requested",
        "by_agency_id": "agency-riverside",
        "by_party": "referrer",
        "by_subject": None,
        "by_role": None,
        "reason": None,
        "outcome": None,
        "note": None,
        "changed_at": "2026-03-02T08:31:00+00:00",
    },
    {
        "from_status": "requested",
        "to_status": "accepted",
        "by_agency_id": "agency-transit-aid",
        "by_party": "receiver",
        "by_subject": "pr-transit-aid-kai",
        "by_role": "provider",
        "reason": None,
        "outcome": None,
        "note": "We will call her",
        "changed_at": "2026-03-02T08:40:00+00:00",
    },
]
FOLLOW_UP_ROW = {
    "id": FOLLOW_UP,
    "patient_id": PID,
    "reason": "plan-cadence",
    "priority": "urgent",
    "due_at": "2026-03-02T08:00:00+00:00",
    "overdue_at": "2026-03-02T12:00:00+00:00",
    "status": "due",
    "attempt": 2,
    "channel": "text",
    "assignee_id": "cm-riverside-ana",
}
OUTCOME = {
    "attempt": 1,
    "reached": False,
    "goal_progress": [],
    "barriers": ["no-phone"],
    "next_step": None,
    "note": "No answer",
    "recorded_by": "cm-riverside-ana",
    "recorded_by_role": "care-manager",
    "recorded_at": "2026-03-01T10:00:00+00:00",
}
EDUCATION = {
    "seq": 7,
    "event_id": "11111111-0000-4000-8000-000000000007",
    "type": "careloop.careplan.education_provided.v1",
    "time": "2026-03-02T08:50:00+00:00",
    "recorded_at": "2026-03-02T08:50:01+00:00",
    "source": "/careloop/careplan",
    "actor": "care-manager cm-riverside-ana",
    "summary": "Education given: edu-rides-to-care-es",
    "correlation_id": "11111111-0000-4000-8000-000000000008",
    "causation_id": None,
    "data": {
        "materials": ["edu-rides-to-care-es"],
        "language": "es",
        "channel": "phone",
        "teach_back_confirmed": True,
        "provided_at": "2026-03-02T08:50:00+00:00",
    },
}


def entry(seq: int, summary: str) -> dict:
    return {
        **EDUCATION,
        "seq": seq,
        "type": "careloop.intake.patient_registered.v1",
        "summary": summary,
        "source": "/careloop/intake",
        "data": {},
    }


def answer_everything(services, make_task, *, version: int = 2) -> None:
    services.answer("intake", "GET", PATH, body=PATIENT)
    services.answer(
        "intake",
        "GET",
        f"{PATH}/consents",
        body=[
            {
                "id": "22222222-0000-4000-8000-000000000009",
                "patient_id": PID,
                "purpose": "referral",
                "agencies": ["agency-transit-aid"],
                "program_categories": ["transportation"],
                "period_start": "2026-03-02T00:00:00+00:00",
                "period_end": None,
                "status": "active",
                "recorded_at": "2026-03-02T08:05:00+00:00",
                "revoked_at": None,
                "recorded_by": "cm-riverside-ana",
            }
        ],
    )
    services.page("intake", f"{PATH}/assessments", [ASSESSMENT])
    services.answer("careplan", "GET", f"{PATH}/care-plan", body=plan(version))
    services.page(
        "careplan",
        f"{PATH}/care-plan/versions",
        [
            {
                "version": 1,
                "status": "active",
                "reason": "assessed",
                "changed_by": "system",
                "changed_by_subject": None,
                "created_at": "2026-03-02T08:11:00+00:00",
            },
            {
                "version": 2,
                "status": "active",
                "reason": "referral-status-changed",
                "changed_by": "system",
                "changed_by_subject": None,
                "created_at": "2026-03-02T08:40:00+00:00",
            },
        ],
    )
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/care-plan/diff",
        body={
            "from_version": 1,
            "to_version": 2,
            "changes": {
                "goals": {"added": [], "changed": [], "removed": []},
                "interventions": {
                    "added": [],
                    "changed": [
                        {"id": RIDES, "fields": {"status": {"from": "not-started", "to": "scheduled"}}}
                    ],
                    "removed": [],
                },
            },
        },
    )
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/care-team",
        body=[
            {
                "id": "44444444-0000-4000-8000-000000000010",
                "patient_id": PID,
                "name": "Bo Example",
                "relationship": "family",
                "role": "transport-helper",
                "contact": "+1 555 0101",
                "status": "active",
                "created_at": "2026-03-02T08:20:00+00:00",
                "updated_at": "2026-03-02T08:20:00+00:00",
                "created_by_subject": "cm-riverside-ana",
            }
        ],
    )
    services.page(
        "careplan",
        f"{PATH}/care-team/contributions",
        [
            {
                "id": "55555555-0000-4000-8000-000000000011",
                "member_id": "44444444-0000-4000-8000-000000000010",
                "member_relationship": "family",
                "member_role": "transport-helper",
                "kind": "agreed-goal",
                "note": None,
                "goal_id": GOAL,
                "preference": None,
                "plan_version": 2,
                "created_at": "2026-03-02T08:21:00+00:00",
                "recorded_by_subject": "cm-riverside-ana",
            }
        ],
    )
    services.answer(
        "careplan",
        "GET",
        f"{PATH}/service-requests",
        body=[
            {
                "id": "66666666-0000-4000-8000-000000000012",
                "service_code": "home-health-visits",
                "met": False,
                "failed_criteria": ["risk-at-least-high", "community-referral-tried-first"],
                "alternatives": ["community-health-worker-visits", "telehealth-check-ins"],
                "criteria_version": "necessity-criteria-2026.11.2",
                "chosen_alternative": None,
                "chosen_at": None,
                "created_at": "2026-03-02T08:25:00+00:00",
            }
        ],
    )
    services.page("referral", "/v1/referrals", [REFERRAL_ROW])
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body={**REFERRAL_ROW, "history": HISTORY})
    services.page("followup", "/v1/follow-ups", [FOLLOW_UP_ROW])
    services.answer(
        "followup", "GET", f"/v1/follow-ups/{FOLLOW_UP}", body={**FOLLOW_UP_ROW, "outcomes": [OUTCOME]}
    )
    services.page("followup", "/v1/tasks", [make_task("stat", "safety-check", patient_id=PID)])
    services.answer(
        "record",
        "GET",
        f"{PATH}/record",
        body={"patient_id": PID, "entries": [entry(1, "Patient registered"), EDUCATION]},
    )
    services.answer(
        "record",
        "GET",
        f"{PATH}/record/verify",
        body={"patient_id": PID, "entries": 2, "intact": True, "first_broken_seq": None, "problem": None},
    )


def section(page: httpx.Response, name: str) -> str:
    """A section's text, tags removed and spaces collapsed."""
    part = page.text.split(f'id="{name}-heading"', 1)[1].split("</section>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", part).split())


async def test_a_care_manager_sees_every_section_of_the_patient(client, services, sign_in, make_task):
    answer_everything(services, make_task)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert page.status_code == 200, page.text
    assert "<h1>Ann Example</h1>" in page.text
    assert "/care-manager" not in page.text  # reassigning is a supervisor's
    assert f'<a href="/patients/{PID}/details/edit">Change the details</a>' in page.text
    assert "<title>Patient · careloop</title>" in page.text  # no name in the browser's history
    details = section(page, "details")
    assert "Ann Example" in details and "1958-04-11" in details and "Spanish" in details
    assert "Safe to contact by Text, In person" in details
    assert "Care manager you (cm-riverside-ana)" in details
    assert "stat Safety check Open" in section(page, "tasks")
    plan_text = section(page, "plan")
    assert "Status Active" in plan_text
    assert "Every 1 day, by text, urgent priority" in plan_text
    assert (
        "Reliable transportation Transportation insecurity No missed care for lack of transport" in plan_text
    )
    assert "Referral Transportation insecurity Transportation routine Scheduled" in plan_text
    assert f'href="/patients/{PID}/goals/{GOAL}/status"' in page.text  # progress by hand
    assert f'href="/patients/{PID}/interventions/{SAFETY}/status"' in page.text
    assert f'href="/patients/{PID}/interventions/{RIDES}/status"' not in page.text  # follows its referral
    assert "What changed from version 1 to version 2" in plan_text
    assert (
        "Intervention “referral for transportation insecurity (transportation)” changed:"
        " status from not started to scheduled." in plan_text
    )
    referrals = section(page, "referrals")
    assert "Transportation: prg-ride-share-health Accepted" in referrals
    assert "Requested → Accepted by receiver (pr-transit-aid-kai). Note: We will call her" in referrals
    assert f'href="/patients/{PID}/referrals/{REFERRAL}/withdraw"' in page.text  # an open one
    follow_ups = section(page, "follow-ups")
    assert "Plan cadence, due Mon 02 Mar 08:00 Due" in follow_ups
    assert "attempt 1: not reached ; barriers: no phone. Note: No answer (cm-riverside-ana)" in follow_ups
    assert f'href="/patients/{PID}/follow-ups/{FOLLOW_UP}/outcome"' in page.text
    assert "PHQ-9 9 Mild Urgent Depression (mild) Suicidal ideation" in section(page, "assessments")
    assert "Referral agency-transit-aid Transportation" in section(page, "consents")
    team = section(page, "care-team")
    assert "Bo Example Family Transport helper +1 555 0101" in team
    assert "Agreed goal Reliable transportation 2" in team
    requests = section(page, "service-requests")
    assert "Home health aide visits Not met: risk at least high, community referral tried first" in requests
    assert "Record the patient's choice" in requests
    assert "edu-rides-to-care-es Spanish Phone Explained back care-manager cm-riverside-ana" in section(
        page, "education"
    )
    timeline = section(page, "timeline")
    assert "Verified: 2 entries, the hash chain is intact." in timeline
    assert "1 Mon 02 Mar 08:50 Patient registered care-manager cm-riverside-ana intake" in timeline


async def test_times_at_the_ends_of_the_calendar_are_shown_not_a_500(client, services, sign_in, make_task):
    """As intake read back consents kept before it bounded times (found by the workspace walk): PostgreSQL's
    -infinity and infinity come back without an offset, as the first and the last instant Python names."""
    answer_everything(services, make_task)
    consent = services.answers[("intake", "GET", f"{PATH}/consents")](None).json()[0]
    ends = [
        {**consent, "period_start": "0001-01-01T00:00:00", "period_end": "9999-12-31T23:59:59.999999"},
        {**consent, "period_start": "0001-01-01T00:00:00+00:00", "period_end": "9999-12-31T23:00:00-02:00"},
    ]
    services.answer("intake", "GET", f"{PATH}/consents", body=ends)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert page.status_code == 200, page.text
    consents = section(page, "consents")
    assert "Mon 01 Jan 00:00" in consents and "Fri 31 Dec 23:59" in consents


async def test_the_services_are_asked_for_this_patient_only(client, services, sign_in, make_task):
    answer_everything(services, make_task)
    await sign_in(client)
    await client.get(f"/patients/{PID}?referrals=20&timeline=0")
    [referrals] = services.called("referral", "/v1/referrals")
    assert dict(referrals.url.params) == {"patient_id": PID, "offset": "20", "limit": "20"}
    [tasks] = services.called("followup", "/v1/tasks")
    assert dict(tasks.url.params) == {"patient_id": PID, "status": "active", "offset": "0", "limit": "20"}
    [follow_ups] = services.called("followup", "/v1/follow-ups")
    assert follow_ups.url.params["patient_id"] == PID
    [diff] = services.called("careplan", f"{PATH}/care-plan/diff")
    assert dict(diff.url.params) == {"from": "1", "to": "2"}
    assert services.called("referral", f"/v1/referrals/{REFERRAL}")
    assert services.called("followup", f"/v1/follow-ups/{FOLLOW_UP}")
    assert all(r.headers["authorization"].startswith("Bearer ") for r in services.requests)


async def test_any_two_versions_can_be_compared(client, services, sign_in, make_task):
    answer_everything(services, make_task, version=5)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}?from=2&to=4")
    assert "What changed from version 2 to version 4" in page.text
    [diff] = services.called("careplan", f"{PATH}/care-plan/diff")
    assert dict(diff.url.params) == {"from": "2", "to": "4"}
    assert f'href="/patients/{PID}?from=1&amp;to=2#plan-changes"' in page.text


async def test_no_plan_yet_says_so_and_offers_a_refresh(client, services, sign_in, make_task):
    answer_everything(services, make_task)
    for path in ("/care-plan", "/care-plan/versions", "/care-team", "/care-team/contributions"):
        services.answer("careplan", "GET", f"{PATH}{path}", 404, {"detail": "care plan not found"})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert page.status_code == 200
    plan_text = section(page, "plan")
    assert "No plan yet." in plan_text
    assert f'<a href="/patients/{PID}#plan">Refresh to look again</a>' in page.text
    assert "Not found" not in plan_text
    assert "The care team is kept with the plan, and there is no plan yet." in section(page, "care-team")
    assert not services.called("careplan", f"{PATH}/care-plan/diff")


async def test_each_section_fails_on_its_own(client, services, sign_in, make_task):
    answer_everything(services, make_task)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    services.answer_with("referral", "GET", "/v1/referrals", down)
    services.answer("record", "GET", f"{PATH}/record", 503, {"detail": "the audit log is unavailable"})
    services.answer("followup", "GET", f"/v1/follow-ups/{FOLLOW_UP}", 500, {"detail": "boom"})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert page.status_code == 200
    assert "Referrals is unavailable; try again shortly." in section(page, "referrals")
    assert "The case record could not answer just now (503)" in section(page, "timeline")
    assert "Verified: 2 entries" in section(page, "timeline")
    assert "Follow-up could not answer just now (500)" in section(page, "follow-ups")
    assert "Ann Example" in section(page, "details")
    assert "Reliable transportation" in section(page, "plan")


async def page_with_intake_answering(client, services, sign_in, make_task, status: int, detail: str):
    """The patient page, every service answering as usual but intake's details answering ``status``."""
    answer_everything(services, make_task)
    services.answer("intake", "GET", PATH, status, {"detail": detail})
    await sign_in(client)
    return await client.get(f"/patients/{PID}")


async def test_the_page_is_headed_by_the_id_while_intake_cannot_give_the_name(
    client, services, sign_in, make_task
):
    page = await page_with_intake_answering(client, services, sign_in, make_task, 503, "down")
    assert page.status_code == 200
    assert "<h1>Patient 33333333</h1>" in page.text
    assert "Ann Example" not in page.text
    assert "Reliable transportation" in section(page, "plan")


async def test_a_provider_or_an_analyst_has_no_patient_pages_and_nothing_is_asked(
    make_app, settings, open_browser, services, sign_in, make_task
):
    answer_everything(services, make_task)
    analyst = {"agency": "agency-riverside", "role": "analyst", "subject": "an-riverside-al"}
    for person in (PROVIDER, analyst):
        async with open_browser(make_app(settings)) as http:
            await sign_in(http, person)
            page = await http.get(f"/patients/{PID}")
        assert page.status_code == 403
        assert "Patient pages are not available to your role." in page.text
        assert "Ann Example" not in page.text
    assert services.requests == []


async def test_actions_are_offered_only_to_roles_that_may_take_them(client, services, sign_in, make_task):
    answer_everything(services, make_task)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    for link in (
        "consents/new",
        "assessments/new",
        "care-team/new",
        "service-requests/new",
        f"interventions/{RIDES}/referral",
        f"interventions/{RIDES}/education",
    ):
        assert f'href="/patients/{PID}/{link}"' in page.text, link
    assert f"interventions/{SAFETY}/referral" not in page.text  # needs no referral
    assert 'id="plan-status"' in page.text
    assert re.search(r'<option value="on-hold">On hold</option>', page.text)
    assert 'value="Start"' in page.text and 'value="Mark done"' in page.text


async def test_a_supervisor_works_the_patient_as_a_care_manager_does(
    make_app, settings, open_browser, services, sign_in, make_task
):
    answer_everything(services, make_task)
    async with open_browser(make_app(settings)) as http:
        await sign_in(http, SUPERVISOR)
        page = await http.get(f"/patients/{PID}")
    assert 'id="plan-status"' in page.text
    assert f'href="/patients/{PID}/consents/new"' in page.text
    assert f'href="/patients/{PID}/interventions/{RIDES}/referral"' in page.text
    assert "Care manager cm-riverside-ana Reassign Ann Example" in section(page, "details")
    assert f'href="/supervisor/patients/{PID}/care-manager"' in page.text


async def test_another_agencys_patient_is_not_found_and_no_other_service_is_asked(
    client, services, sign_in, make_task
):
    page = await page_with_intake_answering(client, services, sign_in, make_task, 404, "patient not found")
    assert page.status_code == 404
    assert "There is no such patient, or not one you may see." in page.text
    assert [r.url.path for r in services.requests] == [PATH]


async def test_long_lists_are_paginated(client, services, sign_in, make_task):
    answer_everything(services, make_task)
    services.answer(
        "record",
        "GET",
        f"{PATH}/record",
        body={"patient_id": PID, "entries": [entry(n, f"Step {n}") for n in range(1, 121)]},
    )
    services.page("intake", f"{PATH}/assessments", [ASSESSMENT], next_offset=20)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}?timeline=50")
    timeline = section(page, "timeline")
    assert "Step 51 " in timeline and "Step 100 " in timeline
    assert "Step 50 " not in timeline and "Step 101 " not in timeline
    assert f'href="/patients/{PID}?timeline=100" rel="next"' in page.text
    assert f'href="/patients/{PID}?timeline=0" rel="prev"' in page.text
    assert f'href="/patients/{PID}?timeline=50&amp;assessments=20" rel="next"' in page.text


async def test_a_broken_record_says_where_it_breaks(client, services, sign_in, make_task):
    answer_everything(services, make_task)
    services.answer(
        "record",
        "GET",
        f"{PATH}/record/verify",
        body={
            "patient_id": PID,
            "entries": 9,
            "intact": False,
            "first_broken_seq": 4,
            "problem": "hash mismatch",
        },
    )
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert "Not verified: the chain breaks at entry 4 (hash mismatch)." in section(page, "timeline")


async def test_only_care_managers_and_supervisors_get_the_page(
    make_app, settings, open_browser, services, sign_in, make_task
):
    answer_everything(services, make_task)
    app = make_app(settings)
    statuses = {}
    for role in sorted(PEOPLE_ROLES):
        async with open_browser(app) as http:
            await sign_in(http, {"agency": "agency-riverside", "role": role, "subject": f"x-{role}"})
            statuses[role] = (await http.get(f"/patients/{PID}")).status_code
    assert statuses == {"admin": 403, "analyst": 403, "care-manager": 200, "provider": 403, "supervisor": 200}


CONSENT = "22222222-0000-4000-8000-000000000009"
REVOKE = f"{PATH}/consents/{CONSENT}/revoke"


async def test_an_active_consent_can_be_revoked_from_the_page_once_however_often_pressed(
    client, services, sign_in, make_task, csrf_of
):
    answer_everything(services, make_task)
    consents = services.answers[("intake", "GET", f"{PATH}/consents")](None).json()
    ended = {**consents[0], "id": "22222222-0000-4000-8000-000000000010", "status": "revoked"}
    services.answer("intake", "GET", f"{PATH}/consents", body=[*consents, ended])
    services.answer("intake", "POST", REVOKE, body={**consents[0], "status": "revoked"})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    forms = re.findall(r'action="/patients/[^"]+/consents/([^"]+)/revoke"', page.text)
    assert forms == [CONSENT]  # the active one only
    assert "Revoke the consent to referral from Mon 02 Mar 00:00" in section(page, "consents")
    for _ in range(2):
        answer = await client.post(
            f"/patients/{PID}/consents/{CONSENT}/revoke", data={"csrf_token": csrf_of(page)}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/patients/{PID}?notice=consent-revoked#consents"
    keys = {r.headers["idempotency-key"] for r in services.called("intake", REVOKE)}
    assert len(services.called("intake", REVOKE)) == 2 and len(keys) == 1  # intake replays the second


async def test_a_consent_no_longer_active_says_so(client, services, sign_in, make_task, csrf_of):
    answer_everything(services, make_task)
    services.answer("intake", "POST", REVOKE, 409, {"detail": "consent is not active"})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    answer = await client.post(
        f"/patients/{PID}/consents/{CONSENT}/revoke", data={"csrf_token": csrf_of(page)}
    )
    assert answer.headers["location"] == f"/patients/{PID}?notice=consent-not-active#consents"
    shown = await client.get(answer.headers["location"])
    assert "That consent was no longer active: revoked already, or ended." in shown.text


async def test_a_provider_may_not_revoke_a_consent(
    make_app, settings, open_browser, services, sign_in, csrf_of
):
    async with open_browser(make_app(settings)) as http:
        await sign_in(http, PROVIDER)
        inbox = await http.get("/inbox")
        answer = await http.post(
            f"/patients/{PID}/consents/{CONSENT}/revoke", data={"csrf_token": csrf_of(inbox)}
        )
    assert answer.status_code == 403
    assert not services.called("intake", REVOKE)


MEMBER = "44444444-0000-4000-8000-000000000010"
REMOVE = f"{PATH}/care-team/{MEMBER}"


async def test_a_care_team_member_can_leave_the_team_once_however_often_pressed(
    client, services, sign_in, make_task, csrf_of
):
    answer_everything(services, make_task)
    team = services.answers[("careplan", "GET", f"{PATH}/care-team")](None).json()
    gone = {
        **team[0],
        "id": "44444444-0000-4000-8000-000000000011",
        "name": "Cy Former",
        "status": "inactive",
    }
    services.answer("careplan", "GET", f"{PATH}/care-team", body=[*team, gone])
    services.answer("careplan", "DELETE", REMOVE, body={"removed": MEMBER})
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert re.findall(r'action="/patients/[^"]+/care-team/([^"]+)/remove"', page.text) == [MEMBER]
    shown = section(page, "care-team")
    assert (
        "Bo Example Family Transport helper" in shown
        and "On the team Change Bo Example Remove Bo Example" in shown
    )
    assert "Cy Former" in shown and "Left the team —" in shown
    for _ in range(2):
        answer = await client.post(
            f"/patients/{PID}/care-team/{MEMBER}/remove", data={"csrf_token": csrf_of(page)}
        )
        assert answer.headers["location"] == f"/patients/{PID}?notice=member-removed#care-team"
    calls = services.called("careplan", REMOVE)
    assert [r.method for r in calls] == ["DELETE", "DELETE"] and len(
        {r.headers["idempotency-key"] for r in calls}
    ) == 1


async def test_a_member_no_longer_on_the_team_says_so_and_a_provider_may_not_remove(
    make_app, settings, open_browser, services, sign_in, make_task, csrf_of
):
    answer_everything(services, make_task)
    services.answer("careplan", "DELETE", REMOVE, 404, {"detail": "care team member not found"})
    async with open_browser(make_app(settings)) as http:
        await sign_in(http)
        page = await http.get(f"/patients/{PID}")
        answer = await http.post(
            f"/patients/{PID}/care-team/{MEMBER}/remove", data={"csrf_token": csrf_of(page)}
        )
        assert answer.headers["location"] == f"/patients/{PID}?notice=member-not-active#care-team"
    async with open_browser(make_app(settings)) as http:
        await sign_in(http, PROVIDER)
        inbox = await http.get("/inbox")
        refused = await http.post(
            f"/patients/{PID}/care-team/{MEMBER}/remove", data={"csrf_token": csrf_of(inbox)}
        )
    assert refused.status_code == 403
    assert len(services.called("careplan", REMOVE)) == 1  # the care manager's only


@pytest.mark.parametrize(
    ("days", "said"),
    [(14, "14 days"), (1, "1 day"), (1.5, "1.5 days"), (0.25, "6 hours"), (2 / 86400, "2 seconds")],
)
def test_a_follow_up_cadence_is_said_in_the_unit_a_person_would_use(days, said):
    assert interval(days) == said


OWN_GOAL = "55555555-0000-4000-8000-000000000099"


async def test_a_goal_in_the_patient_s_own_words_shows_their_words_in_the_plan(
    client, services, sign_in, make_task
):
    answer_everything(services, make_task)
    shown = plan()
    shown["document"]["goals"].append(
        {
            "id": OWN_GOAL,
            "need": "personal",
            "description": "personal-goal",
            "target": "In the patient's own words",
            "due": "2026-06-01T17:00:00+00:00",
            "lifecycle_status": "accepted",
            "achievement_status": "improving",
        }
    )
    services.answer("careplan", "GET", f"{PATH}/care-plan", body=shown)
    words = {
        "id": OWN_GOAL,
        "member_id": "44444444-0000-4000-8000-000000000010",
        "member_relationship": "family",
        "member_role": "transport-helper",
        "kind": "personal-goal",
        "note": "Get back to choir on Thursdays",
        "goal_id": OWN_GOAL,
        "preference": None,
        "need": None,
        "plan_version": 3,
        "created_at": "2026-03-02T08:40:00+00:00",
        "recorded_by_subject": "cm-riverside-ana",
    }
    services.page("careplan", f"{PATH}/care-team/contributions", [words])
    added = {
        "from_version": 1,
        "to_version": 2,
        "changes": {"goals": {"added": [shown["document"]["goals"][-1]]}},
    }
    services.answer("careplan", "GET", f"{PATH}/care-plan/diff", body=added)
    await sign_in(client)
    page = await client.get(f"/patients/{PID}")
    assert "Goal added: “Get back to choir on Thursdays”, target: In the patient" in page.text
    goals = section(page, "goals")
    assert (
        "“Get back to choir on Thursdays” (in their own words) Personal In the patient&#39;s own words"
        in goals
    )
    assert "Reliable transportation" in goals
    called = services.called("careplan", f"{PATH}/care-team/contributions")
    asked = [r.url.params.get_list("kind") for r in called]
    assert sorted(asked) == [[], ["personal-goal", "goal-reworded"]]
    assert "“Get back to choir on Thursdays”" in section(page, "care-team")

    # careplan cannot say the words (an outage, or an erased patient's): the goal still shows as theirs.
    services.answer("careplan", "GET", f"{PATH}/care-team/contributions", 503, {"detail": "down"})
    page = await client.get(f"/patients/{PID}")
    assert "A goal in their own words Personal" in section(page, "goals")
