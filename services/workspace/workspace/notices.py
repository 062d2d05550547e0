"""What a redirect may ask a page to show, by code: a URL never carries words of ours or anybody's data."""

from __future__ import annotations

from fastapi import Request

NOTICES = {
    "signed-out": "You have signed out.",
    "session-ended": "Your session has ended; sign in again.",
    "sign-in-needed": "Sign in to continue.",
    "reassigned": "The patient has a new care manager; their open tasks moved with them.",
    "capacity-changed": "The program's capacity is changed; matching and directory searches use it now.",
    "prospect-added": "The prospect is in the pipeline.",
    "prospect-moved": "The prospect moved along the pipeline.",
    "referral-accepted": "You accepted the referral.",
    "appointment-booked": "The appointment is booked; the referring agency sees it.",
    "appointment-fulfilled": "The appointment is recorded as attended.",
    "appointment-noshow": "The missed appointment is recorded; the referring care manager will follow up.",
    "appointment-cancelled": "The appointment is called off.",
    "referral-rejected": "You rejected the referral; the referring agency has been told.",
    "referral-rerouted": "You rejected the referral; it was sent on to the next best program.",
    "referral-in-progress": "The referral is in progress.",
    "referral-on-hold": "The referral is on hold.",
    "referral-completed": "The referral is completed with its outcome; the referring agency has been told.",
    "referral-failed": (
        "The referral is closed: the service was not provided. The referring agency has been told."
    ),
    "referral-withdrawn": "The referral is withdrawn; the receiving agency has been told.",
    "patient-registered": "The patient is registered. Record their consent and an assessment next.",
    "patient-erased": "The patient's identifying details are erased; the pseudonymous case stays.",
    "details-changed": "The patient's details are changed.",
    "details-unchanged": "Nothing was changed: the details are as they were.",
    "consent-recorded": "The consent is recorded.",
    "consent-revoked": "The consent is revoked; nothing more is shared under it.",
    "consent-not-active": "That consent was no longer active: revoked already, or ended.",
    "assessment-recorded": "The assessment is recorded. The care plan follows from it in a few seconds.",
    "plan-status-changed": "The plan's status changed; a new version records it.",
    "plan-progress-recorded": "The progress is recorded; a new version of the plan holds it.",
    "member-added": "The care-team member is added.",
    "member-changed": "The care-team member's details are changed.",
    "member-removed": "The member has left the care team; their contributions stay with the plan.",
    "member-not-active": "That member was no longer on the care team.",
    "contribution-recorded": "The contribution is recorded with the plan.",
    "alternative-chosen": "The patient's choice is recorded; the plan takes it up.",
    "referral-made": "The referral is made.",
    "referral-waits-for-consent": (
        "The referral waits as a draft until the patient consents to share with that agency."
    ),
    "outcome-recorded": "The follow-up's outcome is recorded.",
    "follow-up-rescheduled": "The follow-up is moved; it falls due at its new time.",
    "contact-arranged": "The contact is arranged: it comes to your day when it falls due.",
    "to-do-added": "The to-do is on your task list.",
    "to-do-added-for-care-manager": "The to-do is on the patient's care manager's task list.",
    "contact-called-off": "The contact is called off.",
    "contact-changed": "The contact is changed; it stays at its time.",
    "education-recorded": "The education given is recorded.",
    "task-started": "The task is in progress.",
    "task-done": "The task is done.",
    "task-cancelled": "The task is cancelled.",
}


def notice_text(request: Request) -> str | None:
    """The notice the redirect asked for, or None."""
    return NOTICES.get(request.query_params.get("notice", ""))


def notice_of(request: Request) -> dict[str, str]:
    """The page's notice when the redirect asked for one (else the page shows its own)."""
    text = notice_text(request)
    return {"notice": text} if text else {}


def patient_url(patient_id: object, notice: str, section: str = "") -> str:
    """The patient page after a form: ids and a notice code only."""
    assert notice in NOTICES
    return f"/patients/{patient_id}?notice={notice}{f'#{section}' if section else ''}"
