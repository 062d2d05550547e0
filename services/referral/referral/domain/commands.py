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
from referral.domain.recruitment import Prospect


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


@dataclass(frozen=True)
class MakeReferral:
    """Refer a patient by hand, for an intervention of their current plan, to a program the person
    chose (replacing an automatic referral not yet taken up)."""

    agency_id: str
    patient_id: uuid.UUID
    intervention_id: uuid.UUID
    service_id: str
    by: str  # the person (token sub)
    by_role: str
    need: str | None = None  # the intervention's when not given
    priority: str | None = None  # the intervention's when not given
    note: str | None = None  # free text kept in referral's database only, never in events or logs


@dataclass(frozen=True)
class ReferWaitingPatients:
    """Make the referrals patients waiting on network gaps can have now that these programs exist."""

    service_ids: tuple[str, ...]
    by: str  # the person whose action brought the programs (activated a recruited provider)
    by_role: str


@dataclass(frozen=True)
class SaveProspect:
    """Add a prospective provider to the recruitment pipeline, or update it (same id)."""

    agency_id: str
    role: str
    by: str  # the person (token sub); ``role`` is theirs
    prospect: Prospect


@dataclass(frozen=True)
class ChangeProspectStatus:
    """Move a prospect along the pipeline; ``active`` puts it in the directory."""

    agency_id: str
    role: str
    by: str  # the person (token sub); ``role`` is theirs
    prospect_id: str
    status: str
    reason: str | None = None  # a code, for a decline
    note: str | None = None  # free text kept in referral's database only
