"""Who has seen a patient's data: the five services' audit logs as one list, oldest first, for the roles
with ``audit:read``; a page at a time across all five; a log that cannot be read named in its place."""

import csv
import html
import io
import re
import uuid
from datetime import timedelta

import httpx
import pytest

from services.workspace.tests.conftest import ANN, NOW
from workspace import access
from workspace.access import COLUMNS, SERVICES, merged
from workspace.client import Listing
from workspace.config import WorkspaceSettings

PID = "44444444-4444-4444-8444-444444444444"
SUPERVISOR = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}
PATIENT = {"id": PID, "given_name": "Ann", "family_name": "Lee"}
PATIENT_ROUTE = "GET /v1/patients/{patient_id}"
PLAN_ID = "55555555-5555-4555-8555-555555555555"


@pytest.fixture
def settings() -> WorkspaceSettings:
    return WorkspaceSettings(page_size=3)


def entry(minute: int, **changes) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "recorded_at": (NOW + timedelta(minutes=minute)).isoformat(),
        "action": "R",
        "outcome": "allowed",
        "outcome_detail": None,
        "subject": "cm-riverside-ana",
        "role": "care-manager",
        "agency_id": "agency-riverside",
        "network_address": "10.0.0.7",
        "source": "x",
        "patient_id": PID,
        "patient_agency_id": "agency-riverside",
        "what": "patient",
        "entity_id": PID,
        "route": "GET /v1/patients/{patient_id}",
        **changes,
    }


def logs(services, kept: dict[str, list[dict]], route: str = "/v1/audit", most: int = 200) -> None:
    """Each service's log as its audit route pages it (offset, limit up to ``most``), oldest first or
    newest."""
    for service in SERVICES:
        services.answer_with(service, "GET", route, _paged(kept.get(service, []), most))


def _paged(items: list[dict], most: int):
    def respond(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), min(most, int(request.url.params["limit"]))
        ordered = items[::-1] if request.url.params["order"] == "newest" else items
        more = offset + limit < len(items)
        page = {"items": ordered[offset : offset + limit], "limit": limit, "offset": offset}
        return httpx.Response(200, json={**page, "next_offset": offset + limit if more else None})

    return respond


def rows(page: httpx.Response) -> list[str]:
    part = page.text.split('id="entries-heading"', 1)[1].split("</section>", 1)[0]
    found = re.findall(r"<tr>(.*?)</tr>", part, flags=re.S)[1:]  # the header row aside
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in found]


def test_the_oldest_entries_of_every_log_come_first_and_each_log_goes_on_from_what_was_shown():
    a = Listing([entry(1), entry(4), entry(5)], offset=0, limit=3, next_offset=3)
    b = Listing([entry(2), entry(3)], offset=10, limit=3)
    c = Listing([], offset=0, limit=3)
    page = merged({"intake": a, "careplan": b, "record": c}, 3)
    assert [(e["service"], e["recorded_at"][11:16]) for e in page.entries] == [
        ("intake", "09:01"),
        ("careplan", "09:02"),
        ("careplan", "09:03"),
    ]
    assert page.next == {"intake": 1, "careplan": 12, "record": 0}
    last = merged({"intake": Listing([entry(1)], 5, 3), "careplan": Listing([], 2, 3)}, 3)
    assert last.next is None  # every log shown to its end
    a, b = Listing([entry(5), entry(4), entry(1)], 0, 3, 3), Listing([entry(3), entry(2)], 0, 3)
    latest = merged({"intake": a, "careplan": b}, 3, newest=True)
    assert [e["recorded_at"][11:16] for e in latest.entries] == ["09:05", "09:04", "09:03"]
    assert latest.next == {"intake": 2, "careplan": 1}


async def test_a_supervisor_sees_every_services_entries_oldest_first_a_page_at_a_time(
    client, services, sign_in
):
    services.answer("intake", "GET", f"/v1/patients/{PID}", body=PATIENT)
    refused = entry(2, outcome="denied", outcome_detail="plan:read", subject="pr-x", role="provider",
                    agency_id="agency-community-health", patient_agency_id=None)  # fmt: skip
    logs(
        services,
        {
            "intake": [entry(1), entry(5)],
            "careplan": [
                refused,
                entry(3, what="plan", entity_id=PLAN_ID, route="GET /v1/patients/{patient_id}/care-plan"),
            ],
            "record": [entry(4, what="record", subject="sv-riverside-sam", role="supervisor")],
        },
    )
    await sign_in(client, SUPERVISOR)
    latest = await client.get(f"/patients/{PID}/access")  # newest first, as a log is read
    assert latest.status_code == 200, latest.text
    assert "For <strong>Ann Lee</strong>" in latest.text
    assert [r[:16] for r in rows(latest)] == ["Mon 02 Mar 09:05", "Mon 02 Mar 09:04", "Mon 02 Mar 09:03"]
    assert {dict(r.url.params)["order"] for r in services.requests if "/v1/audit" in r.url.path} == {"newest"}
    assert (
        f'href="/patients/{PID}/access?intake=1&amp;careplan=1&amp;record=1" rel="next">Earlier entries'
        in (latest.text)
    )
    page = await client.get(f"/patients/{PID}/access", params={"order": "oldest"})
    assert rows(page) == [
        f"Mon 02 Mar 09:01 cm-riverside-ana (Care manager) Yours intake Patient {PATIENT_ROUTE} Shown",
        f"Mon 02 Mar 09:02 pr-x (Provider) agency-community-health careplan Patient {PATIENT_ROUTE}"
        " Refused (plan:read)",
        "Mon 02 Mar 09:03 cm-riverside-ana (Care manager) Yours careplan Plan 55555555"
        " GET /v1/patients/{patient_id}/care-plan Shown",
    ]
    # Every service was asked for its first page of this patient's entries.
    for service in SERVICES:
        asked = services.called(service, "/v1/audit")[-1]
        assert dict(asked.url.params) == {"patient_id": PID, "offset": "0", "limit": "3", "order": "oldest"}
    later = html.unescape(re.search(r'href="([^"]+)" rel="next">Later entries', page.text).group(1))
    assert later == f"/patients/{PID}/access?intake=1&careplan=2&order=oldest"
    following = await client.get(later)
    assert rows(following)[0].startswith("Mon 02 Mar 09:04 sv-riverside-sam (Supervisor) Yours record Record")
    assert rows(following)[1].startswith("Mon 02 Mar 09:05 cm-riverside-ana")
    assert 'rel="next"' not in following.text
    assert f'href="/patients/{PID}/access?order=oldest">Back to the first entries' in following.text
    asked = {s: dict(services.called(s, "/v1/audit")[-1].url.params)["offset"] for s in SERVICES}
    assert asked == {"intake": "1", "careplan": "2", "referral": "0", "followup": "0", "record": "0"}


async def test_the_disclosures_view_asks_for_the_accounting_of_disclosures(client, services, sign_in):
    services.answer("intake", "GET", f"/v1/patients/{PID}", body=PATIENT)
    logs(services, {}, route="/v1/audit/disclosures")
    await sign_in(client, SUPERVISOR)
    page = await client.get(f"/patients/{PID}/access", params={"view": "disclosures"})
    assert page.status_code == 200, page.text
    assert "Nobody outside your agency has been shown this patient's data." in page.text
    assert all(services.called(s, "/v1/audit/disclosures") for s in SERVICES)
    assert not any(services.called(s, "/v1/audit") for s in SERVICES)
    bad = await client.get(f"/patients/{PID}/access", params={"view": "everything", "intake": "-1"})
    assert bad.status_code == 400  # the workspace's answer to a bad address


async def test_a_log_that_cannot_be_read_is_named_and_the_others_are_still_shown(client, services, sign_in):
    services.answer("intake", "GET", f"/v1/patients/{PID}", body=PATIENT)
    logs(services, {"intake": [entry(1)], "careplan": [entry(2)]})
    services.answer("careplan", "GET", "/v1/audit", 404, {"detail": "no such patient in your agency"})
    services.answer("record", "GET", "/v1/audit", 503, {"detail": "the audit log is unavailable"})
    await sign_in(client, SUPERVISOR)
    page = await client.get(f"/patients/{PID}/access")
    assert page.status_code == 200, page.text
    [only] = rows(page)  # careplan has never heard of the patient: nothing from there, and no alarm
    assert only.startswith("Mon 02 Mar 09:01") and "intake" in only
    assert re.search(
        r'role="alert">[^<]*record[^<]*Its entries are not in this list\.', page.text, flags=re.I
    )
    assert "careplan" not in page.text.split('role="alert"', 1)[1].split("</p>", 1)[0].lower()
    # Further on, the log that failed is asked again from where it was, not from its start.
    logs(services, {"intake": [entry(m) for m in range(1, 6)]})
    services.answer("record", "GET", "/v1/audit", 503, {"detail": "the audit log is unavailable"})
    further = await client.get(f"/patients/{PID}/access", params={"intake": "1", "record": "2"})
    later = re.search(r'href="([^"]+)" rel="next"', further.text).group(1)
    assert "record=2" in html.unescape(later) and "intake=4" in html.unescape(later)


async def test_another_agencys_patient_is_not_found_and_a_care_manager_may_not_look(
    client, services, sign_in, open_browser, make_app, settings
):
    logs(services, {})
    services.answer("intake", "GET", "/v1/audit", 404, {"detail": "no such patient in your agency"})
    await sign_in(client, SUPERVISOR)
    page = await client.get(f"/patients/{PID}/access")
    assert page.status_code == 404 and "There is no such patient" in page.text
    services.requests.clear()
    async with open_browser(make_app(settings)) as care_manager:
        await sign_in(care_manager)  # Ana
        refused = await care_manager.get(f"/patients/{PID}/access")
    assert refused.status_code == 403 and "not available to your role" in refused.text
    assert not [r for r in services.requests if "/v1/audit" in r.url.path]


async def test_the_patient_page_offers_it_to_a_supervisor_only(
    client, services, sign_in, open_browser, make_app, settings
):
    services.answer("intake", "GET", f"/v1/patients/{PID}", body={**ANN, "id": PID})
    link = f'<a href="/patients/{PID}/access">Who has seen this patient\'s data</a>'
    await sign_in(client, SUPERVISOR)
    page = await client.get(f"/patients/{PID}")
    assert page.status_code == 200, page.text
    assert link in page.text
    async with open_browser(make_app(settings)) as care_manager:
        await sign_in(care_manager)
        theirs = await care_manager.get(f"/patients/{PID}")
    assert theirs.status_code == 200 and f"/patients/{PID}/access" not in theirs.text


async def test_the_trail_downloads_whole_as_csv_oldest_first_or_not_at_all(client, services, sign_in):
    services.answer("intake", "GET", f"/v1/patients/{PID}", body=PATIENT)
    formula = entry(2, subject="=HYPERLINK(1)", agency_id="agency-community-health")
    logs(services, {"intake": [entry(m) for m in (1, 3, 5, 6, 7)], "record": [formula]}, most=2)
    await sign_in(client, SUPERVISOR)
    page = await client.get(f"/patients/{PID}/access")
    assert f'href="/patients/{PID}/access.csv" download>Download the whole trail as CSV' in page.text
    got = await client.get(f"/patients/{PID}/access.csv")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "text/csv; charset=utf-8"
    assert got.headers["content-disposition"] == f'attachment; filename="patient-{PID}-audit.csv"'
    header, *lines = list(csv.reader(io.StringIO(got.text)))
    assert header[:6] == ["recorded_at", "service", "agency", "person", "role", "outcome"]
    # Every page of every log (two entries a page here), oldest first; a formula is quoted, not run.
    assert [(line[0][11:16], line[1]) for line in lines] == [
        ("09:01", "intake"), ("09:02", "record"), ("09:03", "intake"), ("09:05", "intake"),
        ("09:06", "intake"), ("09:07", "intake"),
    ]  # fmt: skip
    assert lines[1][3] == "'=HYPERLINK(1)" and lines[0][5:8] == ["shown", "", "patient"]
    asked = [dict(r.url.params) for r in services.called("intake", "/v1/audit")][-3:]
    assert [(a["offset"], a["limit"], a["order"]) for a in asked] == [(o, "200", "oldest") for o in "024"]
    # The accounting of disclosures, named so.
    logs(services, {}, route="/v1/audit/disclosures")
    disclosures = await client.get(f"/patients/{PID}/access.csv", params={"view": "disclosures"})
    assert disclosures.headers["content-disposition"].endswith('-disclosures.csv"')
    assert disclosures.text.strip() == ",".join(COLUMNS)
    # A log that cannot be read: a page saying so, never part of a file.
    services.answer("careplan", "GET", "/v1/audit", 503, {"detail": "the audit log is unavailable"})
    failed = await client.get(f"/patients/{PID}/access.csv")
    assert failed.status_code == 503 and failed.headers["content-type"].startswith("text/html")


async def test_a_care_manager_may_not_download_the_trail(client, services, sign_in):
    logs(services, {"intake": [entry(1)]})
    await sign_in(client)
    refused = await client.get(f"/patients/{PID}/access.csv")
    assert refused.status_code == 403 and not [r for r in services.requests if "/v1/audit" in r.url.path]


async def test_a_log_longer_than_a_download_holds_is_read_on_the_page(client, services, sign_in, monkeypatch):
    monkeypatch.setattr(access, "MOST_DOWNLOADED", 3)
    logs(services, {"intake": [entry(m) for m in range(1, 6)]}, most=2)
    await sign_in(client, SUPERVISOR)
    refused = await client.get(f"/patients/{PID}/access.csv")
    assert refused.status_code == 422 and "read them on the page, or download fewer days." in refused.text
    assert refused.headers["content-type"].startswith("text/html")
