"""What a receiving agency may see of a patient referred to it, and when. Pure: no I/O here.

Minimum necessary: while a referral to the agency is open and the patient's consent covers it, the
agency's providers see the patient's name, language, contact preference and the one contact detail
that preference permits, with the reason for referral; nothing else of the case.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

REFERRAL_PURPOSE = "referral"
# A referral in one of these is over, and so is the receiving agency's access through it.
CLOSING_STATUSES = frozenset({"completed", "cancelled", "failed", "rejected", "entered-in-error"})


@dataclass(frozen=True)
class Grant:
    """A referral sent to ``receiving_agency_id``: open until the referral closes."""

    referral_id: uuid.UUID
    receiving_agency_id: str
    program_category: str | None  # None: not known, so only a consent naming the agency covers it
    ended_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class Consent:
    purpose: str
    agencies: frozenset[str]
    program_categories: frozenset[str]
    period_start: datetime
    period_end: datetime | None
    revoked: bool = False

    def active_at(self, at: datetime) -> bool:
        return (
            not self.revoked and self.period_start <= at and (self.period_end is None or at < self.period_end)
        )

    def covers(self, grant: Grant) -> bool:
        return grant.receiving_agency_id in self.agencies or (
            grant.program_category is not None and grant.program_category in self.program_categories
        )


def may_see(
    grant: Grant, *, caller_agency: str, patient_agency: str, consents: Iterable[Consent], at: datetime
) -> bool:
    """Whether ``grant`` lets the caller's agency see the patient now: it is open and sent to that
    agency, and either the agency is the patient's own or an active referral consent names it (or the
    referral's program category)."""
    if not grant.open or grant.receiving_agency_id != caller_agency:
        return False
    if grant.receiving_agency_id == patient_agency:
        return True
    return any(c.purpose == REFERRAL_PURPOSE and c.active_at(at) and c.covers(grant) for c in consents)


# Referrals for these needs are about the patient's safety at home: a channel not marked safe is unsafe.
INTERPERSONAL_SAFETY_NEEDS = frozenset({"intimate-partner-violence"})


def permitted_contact(
    preference: str,
    phone: str | None,
    email: str | None,
    *,
    safe_channels: list[str] | None = None,
    needs: frozenset[str] = frozenset(),
) -> tuple[str | None, str | None]:
    """(phone, email) as the patient's contact preference permits: the phone for phone or text calls,
    the email for email, neither when they asked not to be contacted; and never through a channel the
    patient has not marked safe when they marked some, or when a referral is about their safety at home
    (not said then means not safe)."""
    safe = safe_channels
    if safe is None and needs & INTERPERSONAL_SAFETY_NEEDS:
        safe = []
    if safe is not None and preference not in safe:
        return None, None
    if preference in ("phone", "text"):
        return phone, None
    if preference == "email":
        return None, email
    return None, None
