"""The recruitment pipeline: prospective providers brought into the directory. Pure: no I/O.

A prospect moves ``prospect -> contacted -> onboarding -> active``, or is ``declined`` at any step
before it is active. Activated, it becomes a directory organisation with one service (program) per
category it serves, described as the prospect described it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from careloop_shared.contact import Email, Phone, Url
from careloop_shared.errors import Conflict, Invalid, problem
from careloop_shared.rules import Rule
from referral.domain.directory import (
    Code,
    Contact,
    Eligibility,
    Id,
    Language,
    Organization,
    PostalPrefix,
    Service,
    Short,
    Text,
)

ProspectStatus = Literal["prospect", "contacted", "onboarding", "active", "declined"]

# status -> the statuses it may move to. Active and declined are final.
MOVES: dict[str, frozenset[str]] = {
    "prospect": frozenset({"contacted", "declined"}),
    "contacted": frozenset({"onboarding", "declined"}),
    "onboarding": frozenset({"active", "declined"}),
    "active": frozenset(),
    "declined": frozenset(),
}
FINAL = frozenset(s for s, moves in MOVES.items() if not moves)
DECLINE_REASONS = frozenset(
    {"not-interested", "not-eligible", "no-capacity", "unreachable", "duplicate", "other"}
)


class Prospect(Rule):
    """A provider the network would like to have: who they are and what they would serve."""

    id: Id = Field(description="Also the id of the organisation it becomes in the directory.")
    name: Short
    agency_id: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="The careloop agency that will answer its referrals; needed to activate it."
    )
    description: Text | None = None
    url: Url | None = None
    email: Email | None = None
    phone: Phone | None = None
    program_categories: list[Code] = Field(min_length=1, max_length=10)
    needs: list[Code] = Field(default_factory=list, max_length=50, description="Needs it would address.")
    languages: list[Language] = Field(default_factory=lambda: ["en"], min_length=1, max_length=50)
    interpretation_services: bool = False
    postal_prefixes: list[PostalPrefix] = Field(
        max_length=200, default_factory=list, description="The area it would serve; empty means everywhere."
    )
    owner_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="The staff member responsible (their subject id); the person adding it if unset."
    )
    notes: Annotated[str, Field(max_length=4000)] | None = Field(
        None, description="The recruiter's notes; kept in referral's database only."
    )


class IllegalMove(Conflict):
    """The pipeline has no such move (HTTP 409)."""


def check_move(current: str, to: str, *, reason: str | None) -> None:
    """Raise unless a prospect may move from ``current`` to ``to`` (a decline says why, in a code)."""
    if to not in MOVES.get(current, frozenset()):
        raise IllegalMove(f"a prospect that is {current} cannot become {to}")
    if to == "declined" and reason not in DECLINE_REASONS:
        raise Invalid([problem(["body", "reason"], "invalid_change", "a decline needs a known reason code")])
    if to != "declined" and reason is not None:
        raise Invalid([problem(["body", "reason"], "invalid_change", "only a decline takes a reason")])


def service_id(prospect_id: str, category: str) -> str:
    """The id of the program the prospect runs in ``category`` (a directory id: at most 80 characters)."""
    return f"{prospect_id}-{category}"[:80].rstrip("-")


def _cannot_activate(type_: str, msg: str) -> Invalid:
    return Invalid([problem(["body", "status"], type_, msg)])


def directory_entries(prospect: Prospect) -> tuple[Organization, list[Service]]:
    """The organisation and programs an activated prospect becomes, taking referrals from now on."""
    if prospect.agency_id is None:
        raise _cannot_activate(
            "missing_agency", "a prospect needs the agency_id that will answer its referrals to be active"
        )
    categories = list(dict.fromkeys(prospect.program_categories))
    if len({service_id(prospect.id, c) for c in categories}) < len(categories):
        raise _cannot_activate("id_too_long", "the prospect's id is too long to name a program per category")
    organization = Organization(
        id=prospect.id,
        agency_id=prospect.agency_id,
        name=prospect.name,
        description=prospect.description,
        url=prospect.url,
        email=prospect.email,
        phone=prospect.phone,
    )
    services = [
        Service(
            id=service_id(prospect.id, category),
            organization_id=prospect.id,
            name=prospect.name,
            program_category=category,
            needs=prospect.needs,
            languages=prospect.languages,
            interpretation_services=prospect.interpretation_services,
            eligibility=Eligibility(postal_prefixes=prospect.postal_prefixes),
            contact=Contact(email=prospect.email, phone=prospect.phone, url=prospect.url),
        )
        for category in categories
    ]
    return organization, services
