"""HTTP request and response bodies of referral, and the shape of a directory data file."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
Language = Annotated[str, Field(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$", max_length=35)]
PostalPrefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,10}$")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Short = Annotated[str, Field(min_length=1, max_length=200)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ()\-.]{7,25}$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Url = Annotated[str, Field(pattern=r"^https?://\S{1,500}$")]
Time = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
CapacityStatus = Literal["capacity", "no-capacity", "waitlist", "additional-assessment-required"]
ServiceStatus = Literal["active", "inactive", "defunct", "temporarily closed"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocationIn(_In):
    """HSDS ``location``: where an organisation serves people."""

    id: Id
    name: Short
    location_type: Literal["physical", "postal", "virtual"] = "physical"
    postal_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,11}$")] | None = None


class OrganizationIn(_In):
    id: Id
    agency_id: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="The careloop agency that answers this organisation's referrals."
    )
    name: Short
    description: Text | None = None
    url: Url | None = None
    email: Email | None = None
    phone: Phone | None = None
    locations: list[LocationIn] = Field(default_factory=list, max_length=100)


class EligibilityIn(_In):
    description: Text | None = None
    min_age: Annotated[int, Field(ge=0, le=130)] | None = None
    max_age: Annotated[int, Field(ge=0, le=130)] | None = None
    postal_prefixes: list[PostalPrefix] = Field(
        default_factory=list, description="Service area; empty means everywhere."
    )
    requirements: list[Code] = Field(
        default_factory=list, description="Program requirements such as medicaid or veteran."
    )

    @model_validator(mode="after")
    def _range(self) -> EligibilityIn:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age must not exceed max_age")
        return self


class ScheduleIn(_In):
    """HSDS ``schedule``, the weekly opening hours."""

    freq: Literal["WEEKLY", "MONTHLY"] = "WEEKLY"
    byday: Annotated[str, Field(pattern=r"^(MO|TU|WE|TH|FR|SA|SU)(,(MO|TU|WE|TH|FR|SA|SU))*$")]
    opens_at: Time
    closes_at: Time


class CapacityIn(_In):
    status: CapacityStatus
    notes: Annotated[str, Field(max_length=500)] | None = None


class ContactIn(_In):
    email: Email | None = None
    phone: Phone | None = None
    url: Url | None = None


class ServiceIn(_In):
    """HSDS ``service`` (a program) with structured eligibility and capacity."""

    id: Id
    organization_id: Id
    name: Short
    description: Text | None = None
    program_category: Code
    needs: list[Code] = Field(default_factory=list, description="Needs addressed (Gravity SDOH domains).")
    status: ServiceStatus = "active"
    languages: list[Language] = Field(default_factory=lambda: ["en"], min_length=1)
    interpretation_services: bool = False
    eligibility: EligibilityIn = Field(default_factory=EligibilityIn)
    hours: list[ScheduleIn] = Field(default_factory=list)
    capacity: CapacityIn = Field(default_factory=lambda: CapacityIn(status="capacity"))
    contact: ContactIn = Field(default_factory=ContactIn)
    location_ids: list[Id] = Field(default_factory=list)


class SeedDirectory(BaseModel):
    version: str
    organizations: list[OrganizationIn]
    services: list[ServiceIn]


class OrganizationOut(OrganizationIn):
    model_config = ConfigDict(extra="ignore")

    updated_at: datetime


class ServiceOut(ServiceIn):
    model_config = ConfigDict(extra="ignore")

    receiving_agency_id: str
    capacity_updated_at: datetime
    updated_at: datetime
    quality: dict[str, Any] = Field(description="Measured from the referral history.")


class OutcomeIn(_In):
    service_delivered: bool | None = None
    enrollment_status: Literal["enrolled", "not-enrolled", "not-enrolled-on-waitlist"] | None = None
    reason: Code | None = Field(None, description="Coded reason when the service was not delivered.")


TaskStatus = Literal[
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


class StatusChangeIn(_In):
    status: TaskStatus
    reason: Code | None = Field(None, description="Coded reason; required for rejected, cancelled, ...")
    outcome: OutcomeIn | None = Field(None, description="Required to complete.")
    note: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Free text kept in referral's database only, never in events or logs."
    )


class HistoryEntry(BaseModel):
    from_status: str | None
    to_status: str
    by_agency_id: str
    by_party: str
    reason: str | None
    outcome: dict[str, Any] | None
    note: str | None
    changed_at: datetime


class ReferralOut(BaseModel):
    id: uuid.UUID
    service_request_id: uuid.UUID
    patient_id: uuid.UUID
    referring_agency_id: str
    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_category: str | None
    program_id: str
    receiving_agency_id: str
    status: str
    status_reason: str | None
    priority: str
    outcome: dict[str, Any] | None
    replaces_referral_id: uuid.UUID | None
    made_at: datetime | None
    response_due_at: datetime | None
    outcome_due_at: datetime | None
    response_overdue: bool
    outcome_overdue: bool
    created_at: datetime
    updated_at: datetime


class ReferralDetail(ReferralOut):
    history: list[HistoryEntry]


class StatusChanged(BaseModel):
    referral: ReferralDetail
    rerouted_to: uuid.UUID | None = Field(None, description="The new referral a rejection re-routed to.")
