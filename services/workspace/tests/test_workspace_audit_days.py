"""The audit lists of some days only: a patient's trail and a person's activity, on the page and as CSV,
ask each service for the entries from the first day's midnight to the midnight after the last, in the
workspace's time zone; every link carries the days on; days that are not days are said in the form, and
nothing is read for them."""

import html
import re

import pytest

from services.workspace.tests.conftest import ANN
from services.workspace.tests.test_workspace_access import PID, SUPERVISOR, entry, logs, rows
from workspace.access import SERVICES
from workspace.config import WorkspaceSettings

ACTIVITY = "/v1/audit/activity"
DAYS = {"first_day": "2026-03-01", "last_day": "2026-03-02"}
# Chicago's midnights those days (standard time, UTC-6), the second's next.
DAYS_QUERY = "first_day=2026-03-01&last_day=2026-03-02"
ASKED = {"since": "2026-03-01T00:00:00-06:00", "until": "2026-03-03T00:00:00-06:00"}


@pytest.fixture
def settings() -> WorkspaceSettings:
    return WorkspaceSettings(page_size=3, time_zone="America/Chicago")


def _link(page, words: str) -> str:
    return html.unescape(re.search(rf'href="([^"]+)"[^>]*>{words}', page.text).group(1))


def _each_asked(services, route: str, **params: str) -> None:
    """Every service was last asked for its log at ``route`` with ``params``, and the days' bounds."""
    for service in SERVICES:
        assert dict(services.called(service, route)[-1].url.params) == {**params, **ASKED}, service


def _audit_calls(services) -> list:
    return [r for r in services.requests if r.url.path.startswith("/v1/audit")]


async def test_a_persons_activity_of_some_days_is_asked_for_those_days_and_the_links_keep_them(
    client, services, sign_in
):
    logs(services, {"intake": [entry(1), entry(2)], "record": [entry(3), entry(4)]}, route=ACTIVITY)
    services.answer(
        "intake", "GET", "/v1/patients", body={"items": [{**ANN, "id": PID}], "next_offset": None}
    )
    await sign_in(client, SUPERVISOR)
    page = await client.get("/supervisor/activity", params={"person": "cm-riverside-ana", **DAYS})
    assert page.status_code == 200, page.text
    assert "What cm-riverside-ana has seen, from 1 Mar 2026 to 2 Mar 2026" in page.text
    assert 'value="2026-03-01"' in page.text and 'value="2026-03-02"' in page.text  # the form keeps them
    _each_asked(services, ACTIVITY, subject="cm-riverside-ana", order="newest", offset="0", limit="3")
    assert len(rows(page)) == 3
    days = "first_day=2026-03-01&last_day=2026-03-02"
    assert (
        _link(page, "Earlier entries")
        == f"/supervisor/activity?person=cm-riverside-ana&intake=1&record=2&{days}"
    )
    assert _link(page, "Oldest first") == f"/supervisor/activity?person=cm-riverside-ana&order=oldest&{days}"
    csv_url = _link(page, "Download everything")
    assert csv_url == f"/supervisor/activity.csv?person=cm-riverside-ana&{days}"
    assert "Download everything cm-riverside-ana has seen from 1 Mar 2026 to 2 Mar 2026 as CSV" in page.text
    download = await client.get(csv_url)
    assert download.status_code == 200 and download.text.count("\n") == 5  # the header and four entries
    _each_asked(services, ACTIVITY, subject="cm-riverside-ana", order="oldest", offset="0", limit="200")
    # One day, or only one end.
    one = await client.get("/supervisor/activity", params={"person": "x", "first_day": "2026-03-01",
                                                           "last_day": "2026-03-01"})  # fmt: skip
    assert "What x has seen, on 1 Mar 2026" in one.text
    since = await client.get("/supervisor/activity", params={"person": "x", "first_day": "2026-03-01"})
    assert "What x has seen, from 1 Mar 2026" in since.text
    assert dict(services.called("careplan", ACTIVITY)[-1].url.params)["since"] == ASKED["since"]
    assert "until" not in dict(services.called("careplan", ACTIVITY)[-1].url.params)
    logs(services, {}, route=ACTIVITY)
    until = await client.get("/supervisor/activity", params={"person": "x", "last_day": "2026-03-02"})
    assert "What x has seen, up to 2 Mar 2026" in until.text and "anything on those days." in until.text
    assert "since" not in dict(services.called("careplan", ACTIVITY)[-1].url.params)


async def test_a_patients_trail_and_disclosures_of_some_days_keep_them_in_every_link(
    client, services, sign_in
):
    logs(services, {"intake": [entry(1), entry(2)], "careplan": [entry(3), entry(4)]})
    logs(services, {}, route="/v1/audit/disclosures")
    await sign_in(client, SUPERVISOR)
    page = await client.get(f"/patients/{PID}/access", params=DAYS)
    assert page.status_code == 200, page.text
    assert "Entries from 1 Mar 2026 to 2 Mar 2026" in page.text and 'id="which-days"' in page.text
    _each_asked(services, "/v1/audit", patient_id=PID, order="newest", offset="0", limit="3")
    days = "first_day=2026-03-01&last_day=2026-03-02"
    assert _link(page, "Earlier entries") == f"/patients/{PID}/access?intake=1&careplan=2&{days}"
    assert _link(page, "Disclosures outside") == f"/patients/{PID}/access?view=disclosures&{days}"
    assert _link(page, "Download the whole trail") == f"/patients/{PID}/access.csv?{days}"
    disclosures = await client.get(_link(page, "Disclosures outside"))
    assert "shown this patient's data on those days." in disclosures.text
    assert 'name="view" value="disclosures"' in disclosures.text  # the form keeps the view
    assert (
        _link(disclosures, "Download the accounting") == f"/patients/{PID}/access.csv?view=disclosures&{days}"
    )
    download = await client.get(f"/patients/{PID}/access.csv", params={"view": "disclosures", **DAYS})
    assert download.status_code == 200, download.text
    _each_asked(services, "/v1/audit/disclosures", patient_id=PID, order="oldest", offset="0", limit="200")


@pytest.mark.parametrize(
    ("days", "said"),
    [
        ({"first_day": "2026-02-30"}, "There is no such day."),
        ({"last_day": "1899-12-31"}, "Give a day in the years 1900 to 2999."),
        ({"first_day": "2026-03-02", "last_day": "2026-03-01"}, "The last day is before the first."),
    ],
)
async def test_days_that_cannot_be_read_are_said_in_the_form_and_nothing_is_read(
    client, services, sign_in, days, said
):
    logs(services, {"intake": [entry(1)]})
    logs(services, {"intake": [entry(1)]}, route=ACTIVITY)
    await sign_in(client, SUPERVISOR)
    activity = await client.get("/supervisor/activity", params={"person": "cm-riverside-ana", **days})
    assert activity.status_code == 200 and said in activity.text and 'aria-invalid="true"' in activity.text
    assert 'id="entries-heading"' not in activity.text and not _audit_calls(services)
    trail = await client.get(f"/patients/{PID}/access", params=days)
    assert trail.status_code == 200 and said in trail.text and 'id="entries-heading"' not in trail.text
    # Only whether the patient is the agency's was asked, of intake.
    [asked] = _audit_calls(services)
    assert dict(asked.url.params) == {"patient_id": PID, "order": "newest", "offset": "0", "limit": "1"}
    for address, params in (
        ("/supervisor/activity.csv", {"person": "cm-riverside-ana"}),
        (f"/patients/{PID}/access.csv", {}),
    ):
        refused = await client.get(address, params={**params, **days})
        assert refused.status_code == 422 and said in refused.text
    assert len(_audit_calls(services)) == 1


async def test_a_day_not_written_as_a_date_is_a_bad_address_and_another_agencys_patient_is_not_found(
    client, services, sign_in
):
    services.answer("intake", "GET", "/v1/audit", 404, {"detail": "no such patient in your agency"})
    await sign_in(client, SUPERVISOR)
    gone = await client.get(f"/patients/{PID}/access", params={"first_day": "2026-02-30"})
    assert gone.status_code == 404
    for address in ("/supervisor/activity", f"/patients/{PID}/access", "/supervisor/activity.csv"):
        refused = await client.get(address, params={"person": "x", "first_day": "tomorrow"})
        assert refused.status_code == 400, (address, refused.text)


async def test_the_refused_attempts_alone_of_a_patient_and_of_a_person_on_the_page_and_as_csv(
    client, services, sign_in
):
    refused = entry(1, outcome="denied", outcome_detail="patient:read", role="analyst")
    logs(services, {"intake": [refused]})
    logs(services, {"intake": [refused]}, route=ACTIVITY)
    services.page("intake", "/v1/audit/people", [{"subject": "cm-riverside-ana", "role": "analyst",
                                                  "last_recorded_at": refused["recorded_at"]}])  # fmt: skip
    await sign_in(client, SUPERVISOR)
    page = await client.get(f"/patients/{PID}/access", params={"view": "refused", **DAYS})
    assert page.status_code == 200, page.text
    assert "Every attempt on this patient's data that was refused" in page.text
    assert 'aria-current="page">Refused attempts' in page.text
    _each_asked(
        services, "/v1/audit", patient_id=PID, outcome="denied", order="newest", offset="0", limit="3"
    )
    assert _link(page, "Oldest first") == f"/patients/{PID}/access?view=refused&order=oldest&{DAYS_QUERY}"
    assert (
        _link(page, "Download the refused attempts")
        == f"/patients/{PID}/access.csv?view=refused&{DAYS_QUERY}"
    )
    download = await client.get(_link(page, "Download the refused attempts"))
    assert f'filename="patient-{PID}-refusals.csv"' in download.headers["content-disposition"]
    _each_asked(
        services, "/v1/audit", patient_id=PID, outcome="denied", order="oldest", offset="0", limit="200"
    )
    # A person's refused attempts, and who has been refused.
    person = await client.get(
        "/supervisor/activity", params={"person": "cm-riverside-ana", "view": "refused", **DAYS}
    )
    assert "What cm-riverside-ana was refused, from 1 Mar 2026 to 2 Mar 2026" in person.text
    assert 'name="view" value="refused"' in person.text  # the form keeps the view
    _each_asked(
        services,
        ACTIVITY,
        subject="cm-riverside-ana",
        outcome="denied",
        order="newest",
        offset="0",
        limit="3",
    )
    assert _link(person, "Everything") == f"/supervisor/activity?person=cm-riverside-ana&{DAYS_QUERY}"
    csv_url = _link(person, "Download everything cm-riverside-ana was refused")
    assert csv_url == f"/supervisor/activity.csv?person=cm-riverside-ana&{DAYS_QUERY}&view=refused"
    download = await client.get(csv_url)
    assert 'filename="activity-cm-riverside-ana-refusals.csv"' in download.headers["content-disposition"]
    people = await client.get("/supervisor/activity", params={"view": "refused"})
    assert "Who has been refused" in people.text and "Last refused" in people.text
    asked = dict(services.called("intake", "/v1/audit/people")[-1].url.params)
    assert asked == {"outcome": "denied", "offset": "0", "limit": "200"}
    assert 'href="/supervisor/activity?person=cm-riverside-ana&amp;view=refused"' in people.text
