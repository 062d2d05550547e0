"""HTTP bodies of the directory: an entry as saved (the domain's own entry) and as shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from referral.domain.directory import Capacity, Contact, Organization, Service

_CHANGED_BY = "The person who last changed the entry (their subject id); null for the seed directory."


class OrganizationIn(Organization):
    """An organisation (HSDS ``organization``) with its locations."""


class ServiceIn(Service):
    """A service (HSDS ``service``, a program) with structured eligibility and capacity."""


class CapacityIn(Capacity):
    """Whether the program can take referrals now."""


class ContactOut(Contact):
    # Shown as stored: a value saved under an earlier, looser rule must not fail the answer.
    email: str | None = None
    url: str | None = None


class OrganizationOut(OrganizationIn):
    model_config = ConfigDict(extra="ignore")

    email: str | None = None  # shown as stored, as in ContactOut
    url: str | None = None
    updated_at: datetime
    changed_by: str | None = Field(None, description=_CHANGED_BY)
    changed_by_role: str | None = None


class ServiceOut(ServiceIn):
    model_config = ConfigDict(extra="ignore")

    contact: ContactOut = Field(default_factory=ContactOut)
    receiving_agency_id: str
    capacity_updated_at: datetime
    updated_at: datetime
    changed_by: str | None = Field(None, description=_CHANGED_BY)
    changed_by_role: str | None = None
    capacity_changed_by: str | None = Field(None, description="Who last changed the capacity.")
    capacity_changed_by_role: str | None = None
    quality: dict[str, Any] = Field(description="Measured from the referral history.")
