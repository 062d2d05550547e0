"""How the agency's referrals went: referral's summary for the days chosen (by default the last 30, in
the workspace's time zone), said as counts and shares; bad days said in the form with nothing asked."""

import pytest

from workspace.config import WorkspaceSettings

SAM = {"agency": "agency-riverside", "role": "supervisor", "subject": "sv-riverside-sam"}
ANA = {"agency": "agency-riverside", "role": "care-manager", "subject": "cm-riverside-ana"}
SUMMARY = {
    "since": None,
    "until": None,
    "made": 12,
    "needs_referred": 10,
    "needs_served": 3,
    "waiting_for_consent": 1,
    "open": 4,
    "answer_overdue": 1,
    "outcome_overdue": 2,
    "accepted": 8,
    "rejected": 1,
    "delivered": 3,
    "not_delivered": 1,
    "cancelled": 2,
    "hours_to_accept_median": 5.25,
    "hours_to_deliver_median": 84.0,
}


@pytest.fixture
def settings() -> WorkspaceSettings:
    return WorkspaceSettings(time_zone="America/Chicago")


async def test_the_last_thirty_days_by_default_as_counts_and_shares(client, services, sign_in):
    services.answer("referral", "GET", "/v1/referrals/summary", body=SUMMARY)
    await sign_in(client, SAM)
    page = await client.get("/supervisor/referrals")
    assert page.status_code == 200
    [asked] = services.called("referral", "/v1/referrals/summary")
    # 2 March 2026, 09:00 UTC is 03:00 in Chicago: the 30 days from 1 February, Chicago's midnights.
    assert dict(asked.url.params) == {
        "since": "2026-02-01T00:00:00-06:00",
        "until": "2026-03-03T00:00:00-06:00",
    }
    assert "12 referrals made from 1 Feb 2026 to 2 Mar 2026" in page.text
    assert "1 not answered in time, 2 without an outcome in time" in page.text
    assert "7: 43% with the service delivered" in page.text  # 3 of the 7 closed
    assert "5.2 hours to accept" in page.text and "3.5 days" in page.text
    assert "For 10 needs in patients' plans, of which 3 served" in page.text  # re-routes count once
    assert '<a href="/supervisor/referrals" aria-current="page">How referrals went</a>' in page.text


async def test_days_chosen_are_asked_for_and_bad_ones_are_said_with_nothing_asked(client, services, sign_in):
    services.answer("referral", "GET", "/v1/referrals/summary", body={**SUMMARY, "made": 1})
    await sign_in(client, SAM)
    page = await client.get("/supervisor/referrals?first_day=2026-01-05&last_day=2026-01-05")
    assert "1 referral made on 5 Jan 2026" in page.text
    [asked] = services.called("referral", "/v1/referrals/summary")
    assert asked.url.params["until"] == "2026-01-06T00:00:00-06:00"
    bad = await client.get("/supervisor/referrals?first_day=2026-02-30")
    assert bad.status_code == 422
    assert "There is no such day." in bad.text
    assert len(services.called("referral", "/v1/referrals/summary")) == 1


async def test_a_care_manager_has_no_such_page_and_nothing_is_asked(client, services, sign_in):
    await sign_in(client, ANA)
    assert (await client.get("/supervisor/referrals")).status_code == 403
    assert services.called("referral", "/v1/referrals/summary") == []
