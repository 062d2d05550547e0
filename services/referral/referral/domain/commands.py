"""What referral is asked to do: one command per use case, built by the API from a request.

Every command names the person asking (``by``: their identity provider's subject id, and their role),
so what they change is recorded as theirs. A directory command carries the entry itself
(``Organization``, ``Service``, ``Capacity`` from ``domain/directory.py``): the same validated value the
seed file is made of, so an entry is checked by one set of rules whoever saves it, and is not copied
field by field on the way in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from referral.domain.directory import Capacity, Organization, Service
from referral.domain.lifecycle import Outcome


@dataclass(frozen=True)
class ChangeReferralStatus:
    """Move a referral along its lifecycle, as the agency acting (referring or receiving)."""

    agency_id: str
    referral_id: uuid.UUID
    status: str
    by: str  # the person (token sub)
    by_role: str
    reason: str | None = None
    outcome: Outcome | None = None
    note: str | None = None  # free text kept in referral's database only, never in events or logs
    receiving_only: bool = False  # the caller acts only as the receiving agency (a provider)


@dataclass(frozen=True)
class SaveOrganization:
    """Add an organisation, or update it (same id)."""

    agency_id: str
    role: str
    by: str  # the person (token sub); ``role`` is theirs
    organization: Organization


@dataclass(frozen=True)
class SaveService:
    """Add a service (program), or update it (same id)."""

    agency_id: str
    role: str
    by: str  # the person (token sub); ``role`` is theirs
    service: Service


@dataclass(frozen=True)
class UpdateCapacity:
    """Say whether a program can take referrals now."""

    agency_id: str
    role: str
    by: str  # the person (token sub); ``role`` is theirs
    service_id: str
    capacity: Capacity
