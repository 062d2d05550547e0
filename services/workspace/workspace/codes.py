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
# Why the service was not provided (a ``failed`` referral; domain.md 3.6: "couldn't contact", "couldn't
# get help" are failures, not completions).
FAILED_REASONS = {
    "unable-to-contact": "Unable to contact the patient",
    "service-not-obtained": "The service could not be obtained",
    "client-declined": "The patient declined",
    "client-unavailable": "The patient was unavailable",
    "not-eligible": "Not eligible",
    "need-resolved": "The need was resolved",
    "referred-elsewhere": "Referred elsewhere",
    "other": "Other",
}
# Why the referring agency withdraws a referral it made (``cancelled``, the requester's move).
WITHDRAW_REASONS = {
    "client-declined": "The patient no longer wants it",
    "need-resolved": "The need was resolved",
    "referred-elsewhere": "Referred elsewhere",
    "withdrawn-by-referrer": "Withdrawn by your agency",
    "duplicate": "Duplicate referral",
    "other": "Other",
}
# referral: domain/lifecycle.py, ENROLLMENT_STATUSES.
ENROLLMENT_STATUSES = {
    "enrolled": "Enrolled",
    "not-enrolled": "Not enrolled",
    "not-enrolled-on-waitlist": "Not enrolled, on the waitlist",
}
# The statuses in which the referral is still the receiving agency's to work, and those it is done with.
OPEN_REFERRAL_STATUSES = frozenset({"requested", "accepted", "in-progress", "on-hold"})
CLOSED_REFERRAL_STATUSES = frozenset({"rejected", "cancelled", "completed", "failed", "entered-in-error"})
# referral: domain/appointments.py, WORKED_ON, ANSWERED_AFTER and APPOINTMENT_STATUSES: the referrals whose
# appointment the receiving agency keeps, those whose booked appointment it still answers for (not moved), and
# what it says of one booked.
APPOINTMENT_REFERRALS = frozenset({"accepted", "in-progress", "on-hold"})
APPOINTMENT_ANSWERED_AFTER = frozenset({"completed"})
APPOINTMENT_OUTCOMES = {
    "fulfilled": "The patient came",
    "noshow": "The patient did not come",
    "cancelled": "Call it off",
}
# referral: domain/lifecycle.py, TRANSITIONS: the receiving agency's moves the inbox offers, by status.
PROVIDER_MOVES = {
    "requested": ("accepted", "rejected"),
    "accepted": ("in-progress", "on-hold", "completed", "failed"),
    "in-progress": ("on-hold", "completed", "failed"),
    "on-hold": ("in-progress", "completed", "failed"),
}
# The referring agency's moves: the open statuses it may withdraw (cancel) a referral from.
WITHDRAWABLE = frozenset({"draft", *OPEN_REFERRAL_STATUSES})

# referral: domain/matching.py, CapacityStatus (the SDOH Clinical Care IG's capacity status codes).
CAPACITY_STATUSES = {
    "capacity": "Taking referrals",
    "waitlist": "Waitlist",
    "additional-assessment-required": "Taking referrals after an assessment of its own",
    "no-capacity": "Not taking referrals now",
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

# careplan: domain/plan.py, PERSONAL_GOAL (the contribution kind), which is also the goal's coded description
# in the shipped plan library (rules/plan-library.v1.json, personal_goal).
PERSONAL_GOAL = "personal-goal"
GOAL_REWORDED = "goal-reworded"  # careplan: domain/plan.py, the contribution kind that puts one in new words
OWN_WORDS_SHOWN = 200  # goals in the patient's own words read for the plan page (careplan's largest page)
