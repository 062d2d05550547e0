"""The coded answers the supervisor's and provider's forms offer, in words.

The services own these vocabularies and check every code they are sent (an unknown one is a 422 shown
beside its field); the workspace imports no service, so it keeps the choices it offers here, and a test
(``test_workspace_codes.py``) compares them with the services' rules and domain files.
"""

from __future__ import annotations

# intake: rules/care-manager.v1.json, reassignment_reasons.
REASSIGNMENT_REASONS = {
    "caseload-balance": "Balancing caseloads",
    "staff-leave": "Care manager on leave",
    "staff-departure": "Care manager leaving",
    "patient-request": "The patient asked",
    "language-match": "Language match",
    "continuity-of-care": "Continuity of care",
    "safety": "Safety",
    "other": "Other",
}

# referral: domain/lifecycle.py, REASONS; the ones a receiving agency gives for each of its moves.
REJECT_REASONS = {
    "no-capacity": "No capacity now (sent on to the next program)",
    "not-eligible": "Not eligible (sent on to the next program)",
    "waitlist": "Waitlist",
    "referred-elsewhere": "Referred elsewhere",
    "unable-to-contact": "Unable to contact",
    "client-declined": "The patient declined",
    "duplicate": "Duplicate referral",
    "other": "Other",
}
HOLD_REASONS = {
    "waitlist": "On the waitlist",
    "client-unavailable": "The patient is unavailable for now",
    "unable-to-contact": "Unable to contact",
    "other": "Other",
}
NOT_DELIVERED_REASONS = {
    "unable-to-contact": "Unable to contact",
    "service-not-obtained": "Service not obtained",
    "client-declined": "The patient declined",
    "client-unavailable": "The patient was unavailable",
    "not-eligible": "Not eligible",
    "need-resolved": "The need was resolved",
    "referred-elsewhere": "Referred elsewhere",
    "other": "Other",
}
# referral: domain/lifecycle.py, ENROLLMENT_STATUSES.
ENROLLMENT_STATUSES = {
    "enrolled": "Enrolled",
    "not-enrolled": "Not enrolled",
    "not-enrolled-on-waitlist": "Not enrolled, on the waitlist",
}
# The statuses in which the referral is still the receiving agency's to work.
OPEN_REFERRAL_STATUSES = frozenset({"requested", "accepted", "in-progress", "on-hold"})
# referral: domain/lifecycle.py, TRANSITIONS: the receiving agency's moves the inbox offers, by status.
PROVIDER_MOVES = {
    "requested": ("accepted", "rejected"),
    "accepted": ("in-progress", "on-hold", "completed"),
    "in-progress": ("on-hold", "completed"),
    "on-hold": ("in-progress", "completed"),
}

# referral: domain/recruitment.py, MOVES and DECLINE_REASONS.
PROSPECT_MOVES = {
    "prospect": ("contacted", "declined"),
    "contacted": ("onboarding", "declined"),
    "onboarding": ("active", "declined"),
    "active": (),
    "declined": (),
}
PROSPECT_STATUS_WORDS = {
    "prospect": "Prospect",
    "contacted": "Contacted",
    "onboarding": "Onboarding",
    "active": "Active: in the directory",
    "declined": "Declined",
}
DECLINE_REASONS = {
    "not-interested": "Not interested",
    "not-eligible": "Not eligible",
    "no-capacity": "No capacity",
    "unreachable": "Unreachable",
    "duplicate": "Duplicate",
    "other": "Other",
}
