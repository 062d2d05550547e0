"""The program directory's entries (after Open Referral HSDS) and who may change them. Pure: no I/O.

An entry is validated the same way wherever it comes from: the seed file ``rules/directory.v1.json``
(an organisation may point ``REFERRAL_DIRECTORY_FILE`` at its own) or an organisation saving it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from careloop_shared.contact import Email, Phone, Url
from careloop_shared.rules import Rule, RulesFile
from referral.domain.matching import CapacityStatus

DIRECTORY_FILE = Path(__file__).resolve().parent.parent / "rules" / "directory.v1.json"

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
Language = Annotated[str, Field(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$", max_length=35)]
PostalPrefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,10}$")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Short = Annotated[str, Field(min_length=1, max_length=200)]
Time = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
ServiceStatus = Literal["active", "inactive", "defunct", "temporarily closed"]

# Besides the organisation itself, these roles may change any directory entry.
DIRECTORY_ADMINS = frozenset({"admin", "supervisor"})


class Location(Rule):
    """HSDS ``location``: where an organisation serves people."""

    id: Id
    name: Short
    location_type: Literal["physical", "postal", "virtual"] = "physical"
    postal_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,11}$")] | None = None


class Organization(Rule):
    id: Id
    agency_id: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="The careloop agency that answers this organisation's referrals."
    )
    name: Short
    description: Text | None = None
    url: Url | None = None
    email: Email | None = None
    phone: Phone | None = None
    locations: list[Location] = Field(default_factory=list, max_length=100)


class Eligibility(Rule):
    description: Text | None = None
    min_age: Annotated[int, Field(ge=0, le=130)] | None = None
    max_age: Annotated[int, Field(ge=0, le=130)] | None = None
    postal_prefixes: list[PostalPrefix] = Field(
        default_factory=list, max_length=200, description="Service area; empty means everywhere."
    )
    requirements: list[Code] = Field(
        default_factory=list, max_length=50, description="Program requirements such as medicaid or veteran."
    )

    @model_validator(mode="after")
    def _range(self) -> Eligibility:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age must not exceed max_age")
        return self


class Schedule(Rule):
    """HSDS ``schedule``, the weekly opening hours."""

    freq: Literal["WEEKLY", "MONTHLY"] = "WEEKLY"
    byday: Annotated[str, Field(pattern=r"^(MO|TU|WE|TH|FR|SA|SU)(,(MO|TU|WE|TH|FR|SA|SU))*$")]
    opens_at: Time
    closes_at: Time


class Capacity(Rule):
    status: CapacityStatus
    notes: Annotated[str, Field(max_length=500)] | None = None


class Contact(Rule):
    email: Email | None = None
    phone: Phone | None = None
    url: Url | None = None


class Service(Rule):
    """HSDS ``service`` (a program) with structured eligibility and capacity."""

    id: Id
    organization_id: Id
    name: Short
    description: Text | None = None
    program_category: Code
    needs: list[Code] = Field(
        default_factory=list, max_length=50, description="Needs addressed (Gravity SDOH domains)."
    )
    status: ServiceStatus = "active"
    languages: list[Language] = Field(default_factory=lambda: ["en"], min_length=1, max_length=50)
    interpretation_services: bool = False
    eligibility: Eligibility = Field(default_factory=Eligibility)
    hours: list[Schedule] = Field(default_factory=list, max_length=50)
    capacity: Capacity = Field(default_factory=lambda: Capacity(status="capacity"))
    contact: Contact = Field(default_factory=Contact)
    location_ids: list[Id] = Field(default_factory=list, max_length=50)


class SeedDirectory(RulesFile):
    """The directory every start upserts by id; entries changed through the API are left as they are."""

    organizations: list[Organization]
    services: list[Service]


def may_change(role: str, agency_id: str, owner_agency: str | None) -> bool:
    """A directory administrator may change any entry; an agency, its own organisations' entries."""
    return role in DIRECTORY_ADMINS or owner_agency == agency_id
