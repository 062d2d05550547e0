"""HTTP body of the network-gap report: counts by need, category, area and language, never a patient."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class GapGroup(BaseModel):
    need: str
    program_category: str | None
    postal_area: str | None = Field(description="The patients' postal area (a prefix), when known.")
    language: str | None = Field(description="The language they need served in, when known.")
    patients_waiting: int = Field(description="Patients waiting on an open gap in this group.")
    interventions_waiting: int = Field(description="Their plan interventions waiting for a program.")
    oldest_waiting_since: datetime = Field(description="Since when the longest-waiting one has waited.")
