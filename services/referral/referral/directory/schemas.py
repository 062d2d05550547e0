"""HTTP bodies of the directory: an entry as saved (the domain's own entry) and as shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from referral.domain.directory import Capacity, Organization, Service

_CHANGED_BY = "The person who last changed the entry (their subject id); null for the seed directory."


class OrganizationIn(Organization):
    """An organisation (HSDS ``organization``) with its locations."""


class ServiceIn(Service):
    """A service (HSDS ``service``, a program) with structured eligibility and capacity."""


class CapacityIn(Capacity):
    """Whether the program can take referrals now."""


class OrganizationOut(OrganizationIn):
    model_config = ConfigDict(extra="ignore")

    updated_at: datetime
    changed_by: str | None = Field(None, description=_CHANGED_BY)
    changed_by_role: str | None = None


class ServiceOut(ServiceIn):
    model_config = ConfigDict(extra="ignore")

    receiving_agency_id: str
    capacity_updated_at: datetime
    updated_at: datetime
    changed_by: str | None = Field(None, description=_CHANGED_BY)
    changed_by_role: str | None = None
    capacity_changed_by: str | None = Field(None, description="Who last changed the capacity.")
    capacity_changed_by_role: str | None = None
    quality: dict[str, Any] = Field(description="Measured from the referral history.")
