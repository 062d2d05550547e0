"""Whether the patient's consent lets a referral go to another agency. Pure: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from referral.domain.matching import Ranked

OWN_AGENCY = "own-agency"
REFERRAL_PURPOSE = "referral"


@dataclass(frozen=True)
class Consent:
    id: uuid.UUID
    purpose: str
    agencies: frozenset[str]
    program_categories: frozenset[str]
    period_start: datetime
    period_end: datetime | None
    revoked: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Consent:
        """A consent as stored (its ``revoked_at`` set once revoked)."""
        return cls(
            id=row["id"],
            purpose=row["purpose"],
            agencies=frozenset(row["agencies"]),
            program_categories=frozenset(row["program_categories"]),
            period_start=row["period_start"],
            period_end=row["period_end"],
            revoked=row["revoked_at"] is not None,
        )

    def active_at(self, at: datetime) -> bool:
        return (
            not self.revoked and self.period_start <= at and (self.period_end is None or at < self.period_end)
        )

    def covers(self, agency_id: str, category: str | None) -> bool:
        return agency_id in self.agencies or (category is not None and category in self.program_categories)


def permission(
    consents: Iterable[Consent],
    *,
    patient_agency: str,
    target_agency: str,
    category: str | None,
    at: datetime,
) -> uuid.UUID | str | None:
    """The consent allowing the referral (its id), OWN_AGENCY when none is needed, or None."""
    if target_agency == patient_agency:
        return OWN_AGENCY
    for consent in sorted(consents, key=lambda c: (c.period_start, str(c.id))):
        if (
            consent.purpose == REFERRAL_PURPOSE
            and consent.active_at(at)
            and consent.covers(target_agency, category)
        ):
            return consent.id
    return None


def first_allowed(
    ranked: list[Ranked], consents: Iterable[Consent], *, patient_agency: str, at: datetime
) -> tuple[Ranked, uuid.UUID | str | None]:
    """The best program the patient's consent allows, with that permission; else the best, with None
    (the referral waits for consent). ``ranked`` is best first and not empty."""
    consents = list(consents)
    for candidate in ranked:
        allowed = permission(
            consents,
            patient_agency=patient_agency,
            target_agency=candidate.service.agency_id,
            category=candidate.service.program_category,
            at=at,
        )
        if allowed is not None:
            return candidate, allowed
    return ranked[0], None
