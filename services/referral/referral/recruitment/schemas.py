"""HTTP bodies of the recruitment pipeline: a prospect as saved and shown, and a move along it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from careloop_shared.body import Body
from referral.domain.directory import Code
from referral.domain.recruitment import Prospect, ProspectStatus


class ProspectIn(Prospect):
    """A prospective provider: who they are, what they would serve, who in the network is on it."""


class ProspectOut(Prospect):
    model_config = ConfigDict(extra="ignore")

    # Shown as stored: a value saved under an earlier, looser rule must not fail the answer.
    url: str | None = None
    email: str | None = None
    owner_id: str
    status: ProspectStatus
    status_reason: str | None = Field(None, description="Why it was declined (a code).")
    created_at: datetime
    updated_at: datetime
    changed_by: str = Field(description="The person who last changed it (their subject id).")
    changed_by_role: str


class ProspectHistoryEntry(BaseModel):
    from_status: str | None
    to_status: str
    reason: str | None
    note: str | None
    by_subject: str
    by_role: str
    by_agency_id: str
    changed_at: datetime


class ProspectDetail(ProspectOut):
    history: list[ProspectHistoryEntry]


class ProspectStatusIn(Body):
    status: ProspectStatus
    reason: Code | None = Field(
        None,
        description="Required to decline: not-interested, not-eligible, no-capacity, unreachable,"
        " duplicate, other.",
    )
    note: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Free text for the prospect's history."
    )


class ProspectStatusChanged(BaseModel):
    prospect: ProspectDetail
    service_ids: list[str] = Field(
        default_factory=list, description="The directory programs an activated prospect became."
    )
    referred: int | None = Field(
        None, description="Once active: patients' interventions waiting on a gap it fills, referred now."
    )
