"""A care manager's day and a provider's answer, in a real browser against the six services.

A care manager registers a patient, finds her again by name and birth date, changes her phone number,
records consent, a PHQ-9 with item 9 above 0 and an AHC HRSN with a transport need; the safety check is
at the top of My day; the plan appears on the patient page, and she records the safety evaluation
done; her daughter joins the care team and raises a need no screening found, and the care manager
arranges a visit, which Tess calls off. The receiving agency's provider sees the
referral with the patient's contact detail, accepts it, books her appointment (which the care manager
sees) and completes it. The care manager records a
follow-up outcome; the timeline shows every step and verifies. Every page is photographed, and the main
ones are checked with axe-core.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from careloop_shared.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MANAGER = "cm-riverside-ana"
PROVIDER = "pr-transit-aid-kai"  # runs the seed directory's only transportation program


async def _main_text(page: Any) -> str:
    text: str = await page.inner_text("main")
    return text


async def _until(page: Any, path: str, predicate: Any, what: str, timeout: float = 30) -> str:
    """Reload ``path`` until its main text satisfies ``predicate`` (the services work asynchronously)."""

    async def probe() -> str | None:
        await page.goto(path)
        text = await _main_text(page)
        return text if predicate(text) else None

    found: str = await eventually(probe, timeout=timeout, interval=0.3, what=what)
    return found


async def _answer_questionnaire(page: Any, answers: dict[int, str]) -> None:
    """Tick, for each question number, the answer with that label (the form is built from intake's rules)."""
    for number, label in answers.items():
        question = page.locator("fieldset", has=page.locator("legend", has_text=f"{number}. "))
        await question.first.get_by_label(label, exact=True).check()


async def test_a_care_managers_day_from_registration_to_a_verified_record(
    platform, signed_in, screenshot, accessibility
):
    page = await signed_in(MANAGER)

    # Register the patient.
    await page.goto("/patients/new")
    form = page.locator("#register-patient")
    await form.get_by_label("Given name").fill("Tess")
    await form.get_by_label("Family name").fill("Transit-Journey")
    await form.get_by_label("Birth date").fill("1966-06-06")
    await form.get_by_label("Contact preference").select_option("phone")
    await form.get_by_label("Phone number").fill("+1 555 0166")
    await screenshot(page, "register")
    await accessibility(page, "register-patient")
    await form.get_by_role("button", name="Register the patient").click()
    await page.wait_for_url("**/patients/*")
    patient_url = page.url.split("?")[0]
    patient_id = patient_url.rsplit("/", 1)[-1]
    assert await page.get_by_role("heading", name="Tess Transit-Journey", level=1).is_visible()

    # She calls back: found by her name and birth date as she gives them, from the main menu.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Find a patient").click()
    finder = page.locator("#find-patient")
    await finder.get_by_label("Given name").fill("tess")
    await finder.get_by_label("Family name").fill("transit journey")
    await finder.get_by_label("Birth date").fill("1966-06-06")
    await finder.get_by_role("button", name="Find").click()
    found = page.locator("section[aria-labelledby='found-heading']")
    await found.get_by_role("link", name="Tess Transit-Journey").wait_for()
    assert "/patients/find" in page.url and "tess" not in page.url.lower()  # nothing typed in the address
    await accessibility(page, "find-patient")
    await found.get_by_role("link", name="Tess Transit-Journey").click()
    await page.wait_for_url(f"**/patients/{patient_id}")

    # She has a new phone number, and says calls and text messages to it are safe.
    await page.get_by_role("link", name="Change the details").click()
    details = page.locator("#change-details")
    await details.get_by_label("Phone number").fill("+1 555 0177")
    await details.get_by_label("Phone calls", exact=True).check()
    await details.get_by_label("Text messages", exact=True).check()
    await accessibility(page, "change-details")
    await details.get_by_role("button", name="Save the changes").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=details-changed*")
    shown = await page.locator("section[aria-labelledby='details-heading']").inner_text()
    assert "Phone\n+1 555 0177" in shown and "Safe to contact by\nPhone, Text" in shown, shown
    assert "The patient's details are changed." in await _main_text(page)

    # Consent to refer for transportation.
    await page.goto(f"/patients/{patient_id}/consents/new")
    consent = page.locator("#record-consent")
    await consent.get_by_label("Referral", exact=True).check()
    await consent.get_by_label("Transportation", exact=True).check()
    await consent.get_by_role("button", name="Record consent").click()
    await page.wait_for_url(f"**/patients/{patient_id}*")

    # A PHQ-9 with item 9 above 0: the safety check.
    await page.goto(f"/patients/{patient_id}/assessments/new?instrument=phq-9")
    await _answer_questionnaire(page, {n: "Not at all" for n in range(1, 9)} | {9: "Several days"})
    await screenshot(page, "phq-9")
    await accessibility(page, "assessment-phq-9")
    await page.get_by_role("button", name="Record the PHQ-9").click()
    await page.wait_for_url(f"**/patients/{patient_id}*")

    # An AHC HRSN with a transport need (and nothing else).
    await page.goto(f"/patients/{patient_id}/assessments/new?instrument=ahc-hrsn")
    await _answer_questionnaire(
        page,
        {
            1: "I have a steady place to live",
            2: "None of the above",
            3: "Never true",
            4: "Never true",
            5: "Yes",
            6: "No",
            7: "Never",
            8: "Never",
            9: "Never",
            10: "Never",
        },
    )
    await page.get_by_role("button", name="Record the AHC-HRSN").click()
    await page.wait_for_url(f"**/patients/{patient_id}*")

    # My day: the safety check comes first.
    async def safety_first() -> bool:
        await page.goto("/")
        rows = page.locator("section[aria-labelledby='tasks-heading'] tbody tr")
        return await rows.count() > 0 and "Safety check" in await rows.first.inner_text()

    await eventually(safety_first, timeout=20, interval=0.3, what="the safety check at the top of My day")
    await screenshot(page, "my-day")
    await accessibility(page, "my-day-with-a-safety-check")

    # The patient page: the plan appears once careplan has drafted it.
    plan = await _until(
        page, f"/patients/{patient_id}", lambda t: "Transportation" in t and "Goals" in t, "the plan"
    )
    assert "Tess Transit-Journey" in plan
    await screenshot(page, "patient")
    await accessibility(page, "patient")

    # The safety evaluation the PHQ-9 called for is done: recorded on the plan as progress.
    await page.get_by_role("link", name="Record progress on the clinical for suicidal ideation").click()
    await page.wait_for_url("**/interventions/*/status")
    await page.get_by_label("New status").select_option(label="Completed")
    await accessibility(page, "plan-progress")
    await page.get_by_role("button", name="Record the progress").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=plan-progress-recorded*")
    row = page.locator("tr", has_text="Suicidal ideation").filter(has_text="Clinical")
    assert "Completed" in await row.first.inner_text()

    # Her daughter joins the care team, then gives another number.
    await page.locator("#care-team").get_by_role("link", name="Add a care-team member").click()
    member = page.locator("#add-care-team-member")
    await member.get_by_label("Name").fill("Tina Transit")
    await member.get_by_label("Relationship to the patient").select_option("family")
    await member.get_by_label("Role in their care").fill("Transport helper")
    await member.get_by_label("How to reach them").fill("+1 555 0168")
    await member.get_by_role("button", name="Add to the care team").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=member-added*")
    await page.get_by_role("link", name="Change Tina Transit").click()
    changed = page.locator("#change-care-team-member")
    await changed.get_by_label("How to reach them").fill("+1 555 0169")
    await accessibility(page, "care-team-change")
    await changed.get_by_role("button", name="Save the changes").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=member-changed*")
    team = await page.locator("#care-team").inner_text()
    assert "Tina Transit" in team and "+1 555 0169" in team and "+1 555 0168" not in team

    # Tina says her mother is behind on the electric bill: a need no screening found joins the plan.
    await page.locator("#care-team").get_by_role("link", name="Record a contribution").click()
    contribution = page.locator("#record-contribution")
    await contribution.get_by_label("From").select_option(label="Tina Transit (family, transport helper)")
    await contribution.get_by_label("A need they raised").check()
    await contribution.get_by_label("Which need").select_option("utility-insecurity")
    await accessibility(page, "contribution-stated-need")
    await contribution.get_by_role("button", name="Record the contribution").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=contribution-recorded*")
    goals = await page.locator("#plan").inner_text()
    assert "Utilities secured" in goals and "Utility insecurity" in goals, goals

    # Tess says what she wants for herself: a goal in her own words joins the plan, her words beside it.
    await page.locator("#care-team").get_by_role("link", name="Record a contribution").click()
    contribution = page.locator("#record-contribution")
    await contribution.get_by_label("From").select_option(label="Tina Transit (family, transport helper)")
    await contribution.get_by_label("A goal in their own words").check()
    await contribution.get_by_label("Note, or the goal in their words").fill("Get back to choir on Thursdays")
    due_on = (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%d")
    await contribution.get_by_label("Goal due on").fill(due_on)
    await accessibility(page, "contribution-personal-goal")
    await contribution.get_by_role("button", name="Record the contribution").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=contribution-recorded*")
    goals = await page.locator("#plan").inner_text()
    assert "“Get back to choir on Thursdays” (in their own words)" in goals, goals
    assert "Goal added: “Get back to choir on Thursdays”" in goals, goals  # what changed, in her words
    await screenshot(page, "personal-goal")

    # She puts it another way a moment later; the plan shows her goal as she says it now.
    await page.locator("#care-team").get_by_role("link", name="Record a contribution").click()
    contribution = page.locator("#record-contribution")
    await contribution.get_by_label("From").select_option(label="Tina Transit (family, transport helper)")
    await contribution.get_by_label("Their goal in new words").check()
    await contribution.get_by_label("Which goal").select_option(
        label="“Get back to choir on Thursdays” (personal)"
    )
    await contribution.get_by_label("Note, or the goal in their words").fill(
        "Sing with the choir on Thursdays"
    )
    await accessibility(page, "contribution-goal-reworded")
    await contribution.get_by_role("button", name="Record the contribution").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=contribution-recorded*")
    goals = await page.locator("#plan").inner_text()
    assert "“Sing with the choir on Thursdays” (in their own words)" in goals, goals

    # Tina rings back: the electric bill is paid after all. The need she raised leaves the plan.
    await page.locator("#care-team").get_by_role("link", name="Record a contribution").click()
    contribution = page.locator("#record-contribution")
    await contribution.get_by_label("From").select_option(label="Tina Transit (family, transport helper)")
    await contribution.get_by_label("No longer a need for them").check()
    await contribution.get_by_label("Which need").select_option("utility-insecurity")
    await contribution.get_by_role("button", name="Record the contribution").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=contribution-recorded*")
    goals = await page.locator("#plan").inner_text()
    assert "Goal removed: “Utilities secured”" in goals and goals.count("Utilities secured") == 1, goals

    # She agrees to visit on Thursday to go over the plan, then Tess asks to leave it for now.
    await page.locator("#follow-ups").get_by_role("link", name="Arrange a contact").click()
    await page.wait_for_url(f"**/patients/{patient_id}/follow-ups/new")
    contact = page.locator("#arrange-contact")
    when = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
    await contact.get_by_label("When").fill(when)
    assert await contact.get_by_label("Phone", exact=True).count() == 1  # the plan's way, or in person
    assert await contact.get_by_label("Email", exact=True).count() == 0
    await contact.get_by_label("In person only", exact=True).check()
    await contact.get_by_label("What for").select_option("plan-review")
    await accessibility(page, "arrange-contact")
    await contact.get_by_role("button", name="Arrange the contact").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=contact-arranged*")
    arranged = page.locator("#follow-ups article", has_text="Arranged contact")
    assert "Plan review" in await arranged.inner_text()
    await screenshot(page, "contact-arranged")
    # Tess would rather it were a home visit: the same time, another purpose.
    await arranged.get_by_role("link", name=re.compile("^Change how or what for")).click()
    await page.wait_for_url(f"**/patients/{patient_id}/follow-ups/*/arrangement")
    change = page.locator("#change-contact")
    await change.get_by_label("What for").select_option("home-visit")
    await accessibility(page, "change-contact")
    await change.get_by_role("button", name="Change the contact").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=contact-changed*")
    arranged = page.locator("#follow-ups article", has_text="Arranged contact")
    assert "Home visit" in await arranged.inner_text()
    await arranged.get_by_label("Why call it off").select_option("patient-request")
    await arranged.get_by_role("button", name=re.compile("^Call off the contact")).click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=contact-called-off*")
    assert "Cancelled" in await page.locator("#follow-ups article", has_text="Arranged contact").inner_text()

    # The benefits form Tess needs help with: a to-do of the care manager's own, then done.
    await page.locator("#tasks").get_by_role("link", name="Add a to-do").click()
    await page.wait_for_url(f"**/patients/{patient_id}/tasks/new")
    to_do = page.locator("#add-to-do")
    await to_do.get_by_label("What for").select_option("benefits-application")
    await to_do.get_by_label("High", exact=True).check()
    await to_do.get_by_label("Due on").fill((datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d"))
    await accessibility(page, "add-to-do")
    await to_do.get_by_role("button", name="Add the to-do").click()
    await page.wait_for_url(f"**/patients/{patient_id}?notice=to-do-added*")
    row = page.locator("#tasks tr", has_text="To do: benefits application")
    assert "High" in await row.inner_text()
    await row.get_by_role("button", name=re.compile("^Mark done")).click()
    await page.wait_for_url(f"**/patients/{patient_id}?*")
    await _until(
        page,
        f"/patients/{patient_id}",
        lambda text: "To do: benefits application" not in text,
        "the to-do done",
    )

    # The provider of the receiving agency sees the referral and what it may of the patient.
    provider = await signed_in(PROVIDER)
    inbox = await _until(
        provider, "/inbox", lambda t: "Tess Transit-Journey" in t, "the referral in the inbox"
    )
    assert "+1 555 0177" in inbox  # the number as changed
    await screenshot(provider, "inbox")
    row = provider.locator("tbody tr", has_text="Tess Transit-Journey")
    await row.get_by_role("link").first.click()
    await provider.wait_for_url("**/inbox/referrals/*")
    referral_url = provider.url.split("?")[0]
    for heading, notice in (
        ("Accept", "referral-accepted"),
        ("Start or resume work", "referral-in-progress"),
    ):
        action = provider.locator(
            "section.action", has=provider.get_by_role("heading", name=heading, exact=True)
        )
        if await action.count() == 0:
            continue
        await action.get_by_role("button", name=heading, exact=True).click()
        await provider.wait_for_url(f"{referral_url}?notice={notice}")
    # The program books her first ride for two days on; the referring care manager sees it.
    booking = provider.locator("#book-appointment")
    await booking.get_by_label("When").fill(
        (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT09:30")
    )
    await accessibility(provider, "book-appointment")
    await booking.get_by_role("button", name="Book the appointment").click()
    await provider.wait_for_url(f"{referral_url}?notice=appointment-booked")
    assert "Booked for" in await provider.locator("#appointment").inner_text()
    await page.goto(f"/patients/{patient_id}")
    assert "Appointment\nBooked," in await page.locator("#referrals").inner_text()
    completed = "Complete: the service was delivered"
    completion = provider.locator("section.action", has=provider.get_by_role("heading", name=completed))
    await completion.get_by_label("Enrollment").select_option("enrolled")
    await completion.get_by_role("button", name=completed).click()
    await provider.wait_for_url(f"{referral_url}?notice=referral-completed")
    await screenshot(provider, "referral-completed")

    # Back to the care manager: a follow-up falls due; record its outcome.
    await _until(page, f"/patients/{patient_id}", lambda t: "Record the outcome" in t, "a follow-up due", 60)
    await page.get_by_role("link", name="Record the outcome").first.click()
    await page.wait_for_url("**/outcome")
    outcome = page.locator("#record-outcome")
    await outcome.get_by_label("Yes", exact=True).check()
    await outcome.get_by_label("Next step").select_option(index=1)
    await screenshot(page, "outcome")
    await outcome.get_by_role("button", name="Record the outcome").click()
    await page.wait_for_url(f"**/patients/{patient_id}*")

    # The timeline shows every step, and the record verifies.
    wanted = (
        "Registered",
        "Consent",
        "Assessed with phq-9",
        "Assessed with ahc-hrsn",
        "Referred",
        "completed",
    )
    record = await _until(
        page,
        f"/patients/{patient_id}?timeline=0",
        lambda t: (
            all(w in t for w in wanted) and "Follow-up completed" in t and "Arranged contact called off" in t
        ),
        "every step in the timeline",
        60,
    )
    assert "Verified:" in await page.inner_text("#record-verification")
    assert "cm-riverside-ana" in record and PROVIDER in record  # who did what
    await screenshot(page, "timeline")
