"""HTTP body of a referral made by hand."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field

from careloop_shared.body import Body
from referral.domain.directory import Code, Id


class ReferralIn(Body):
    patient_id: uuid.UUID
    intervention_id: uuid.UUID = Field(description="An intervention of the patient's current care plan.")
    service_id: Id = Field(description="The program chosen (from GET /v1/services).")
    need: Code | None = Field(None, description="The need referred for; the intervention's when not given.")
    priority: Literal["routine", "urgent", "asap", "stat"] | None = Field(
        None, description="FHIR request priority; the intervention's when not given."
    )
    note: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Free text for the referral's history, kept in referral's database only."
    )
