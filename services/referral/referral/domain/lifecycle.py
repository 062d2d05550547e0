"""The referral Task lifecycle of the Gravity SDOH Clinical Care IG, and who may move it. Pure: no I/O.

A referral is a FHIR Task (the receiving agency's progress) whose focus is a ServiceRequest (what is
asked). ``draft`` is ours before the patient's consent allows sending it; ``requested`` is when it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

from careloop_shared.errors import Conflict, Forbidden, Invalid, problem


class Party(StrEnum):
    requester = "requester"  # the referring agency (the patient's own)
    target = "target"  # the receiving agency


R, T = Party.requester, Party.target

# (from, to) -> who may make that move. Anything not listed is illegal.
TRANSITIONS: dict[tuple[str, str], frozenset[Party]] = {
    ("draft", "requested"): frozenset({R}),
    ("draft", "cancelled"): frozenset({R}),
    ("requested", "accepted"): frozenset({T}),
    ("requested", "rejected"): frozenset({T}),
    ("requested", "cancelled"): frozenset({R, T}),
    ("accepted", "in-progress"): frozenset({T}),
    ("accepted", "on-hold"): frozenset({T}),
    ("accepted", "completed"): frozenset({T}),
    ("accepted", "failed"): frozenset({T}),
    ("accepted", "cancelled"): frozenset({R, T}),
    ("in-progress", "on-hold"): frozenset({T}),
    ("in-progress", "completed"): frozenset({T}),
    ("in-progress", "failed"): frozenset({T}),
    ("in-progress", "cancelled"): frozenset({R, T}),
    ("on-hold", "in-progress"): frozenset({T}),
    ("on-hold", "completed"): frozenset({T}),
    ("on-hold", "failed"): frozenset({T}),
    ("on-hold", "cancelled"): frozenset({R, T}),
}
ReferralStatus = Literal[
    "draft",
    "requested",
    "accepted",
    "rejected",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
]
STATUSES: tuple[str, ...] = get_args(ReferralStatus)
TERMINAL = frozenset({"rejected", "cancelled", "completed", "failed", "entered-in-error"})
# The requester may mark any referral entered in error (Gravity: "any -> entered-in-error").
for _status in STATUSES:
    if _status != "entered-in-error":
        TRANSITIONS[(_status, "entered-in-error")] = frozenset({R})

NEEDS_REASON = frozenset({"rejected", "cancelled", "on-hold", "failed"})
NEEDS_OUTCOME = frozenset({"completed"})

# Coded reasons (domain.md 3.6); free text never travels in events.
REASONS = frozenset(
    {
        "no-capacity",
        "not-eligible",
        "waitlist",
        "referred-elsewhere",
        "unable-to-contact",
        "service-not-obtained",
        "client-declined",
        "withdrawn-by-referrer",
        "consent-revoked",
        "client-unavailable",
        "duplicate",
        "need-resolved",
        "overridden-by-care-manager",
        "other",
    }
)
# A care manager chose another program by hand: the automatic referral it replaces is cancelled so.
OVERRIDDEN = "overridden-by-care-manager"
# Open referrals a care manager's choice may still replace: the receiving agency has not taken them up.
OVERRIDABLE = frozenset({"draft", "requested"})
# A rejection for one of these sends the referral on to the next best program.
REROUTE_REASONS = frozenset({"no-capacity", "not-eligible"})
ENROLLMENT_STATUSES = frozenset({"enrolled", "not-enrolled", "not-enrolled-on-waitlist"})


class IllegalTransition(Conflict):
    """The lifecycle has no such move (HTTP 409)."""


class WrongParty(Forbidden):
    """The move exists but belongs to the other side (HTTP 403)."""


class IncompleteChange(Invalid):
    """A reason or outcome the move needs is missing or not from the vocabulary (HTTP 422 at that field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__([problem(["body", field], "invalid_change", message)])
        self.field = field


@dataclass(frozen=True)
class Outcome:
    service_delivered: bool | None = None
    enrollment_status: str | None = None
    reason: str | None = None


# Roles that act for a receiving agency only: they see and answer the referrals sent to it.
RECEIVING_ROLES = frozenset({"provider"})


def parties(agency_id: str, *, referring: str, receiving: str, status: str) -> frozenset[Party]:
    """The sides of a referral an agency is: the referring one always, the receiving one once sent."""
    sides = set()
    if agency_id == referring:
        sides.add(Party.requester)
    if agency_id == receiving and status != "draft":
        sides.add(Party.target)
    return frozenset(sides)


def check_transition(
    current: str,
    to: str,
    parties: frozenset[Party],
    *,
    reason: str | None,
    outcome: Outcome | None,
) -> Party:
    """Raise unless ``parties`` may move a referral from ``current`` to ``to``; return the party acting."""
    if to not in STATUSES:
        raise IllegalTransition("status is not a Gravity referral task status")
    allowed = TRANSITIONS.get((current, to))
    if allowed is None:
        raise IllegalTransition(f"a {current} referral cannot become {to}")
    acting = sorted(parties & allowed)
    if not acting:
        side = "receiving agency" if allowed == {T} else "referring agency"
        raise WrongParty(f"only the {side} may set {to}")
    check_reason(to, reason)
    check_outcome(to, outcome)
    return acting[0]


def check_reason(to: str, reason: str | None) -> None:
    if reason is None:
        if to in NEEDS_REASON:
            raise IncompleteChange("reason", f"a reason is required for {to}")
        return
    if reason not in REASONS:
        raise IncompleteChange("reason", "reason is not a known code")


def check_outcome(to: str, outcome: Outcome | None) -> None:
    if outcome is None:
        if to in NEEDS_OUTCOME:
            raise IncompleteChange("outcome", f"an outcome is required for {to}")
        return
    if outcome.enrollment_status is not None and outcome.enrollment_status not in ENROLLMENT_STATUSES:
        raise IncompleteChange("outcome", "enrollment_status is not a known code")
    if outcome.reason is not None and outcome.reason not in REASONS:
        raise IncompleteChange("outcome", "outcome reason is not a known code")
    if outcome.service_delivered is None and outcome.enrollment_status is None:
        raise IncompleteChange("outcome", "an outcome says whether the service was delivered or enrolled")
    if outcome.service_delivered is False and outcome.reason is None:
        raise IncompleteChange("outcome", "an outcome without service says why not (reason)")
