"""axe-core finds no serious or critical violation on the main pages, in the browser, with real data:
sign-in, My day, the supervisor's pages and the provider's inbox (on a desktop and a phone-sized screen).
Each page's screenshot is written to .artifacts/screenshots/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from careloop_shared.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


async def _when_shown(page, path: str, text: str) -> None:
    async def shown() -> bool:
        await page.goto(path)
        return text in await page.content()

    await eventually(shown, timeout=45, interval=0.5, what=f"{text} at {path}")


async def test_the_sign_in_page(browser, platform, screenshot, accessibility):
    context = await browser.new_context(base_url=platform.workspace_url)
    try:
        page = await context.new_page()
        await page.goto("/signin")
        assert await page.get_by_role("heading", name="Sign in", level=1).is_visible()
        await screenshot(page, "sign-in")
        await accessibility(page, "sign-in")
    finally:
        await context.close()


async def test_my_day(cases, signed_in, screenshot, accessibility):
    page = await signed_in("cm-riverside-ana")
    await _when_shown(page, "/", cases["rita"].patient_id)
    await screenshot(page, "my-day")
    await accessibility(page, "my-day")


async def test_the_supervisors_pages(cases, signed_in, screenshot, accessibility):
    page = await signed_in("sv-riverside-sam")
    await _when_shown(page, "/supervisor", "cm-riverside-ana")
    await screenshot(page, "team")
    await accessibility(page, "supervisor-team")
    await page.get_by_role("link", name="Network gaps and recruitment").click()
    await screenshot(page, "network")
    await accessibility(page, "supervisor-network")
    await page.get_by_role("link", name="Add a prospective provider").click()
    await page.get_by_label("Provider's name").fill("City Rides")
    await page.get_by_label("Id", exact=True).fill("City Rides")  # not a directory id: refused, said why
    await page.get_by_label("Program categories it would serve").fill("transportation")
    await page.get_by_role("button", name="Add to the pipeline").click()
    assert await page.get_by_text("An id of 2 to 80 lowercase letters").is_visible()
    await screenshot(page, "prospect-form-errors")
    await accessibility(page, "supervisor-prospect-form")
    # How the agency's referrals went: the cases' referrals are the agency's, made today.
    await page.goto("/supervisor")
    await page.get_by_role("link", name="How referrals went").click()
    await page.wait_for_url("**/supervisor/referrals")
    heading = await page.get_by_role("heading", level=2).first.inner_text()
    assert "made from" in heading and not heading.startswith("0 "), heading
    await screenshot(page, "referral-measures")
    await accessibility(page, "supervisor-referral-measures")


async def test_the_provider_inbox(cases, signed_in, screenshot, accessibility):
    rita = cases["rita"]
    page = await signed_in("pr-community-joe")
    await _when_shown(page, "/inbox", rita.name)
    await screenshot(page, "inbox")
    await accessibility(page, "inbox")
    await page.get_by_role("link", name="Depression").first.click()
    await page.wait_for_url(f"**/inbox/referrals/{rita.referral_id}")
    await screenshot(page, "referral")
    await accessibility(page, "inbox-referral")

    phone = await signed_in("pr-community-joe", viewport=PHONE)
    await phone.goto("/inbox")
    await screenshot(phone, "inbox-phone")
    await accessibility(phone, "inbox-phone")


async def test_the_erasure_form_refuses_without_a_reason_or_confirmation(
    cases, signed_in, screenshot, accessibility
):
    rita = cases["rita"]
    page = await signed_in("sv-riverside-sam")
    await page.goto(f"/patients/{rita.patient_id}")
    await page.get_by_role("link", name="Erase the identifying details").click()
    await page.wait_for_url(f"**/patients/{rita.patient_id}/erasure/new")
    await page.get_by_role("button", name="Erase for good").click()  # nothing entered: nothing sent
    assert await page.get_by_text("Tick the box to confirm: an erasure cannot be undone.").first.is_visible()
    await screenshot(page, "erasure-form-errors")
    await accessibility(page, "erasure-form")
    await page.goto(f"/patients/{rita.patient_id}")
    assert rita.name in await page.locator("h1").inner_text()  # her details are still there


async def test_who_has_seen_a_patients_data(cases, signed_in, screenshot, accessibility):
    rita = cases["rita"]
    page = await signed_in("sv-riverside-sam")
    await page.goto(f"/patients/{rita.patient_id}")
    await page.get_by_role("link", name="Who has seen this patient's data").click()
    await page.wait_for_url(f"**/patients/{rita.patient_id}/access")
    # Newest first: the supervisor's own look at her page just now.
    first = page.locator("#entries-heading + table tbody tr").first
    assert "sv-riverside-sam (Supervisor)" in await first.inner_text()
    await screenshot(page, "patient-access")
    await accessibility(page, "patient-access")
    # Oldest first: the care manager who registered and assessed her, reading her details in intake.
    await page.get_by_role("link", name="Oldest first").click()
    await page.wait_for_url(f"**/patients/{rita.patient_id}/access?order=oldest")
    assert await page.get_by_role("cell", name="cm-riverside-ana (Care manager)").first.is_visible()
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download the whole trail as CSV").click()
    download = await downloading.value
    assert download.suggested_filename == f"patient-{rita.patient_id}-audit.csv"
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    assert text.startswith("recorded_at,service,agency,person,role") and "cm-riverside-ana" in text
    await page.get_by_role("link", name="Disclosures outside your agency").click()
    await page.wait_for_url(f"**/patients/{rita.patient_id}/access?view=disclosures&order=oldest")
    await accessibility(page, "patient-disclosures")
    await page.get_by_role("link", name="Refused attempts").click()
    await page.wait_for_url(f"**/patients/{rita.patient_id}/access?view=refused&order=oldest")
    assert await page.get_by_text("Every attempt on this patient's data that was refused").is_visible()
    await accessibility(page, "patient-refusals")
    # Who that care manager is: what she has seen, in every service, newest first (Rita's referral).
    await page.goto(f"/patients/{rita.patient_id}/access?order=oldest")
    await page.get_by_role("link", name="cm-riverside-ana", exact=True).first.click()
    await page.wait_for_url("**/supervisor/activity?person=cm-riverside-ana")
    entries = page.locator("#entries-heading + .table-wrap tbody tr")
    assert await entries.count() > 0
    assert (
        await page.locator(f'#entries-heading + .table-wrap a[href="/patients/{rita.patient_id}"]').count()
        > 0
    )
    await screenshot(page, "supervisor-activity")
    await accessibility(page, "supervisor-activity")
    # Of some days only: the days around today keep her reads; days before the cases were made, none.
    today = datetime.now(UTC).date()
    for first, last, found in ((-1, 1, True), (-5, -3, False)):
        days = [(today + timedelta(days=n)).isoformat() for n in (first, last)]
        await page.get_by_label("From (optional)", exact=True).fill(days[0])
        await page.get_by_label("To (optional)", exact=True).fill(days[1])
        await page.get_by_role("button", name="Show").click()
        whose = "person=cm-riverside-ana"
        await page.wait_for_url(f"**/supervisor/activity?{whose}&first_day={days[0]}&last_day={days[1]}")
        assert (await entries.count() > 0) is found
        assert await page.get_by_text("anything on those days.").is_visible() is not found
    await screenshot(page, "supervisor-activity-of-some-days")
    await accessibility(page, "supervisor-activity-of-some-days")
    # Before anyone is chosen: who the logs have seen, each a link to what they have seen.
    await page.goto("/supervisor/activity")
    await page.locator("#people-heading + .table-wrap").get_by_role("link", name="cm-riverside-ana").click()
    await page.wait_for_url("**/supervisor/activity?person=cm-riverside-ana")
    assert await entries.count() > 0
    await page.goto("/supervisor/activity")
    await screenshot(page, "supervisor-people-seen")
    await accessibility(page, "supervisor-people-seen")
