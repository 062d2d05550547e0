"""What a redirect after one of the patient forms may ask to show, by code (never a name or a value)."""

from __future__ import annotations

from fastapi import Request

from workspace.web import NOTICES

PATIENT_NOTICES = {
    "patient-registered": "The patient is registered. Record their consent and an assessment next.",
    "consent-recorded": "The consent is recorded.",
    "assessment-recorded": "The assessment is recorded. The care plan follows from it in a few seconds.",
    "plan-status-changed": "The plan's status changed; a new version records it.",
    "member-added": "The care-team member is added.",
    "contribution-recorded": "The contribution is recorded with the plan.",
    "alternative-chosen": "The patient's choice is recorded; the plan takes it up.",
    "referral-made": "The referral is made.",
    "referral-waits-for-consent": (
        "The referral waits as a draft until the patient consents to share with that agency."
    ),
    "outcome-recorded": "The follow-up's outcome is recorded.",
    "follow-up-rescheduled": "The follow-up is moved; it falls due at its new time.",
    "education-recorded": "The education given is recorded.",
    "task-started": "The task is in progress.",
    "task-done": "The task is done.",
    "task-cancelled": "The task is cancelled.",
}


def notice_of(request: Request) -> dict[str, str]:
    """The page's notice when the redirect asked for one of these (else the page shows its own)."""
    code = request.query_params.get("notice", "")
    text = PATIENT_NOTICES.get(code) or NOTICES.get(code)
    return {"notice": text} if text else {}


def patient_url(patient_id: object, notice: str, section: str = "") -> str:
    """The patient page after a form: ids and a notice code only."""
    assert notice in PATIENT_NOTICES
    return f"/patients/{patient_id}?notice={notice}{f'#{section}' if section else ''}"
