"""The supervisor's and provider's forms, clicked through in the browser against the real services: a
reassignment, a prospect recruited from a network gap through to activation (the waiting patient is
referred to it), and a provider working a referral from acceptance to an outcome."""

from __future__ import annotations

from typing import Any

import pytest

from careloop_shared.testing import eventually
from tests.browser.cases import HRSN_FOOD, SAFETY_NEVER, Case, referred
from tests.browser.conftest import Person, Platform

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HOUSING_WORRY = {
    "instrument": "ahc-hrsn",
    "answers": {
        "71802-3": "LA31994-9",  # a steady place today, but worried about losing it
        "96778-6": ["LA9-3"],
        "88122-7": "LA28398-8",
        "88123-5": "LA28398-8",
        "93030-5": "LA32-8",
        "96779-4": "LA32-8",
        **SAFETY_NEVER,
    },
}


async def _register(platform: Platform, who: str, patient: dict[str, Any]) -> str:
    async with platform.api(who) as api:
        created = await api.post(f"{platform.urls['intake']}/v1/patients", json=patient)
        assert created.status_code == 201, created.text
        patient_id: str = created.json()["id"]
        return patient_id


async def test_a_supervisor_reassigns_a_patient_to_another_care_manager(platform, signed_in, screenshot):
    patient = {"given_name": "Rhea", "family_name": "Reassigned", "birth_date": "1980-01-01"}
    patient["phone"] = "+1 555 0181"
    patient_id = await _register(platform, "cm-riverside-ana", patient)
    page = await signed_in("sv-riverside-sam")
    await page.goto(f"/supervisor/patients/{patient_id}/care-manager")
    assert await page.get_by_text("Rhea Reassigned").is_visible()
    await page.get_by_label("New care manager").fill("cm-riverside-ben")
    await page.get_by_label("Why").select_option("staff-leave")
    await screenshot(page, "reassign")
    await page.get_by_role("button", name="Reassign").click()
    await page.wait_for_url("**/supervisor?notice=reassigned")
    assert await page.get_by_text("The patient has a new care manager").is_visible()
    async with platform.api("sv-riverside-sam") as api:
        shown = await api.get(f"{platform.urls['intake']}/v1/patients/{patient_id}")
    assert shown.json()["care_manager_id"] == "cm-riverside-ben"

    async def bens_caseload() -> bool:
        await page.goto("/supervisor")
        return "cm-riverside-ben" in await page.content()

    await eventually(bens_caseload, timeout=30, interval=0.5, what="Ben's caseload on the team page")


async def test_a_prospect_recruited_for_a_network_gap_is_activated_and_the_waiting_patient_referred(
    platform, signed_in, screenshot, accessibility
):
    patient = {
        "given_name": "Lou",
        "family_name": "Lakeside",
        "birth_date": "1975-05-05",
        "phone": "+1 555 0175",
        "postal_code": "60614",  # no housing program serves it: a network gap
    }
    patient_id = await _register(platform, "cm-riverside-ana", patient)
    async with platform.api("cm-riverside-ana") as api:
        intake = platform.urls["intake"]
        consent = {"purpose": "referral", "program_categories": ["housing-assistance"]}
        consented = await api.post(f"{intake}/v1/patients/{patient_id}/consents", json=consent)
        assert consented.status_code == 201, consented.text
        assessed = await api.post(f"{intake}/v1/patients/{patient_id}/assessments", json=HOUSING_WORRY)
        assert assessed.status_code == 202, assessed.text

    page = await signed_in("sv-riverside-sam")

    async def gap_shown() -> bool:
        await page.goto("/supervisor/network")
        return "Housing instability" in await page.content()

    await eventually(gap_shown, timeout=45, interval=0.5, what="the housing gap in the report")
    await screenshot(page, "network-gap")

    await page.get_by_role("link", name="Add a prospective provider").click()
    await page.get_by_label("Provider's name").fill("Lakeside Housing")
    await page.get_by_label("Id", exact=True).fill("org-lakeside-housing")
    await page.get_by_label("Program categories it would serve").fill("housing-assistance")
    await page.get_by_label("Needs it would address (optional)").fill("housing-instability")
    await page.get_by_label("Agency that will answer its referrals").fill("agency-lakeside-housing")
    await page.get_by_role("button", name="Add to the pipeline").click()
    await page.wait_for_url("**/supervisor/network?notice=prospect-added")

    for status in ("Contacted", "Onboarding"):
        await page.get_by_text("Move Lakeside Housing").click()
        if status == "Contacted":  # the pipeline with a move form open
            await screenshot(page, "pipeline")
            await accessibility(page, "supervisor-pipeline")
        await page.get_by_label("New status").select_option(label=status)
        await page.get_by_role("button", name="Move", exact=True).click()
        await page.wait_for_url("**/supervisor/network?notice=prospect-moved")
    await page.get_by_text("Move Lakeside Housing").click()
    await page.get_by_label("New status").select_option(label="Active: in the directory")
    await page.get_by_label("Note for the pipeline's history (optional)").fill("Contract signed.")
    await page.get_by_role("button", name="Move", exact=True).click()
    await page.get_by_role("heading", name="Lakeside Housing is active").wait_for()
    text = await page.inner_text("main")
    assert "org-lakeside-housing-housing-assistance" in text
    assert "1 referral was made to it" in text
    assert "Contract signed." in text
    await screenshot(page, "prospect-active")

    provider = await signed_in(Person("pr-lakeside-lee", "agency-lakeside-housing", "provider"))
    await provider.goto("/inbox")
    assert "Lou Lakeside" in await provider.inner_text("main")


async def test_a_provider_accepts_holds_resumes_and_completes_a_referral_with_an_outcome(
    platform, signed_in, screenshot
):
    patient = {
        "given_name": "Faye",
        "family_name": "Foodbank",
        "birth_date": "1990-10-10",
        "contact_preference": "phone",
        "phone": "+1 555 0190",
    }
    case: Case = await referred(platform, "cm-harbor-eli", patient, "food-assistance", HRSN_FOOD)
    page = await signed_in("pr-food-bank-liz")
    await page.goto(f"/inbox/referrals/{case.referral_id}")
    assert "Faye Foodbank" in await page.inner_text("main")

    async def answer(heading: str, fill: dict[str, str] | None = None, notice: str = "") -> None:
        form = page.locator("section.action", has=page.get_by_role("heading", name=heading, exact=True))
        for label, value in (fill or {}).items():
            field = form.get_by_label(label, exact=True)
            if await field.evaluate("e => e.tagName") == "SELECT":
                await field.select_option(label=value)
            else:
                await field.fill(value)
        await form.get_by_role("button", name=heading, exact=True).click()
        await page.wait_for_url(f"**/inbox/referrals/{case.referral_id}?notice={notice}")

    note = "Note for the referring agency (optional)"
    await answer("Accept", {note: "We will call her."}, "referral-accepted")
    await answer("Put on hold", {"Why": "On the waitlist"}, "referral-on-hold")
    await answer("Resume work", None, "referral-in-progress")
    heading = page.get_by_role("heading", name="Complete: the service was delivered")
    completion = page.locator("section.action", has=heading)
    await completion.get_by_label("Enrollment").select_option("enrolled")
    await screenshot(page, "complete")
    await completion.get_by_role("button", name="Complete: the service was delivered").click()
    await page.wait_for_url(f"**/inbox/referrals/{case.referral_id}?notice=referral-completed")
    main = await page.inner_text("main")
    assert "Service delivered; Enrolled" in main
    assert "The patient's details are not available to your agency" in main  # closed: no longer shown
    async with platform.api("cm-harbor-eli") as api:
        shown = await api.get(f"{platform.urls['referral']}/v1/referrals/{case.referral_id}")
    history = [(h["to_status"], h["reason"]) for h in shown.json()["history"]]
    moves = [("accepted", None), ("on-hold", "waitlist"), ("in-progress", None), ("completed", None)]
    assert history[-4:] == moves
    assert shown.json()["outcome"]["enrollment_status"] == "enrolled"
    await screenshot(page, "completed")


async def _text_until(page: Any, url: str, wanted: Any, what: str) -> str:
    """The page's main text once ``wanted(text)`` holds, loading it again until then (45 s)."""

    async def shown() -> str | None:
        await page.goto(url)
        text: str = await page.inner_text("main")
        return text if wanted(text) else None

    found: str = await eventually(shown, timeout=45, interval=0.5, what=what)
    return found


async def test_a_service_the_provider_could_not_provide_gives_the_care_manager_a_task_to_refer_again(
    platform, signed_in, screenshot, accessibility
):
    patient = {
        "given_name": "Nell",
        "family_name": "Notserved",
        "birth_date": "1970-07-07",
        "contact_preference": "phone",
        "phone": "+1 555 0191",
    }
    case: Case = await referred(platform, "cm-harbor-eli", patient, "food-assistance", HRSN_FOOD)
    provider = await signed_in("pr-food-bank-liz")
    await provider.goto(f"/inbox/referrals/{case.referral_id}")
    accept = provider.locator(
        "section.action", has=provider.get_by_role("heading", name="Accept", exact=True)
    )
    await accept.get_by_role("button", name="Accept", exact=True).click()
    await provider.wait_for_url(f"**/inbox/referrals/{case.referral_id}?notice=referral-accepted")
    closing = "Close: the service was not provided"
    form = provider.locator("section.action", has=provider.get_by_role("heading", name=closing))
    await form.get_by_label("Why not").select_option(label="Unable to contact the patient")
    await form.get_by_label("Note for the referring agency (optional)").fill("Three calls, no answer.")
    await screenshot(provider, "not-provided")
    await accessibility(provider, "inbox-referral-not-provided")
    await form.get_by_role("button", name=closing).click()
    await provider.wait_for_url(f"**/inbox/referrals/{case.referral_id}?notice=referral-failed")
    assert "the service was not provided" in await provider.inner_text("main")
    async with platform.api("cm-harbor-eli") as api:
        shown = await api.get(f"{platform.urls['referral']}/v1/referrals/{case.referral_id}")
    assert (shown.json()["status"], shown.json()["status_reason"]) == ("failed", "unable-to-contact")

    # The referring care manager is given the work of referring again, and the plan shows the
    # intervention stopped rather than done.
    page = await signed_in("cm-harbor-eli")
    text = await _text_until(
        page,
        f"/patients/{case.patient_id}",
        lambda t: "Re refer" in t and "Stopped" in t,
        "the re-refer task and the stopped intervention",
    )
    assert "Failed" in text and "Unable to contact" in text
    await screenshot(page, "re-refer")


async def test_a_care_manager_withdraws_a_referral_the_patient_no_longer_needs(
    platform, signed_in, screenshot, accessibility
):
    patient = {
        "given_name": "Wes",
        "family_name": "Withdrawn",
        "birth_date": "1966-06-06",
        "contact_preference": "phone",
        "phone": "+1 555 0192",
    }
    case: Case = await referred(platform, "cm-harbor-eli", patient, "food-assistance", HRSN_FOOD)
    page = await signed_in("cm-harbor-eli")
    await page.goto(f"/patients/{case.patient_id}")
    await page.get_by_role("link", name="Withdraw the referral to").first.click()
    await page.wait_for_url(f"**/patients/{case.patient_id}/referrals/{case.referral_id}/withdraw")
    assert "Wes Withdrawn" in await page.inner_text("main")
    await page.get_by_label("Why it is withdrawn").select_option(label="The need was resolved")
    await page.get_by_label("Note for the receiving agency (optional)").fill("Family helps with food now.")
    await screenshot(page, "withdraw")
    await accessibility(page, "referral-withdraw")
    await page.get_by_role("button", name="Withdraw the referral").click()
    await page.wait_for_url(f"**/patients/{case.patient_id}?notice=referral-withdrawn*")
    referrals = await page.inner_text("#referrals")
    assert "Cancelled" in referrals and "need resolved" in referrals
    assert "Withdraw" not in referrals  # closed: nothing more to withdraw
    async with platform.api("cm-harbor-eli") as api:
        shown = await api.get(f"{platform.urls['referral']}/v1/referrals/{case.referral_id}")
    last = shown.json()["history"][-1]
    assert (last["to_status"], last["reason"], last["by_party"]) == (
        "cancelled",
        "need-resolved",
        "requester",
    )

    # The receiving agency sees it withdrawn, with the note, and no longer the patient's details.
    provider = await signed_in("pr-food-bank-liz")
    await provider.goto(f"/inbox/referrals/{case.referral_id}")
    main = await provider.inner_text("main")
    assert "Cancelled (Need resolved)" in main and "Family helps with food now." in main
    assert "Wes Withdrawn" not in main


async def test_a_provider_says_its_program_has_a_waitlist_and_the_directory_shows_it(
    platform, signed_in, screenshot, accessibility
):
    service = f"{platform.urls['referral']}/v1/services/prg-food-bank-central"
    page = await signed_in("pr-food-bank-liz")
    await page.get_by_role("link", name="Your programs").click()
    await page.wait_for_url("**/programs")
    program = page.locator("article.card", has_text="prg-food-bank-central")
    try:
        await program.get_by_label("Takes referrals now?").select_option(label="Waitlist")
        await program.get_by_label("Notes for care managers (optional)").fill("About three weeks.")
        await screenshot(page, "programs")
        await accessibility(page, "programs")
        await program.get_by_role("button", name="Save the capacity of").click()
        await page.wait_for_url("**/programs?notice=capacity-changed*")
        assert "Waitlist" in await page.locator("article.card", has_text="prg-food-bank-central").inner_text()
        async with platform.api("cm-harbor-eli") as api:
            shown = (await api.get(service)).json()
        assert shown["capacity"] == {"status": "waitlist", "notes": "About three weeks."}
        assert shown["capacity_changed_by"] == "pr-food-bank-liz"
    finally:  # the other tests refer patients to it
        async with platform.api("pr-food-bank-liz") as api:
            again = await api.post(f"{service}/capacity", json={"status": "capacity"})
            assert again.status_code == 200, again.text
