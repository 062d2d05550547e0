"""In a real browser, over the six services: a person of one agency never sees another agency's patient
anywhere in the workspace, and a provider sees nothing beyond the referrals sent to its agency.

The patients are the ``cases`` fixture's: Rita at agency-riverside, referred to the Community Health
Center, and Hugo at agency-harbor, referred to the Central Food Bank.
"""

from __future__ import annotations

from typing import Any

import pytest

from careloop_shared.testing import eventually
from tests.browser.cases import Case

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _shows_none_of(html: str, case: Case, where: str) -> None:
    for trace in case.traces:
        assert trace not in html, f"{where} shows {trace!r} of another agency's case"


async def _open(page: Any, path: str) -> tuple[int, str]:
    answer = await page.goto(path)
    return answer.status, await page.content()


async def _until_shown(page: Any, path: str, text: str, what: str) -> str:
    """The page once the services have caught up with the setup (events are asynchronous)."""

    async def shown() -> str | None:
        status, html = await _open(page, path)
        assert status == 200, (path, status)
        return html if text in html else None

    return await eventually(shown, timeout=45, interval=0.5, what=what)


async def test_care_managers_and_supervisors_never_see_another_agencys_patient(cases, signed_in):
    rita, hugo = cases["rita"], cases["hugo"]
    for who, own, other in (
        ("cm-riverside-ana", rita, hugo),
        ("sv-riverside-sam", rita, hugo),
        ("cm-harbor-eli", hugo, rita),
    ):
        page = await signed_in(who)
        if who.startswith("cm-"):
            my_day = await _until_shown(page, "/", own.patient_id, f"{who}'s patient on My day")
            _shows_none_of(my_day, other, f"{who}'s My day")
        status, html = await _open(page, f"/patients/{other.patient_id}")
        _shows_none_of(html.replace(other.patient_id, ""), other, f"{who}'s page for that id")
        assert status == 404, f"{who}: another agency's patient page should be 'not available', not {status}"
        for path in ("/supervisor", "/supervisor/network", "/inbox", f"/inbox/referrals/{other.referral_id}"):
            status, html = await _open(page, path)
            _shows_none_of(html, other, f"{who} at {path}")
        if who.startswith("sv-"):
            team = await _until_shown(page, "/supervisor", "cm-riverside-ana", "Ana's caseload")
            _shows_none_of(team, other, "the supervisor's team page")
            assert "cm-harbor-eli" not in team
            status, html = await _open(page, f"/supervisor/patients/{other.patient_id}/care-manager")
            assert status == 404
            _shows_none_of(html, other, "the reassignment page of another agency's patient")


async def test_a_provider_sees_only_the_referrals_sent_to_its_agency(cases, signed_in):
    rita, hugo = cases["rita"], cases["hugo"]
    for who, sent, not_sent in (("pr-community-joe", rita, hugo), ("pr-food-bank-liz", hugo, rita)):
        page = await signed_in(who)
        inbox = await _until_shown(page, "/inbox", sent.name, f"{sent.name} in {who}'s inbox")
        assert sent.phone in inbox  # the contact detail the patient's preference permits
        _shows_none_of(inbox, not_sent, f"{who}'s inbox")
        status, html = await _open(page, f"/inbox/referrals/{sent.referral_id}")
        assert status == 200 and sent.name in html
        status, html = await _open(page, f"/inbox/referrals/{not_sent.referral_id}")
        assert status == 404
        _shows_none_of(html, not_sent, f"{who}'s page for another agency's referral")
        for case in (sent, not_sent):  # no patient pages for a provider, not even of its referrals
            status, html = await _open(page, f"/patients/{case.patient_id}")
            assert case.name not in html and case.phone not in html
            assert status in (403, 404), f"{who}: a patient page should be 'not available', not {status}"
        await page.goto("/")
        assert page.url.endswith("/inbox"), "a provider's day starts in the referral inbox"
        for path in ("/supervisor", "/supervisor/network"):
            status, html = await _open(page, path)
            _shows_none_of(html, not_sent, f"{who} at {path}")
            assert sent.name not in html and sent.patient_id not in html, f"{who} at {path}"
        assert (await _open(page, "/supervisor"))[0] == 403
