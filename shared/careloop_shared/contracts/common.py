"""Parts several event contracts share: risk levels, needs, LOINC observations, contact preferences."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from careloop_shared.body import EARLIEST_TIME, LATEST_TIME


class Part(BaseModel):
    """A value inside an event body: immutable, tolerant of fields it does not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# A time an event carries: in the years 1900 to 2999, as every time a client sends careloop is. Checked as
# the event is read (pydantic-core compares, at no cost worth measuring), so a time at the calendar's ends,
# which PostgreSQL would keep as -infinity or infinity and give back without an offset, is refused as
# invalid before any service keeps it. The published schemas do not change: a date-time, as before.
EventTime = Annotated[datetime, Field(ge=EARLIEST_TIME, lt=LATEST_TIME)]


class RiskLevel(StrEnum):
    low = "low"
    moderate = "moderate"
    high = "high"
    urgent = "urgent"


class Need(Part):
    code: str = Field(description="Gravity SDOH domain code or clinical need, e.g. food-insecurity.")
    severity: str | None = Field(None, description="Severity band where the instrument has one.")


class Observation(Part):
    """One answered item or a derived total, coded in LOINC."""

    code: str = Field(description="LOINC code of the item or total, e.g. 44261-6 (PHQ-9 total).")
    system: str = "http://loinc.org"
    value: int | str | list[str] = Field(description="Score, LOINC answer code, or answer codes.")
    points: int | None = Field(None, description="Points an answer code scores, where it scores.")
    interpretation: str | None = Field(None, description="Band of a total, e.g. moderate.")


class ContactPreference(StrEnum):
    phone = "phone"
    text = "text"
    email = "email"
    do_not_contact = "do-not-contact"


# Who made a change an event announces: a staff member's id, never a patient identifier.
ActorId = Annotated[
    str | None,
    Field(
        description="The staff member who made the change: their identity provider's subject id (the"
        " token's sub), never a patient identifier. Null when careloop did it on its own."
    ),
]
ActorRole = Annotated[str | None, Field(description="Their careloop role: care-manager, provider, ...")]


class ContactChannel(StrEnum):
    """A way careloop may reach a patient."""

    phone = "phone"
    text = "text"
    email = "email"
    in_person = "in-person"


SafeChannels = Annotated[
    list[ContactChannel] | None,
    Field(
        description="The channels the patient marked safe to be contacted through (an interpersonal-safety"
        " need is never followed up through another). Null when the patient has not said."
    ),
]
