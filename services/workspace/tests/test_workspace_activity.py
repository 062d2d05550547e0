"""What one person of the agency has seen: the five services' ``/v1/audit/activity`` of that person as one
list, newest first, for the roles with ``audit:read``; a page at a time; the whole of it as CSV."""

import csv
import html
import io
import re

import pytest

from services.workspace.tests.conftest import ANN
from services.workspace.tests.test_workspace_access import PID, PLAN_ID, SUPERVISOR, entry, logs, rows
from workspace import access
from workspace.access import SERVICES
from workspace.config import WorkspaceSettings

ROUTE = "/v1/audit/activity"


@pytest.fixture
def settings() -> WorkspaceSettings:
    return WorkspaceSettings(page_size=3)


async def test_a_supervisor_asks_for_a_person_and_sees_what_they_were_shown_everywhere_newest_first(
    client, services, sign_in
):
    search = entry(2, patient_id=None, patient_agency_id=None, entity_id=None, what="patient",
                   outcome_detail="none found", route="POST /v1/patients/search")  # fmt: skip
    theirs = entry(
        3, patient_id=None, entity_id=None, patient_agency_id="agency-community-health", what="referral"
    )
    logs(
        services,
        {
            "intake": [entry(1), search],
            "careplan": [entry(4, what="plan", entity_id=PLAN_ID)],
            "referral": [theirs],
            "record": [entry(5, outcome="denied", outcome_detail="record:read")],
        },
        route=ROUTE,
    )
    services.answer(
        "intake", "GET", "/v1/patients", body={"items": [{**ANN, "id": PID}], "next_offset": None}
    )
    load = {"care_manager_id": "cm-riverside-ana", "patients": 1}
    services.answer("followup", "GET", "/v1/caseload/agency", body={"items": [load], "next_offset": None})
    await sign_in(client, SUPERVISOR)
    form = await client.get("/supervisor/activity")
    assert form.status_code == 200, form.text
    assert 'id="whose-activity"' in form.text and 'id="entries-heading"' not in form.text
    # The care managers with a caseload are offered as the id is typed.
    assert 'list="people"' in form.text and '<option value="cm-riverside-ana">' in form.text
    assert not [r for r in services.requests if ROUTE in r.url.path]  # nobody asked for yet

    page = await client.get("/supervisor/activity", params={"person": " cm-riverside-ana "})
    assert page.status_code == 200, page.text
    assert [r[:16] for r in rows(page)] == ["Mon 02 Mar 09:05", "Mon 02 Mar 09:04", "Mon 02 Mar 09:03"]
    for service in SERVICES:  # each asked for its newest entries of that person, the spaces trimmed
        asked = dict(services.called(service, ROUTE)[-1].url.params)
        assert asked == {"subject": "cm-riverside-ana", "order": "newest", "offset": "0", "limit": "3"}
    assert rows(page)[0].endswith("Refused (record:read)")
    assert "Ann Example 44444444" in rows(page)[1] and "A patient of agency-community-health" in rows(page)[2]
    later = html.unescape(re.search(r'href="([^"]+)" rel="next">Earlier entries', page.text).group(1))
    assert later == "/supervisor/activity?person=cm-riverside-ana&careplan=1&referral=1&record=1"
    following = await client.get(later)
    assert rows(following)[0].startswith("Mon 02 Mar 09:02") and "Nobody found" in rows(following)[0]
    assert "POST /v1/patients/search" in rows(following)[0]
    assert rows(following)[1].startswith("Mon 02 Mar 09:01") and 'rel="next"' not in following.text
    oldest = await client.get(
        "/supervisor/activity", params={"person": "cm-riverside-ana", "order": "oldest"}
    )
    assert [r[:16] for r in rows(oldest)] == ["Mon 02 Mar 09:01", "Mon 02 Mar 09:02", "Mon 02 Mar 09:03"]


async def test_a_log_that_cannot_be_read_is_named_and_nobody_found_says_so(client, services, sign_in):
    logs(services, {"intake": [entry(1)]}, route=ROUTE)
    services.answer("followup", "GET", ROUTE, 503, {"detail": "the audit log is unavailable"})
    services.answer("intake", "GET", "/v1/patients", body={"items": [], "next_offset": None})
    await sign_in(client, SUPERVISOR)
    page = await client.get("/supervisor/activity", params={"person": "cm-riverside-ana"})
    assert page.status_code == 200 and len(rows(page)) == 1
    assert re.search(r'role="alert">[^<]*Its entries are not in this list\.', page.text)
    unknown = entry(2, patient_id=None, entity_id=None, patient_agency_id=None, outcome="denied")
    logs(services, {"referral": [unknown]}, route=ROUTE)
    refused = await client.get("/supervisor/activity", params={"person": "cm-riverside-ana"})
    assert "Not known as your agency's" in rows(refused)[0] and "Refused" in rows(refused)[0]
    logs(services, {}, route=ROUTE)
    none = await client.get("/supervisor/activity", params={"person": "cm-nobody"})
    assert "No entries: nobody of your agency by that id" in none.text and 'role="alert"' not in none.text


async def test_only_a_supervisor_may_look_and_the_team_page_links_each_care_manager(
    client, services, sign_in, open_browser, make_app, settings
):
    logs(services, {"intake": [entry(1)]}, route=ROUTE)
    await sign_in(client)  # Ana, a care manager
    for address in ("/supervisor/activity?person=cm-riverside-ana", "/supervisor/activity.csv?person=x"):
        refused = await client.get(address)
        assert refused.status_code == 403 and "not available to your role" in refused.text
    assert not [r for r in services.requests if ROUTE in r.url.path]
    load = {"care_manager_id": "cm-riverside-ana", "patients": 1, "open_tasks": 0, "urgent_tasks": 0,
            "overdue_tasks": 0, "overdue_follow_ups": 0}  # fmt: skip
    services.answer("followup", "GET", "/v1/caseload/agency", body={"items": [load], "next_offset": None})
    services.answer("followup", "GET", "/v1/tasks", body={"items": [], "next_offset": None})
    services.answer("followup", "GET", "/v1/work-queue", body={"items": [], "next_offset": None})
    async with open_browser(make_app(settings)) as supervisor:
        await sign_in(supervisor, SUPERVISOR)
        team = await supervisor.get("/supervisor")
        assert '<a href="/supervisor/activity?person=cm-riverside-ana"' in team.text
        assert '<a href="/supervisor/activity">What a person has seen</a>' in team.text
        for bad in ("x" * 256, "a\x00b", "a\nb"):  # too long, or a control character: a bad address
            for address in ("/supervisor/activity", "/supervisor/activity.csv"):
                refused = await supervisor.get(address, params={"person": bad})
                assert refused.status_code == 400, (address, bad)
    assert not [r for r in services.requests if ROUTE in r.url.path]


async def test_what_a_person_has_seen_downloads_whole_as_csv_or_not_at_all(
    client, services, sign_in, monkeypatch
):
    logs(services, {"intake": [entry(m) for m in (1, 3, 5)], "record": [entry(2, subject="cm/odd name")]},
         route=ROUTE, most=2)  # fmt: skip
    await sign_in(client, SUPERVISOR)
    page = await client.get("/supervisor/activity", params={"person": "cm/odd name"})
    assert 'href="/supervisor/activity.csv?person=cm%2Fodd+name" download>' in page.text
    got = await client.get("/supervisor/activity.csv", params={"person": "cm/odd name"})
    assert got.status_code == 200, got.text
    assert got.headers["content-disposition"] == 'attachment; filename="activity-cm_odd_name.csv"'
    header, *lines = list(csv.reader(io.StringIO(got.text)))
    assert header[:2] == ["recorded_at", "service"]
    assert [(line[0][11:16], line[1]) for line in lines] == [
        ("09:01", "intake"), ("09:02", "record"), ("09:03", "intake"), ("09:05", "intake")
    ]  # fmt: skip
    asked = [dict(r.url.params) for r in services.called("intake", ROUTE)][-2:]
    assert [(a["subject"], a["offset"], a["order"]) for a in asked] == [
        ("cm/odd name", o, "oldest") for o in "02"
    ]
    blank = await client.get("/supervisor/activity.csv", params={"person": "  "})
    assert blank.status_code == 422 and "Say whose activity" in blank.text
    monkeypatch.setattr(access, "MOST_DOWNLOADED", 2)
    too_many = await client.get("/supervisor/activity.csv", params={"person": "cm-riverside-ana"})
    assert too_many.status_code == 422 and "read them on the page, or download fewer days." in too_many.text
    services.answer("careplan", "GET", ROUTE, 503, {"detail": "the audit log is unavailable"})
    monkeypatch.setattr(access, "MOST_DOWNLOADED", 20_000)
    failed = await client.get("/supervisor/activity.csv", params={"person": "cm-riverside-ana"})
    assert failed.status_code == 503 and failed.headers["content-type"].startswith("text/html")


def _seen(subject: str, minute: int, role: str = "care-manager") -> dict:
    return {"subject": subject, "role": role, "last_recorded_at": entry(minute)["recorded_at"]}


async def test_before_a_person_is_chosen_the_page_lists_who_the_logs_have_seen_latest_first(
    client, services, sign_in
):
    people = "/v1/audit/people"
    services.page(
        "intake", people, [_seen("cm-riverside-ana", 5), _seen("sv-riverside-sam", 2, "supervisor")]
    )
    services.page("careplan", people, [_seen("cm-riverside-ana", 3), _seen("an-riverside-al", 4, "analyst")])
    services.page("referral", people, [_seen("cm-riverside-ana", 7, "supervisor")], next_offset=200)
    services.page("followup", people, [])
    services.answer("record", "GET", people, 503, {"detail": "the audit log is unavailable"})
    load = {"care_manager_id": "cm-riverside-ben", "patients": 1}
    services.answer("followup", "GET", "/v1/caseload/agency", body={"items": [load], "next_offset": None})
    await sign_in(client, SUPERVISOR)
    page = await client.get("/supervisor/activity", params={"first_day": "2026-03-02"})
    assert page.status_code == 200, page.text
    part = page.text.split('id="people-heading"', 1)[1].split("</section>", 1)[0]
    assert part.startswith(">Who has been seen in the logs from 2 Mar 2026</h2>")
    listed = [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", r)).split())
              for r in re.findall(r"<tr>(.*?)</tr>", part, flags=re.S)[1:]]  # fmt: skip
    # Each person once, as their latest entry in any log says, with the logs that have them.
    assert listed == [
        "cm-riverside-ana Mon 02 Mar 09:07 Supervisor intake, careplan, referral",
        "an-riverside-al Mon 02 Mar 09:04 Analyst careplan",
        "sv-riverside-sam Mon 02 Mar 09:02 Supervisor intake",
    ]
    assert 'href="/supervisor/activity?person=an-riverside-al&amp;first_day=2026-03-02"' in part
    assert "Its people are not in this list." in part and "type an id to find anyone else" in part
    for service in SERVICES:  # each asked for its latest people of those days
        asked = dict(services.called(service, people)[-1].url.params)
        assert asked == {"since": "2026-03-02T00:00:00+00:00", "offset": "0", "limit": "200"}
    # The form offers the care managers with a caseload and everyone seen.
    offered = re.findall(r'<option value="([^"]+)">', page.text)
    assert offered == ["an-riverside-al", "cm-riverside-ana", "cm-riverside-ben", "sv-riverside-sam"]
    # Nobody seen: said so.
    for service in SERVICES:
        services.page(service, people, [])
    none = await client.get("/supervisor/activity")
    assert "Nobody of your agency has been shown or refused anything." in none.text
