"""What a receiving agency is shown of a patient referred to it: the minimum necessary to act."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from careloop_shared.contracts import ContactPreference


class ReferralReason(BaseModel):
    referral_id: uuid.UUID
    need: str = Field(description="The need referred for, e.g. food-insecurity.")
    program_category: str | None = Field(None, description="The kind of program, e.g. food-assistance.")


class ReferredPatientOut(BaseModel):
    """Name, language and the one way of contact the patient prefers; nothing else of the case."""

    patient_id: uuid.UUID
    given_name: str
    family_name: str
    preferred_language: str
    contact_preference: ContactPreference
    phone: str | None = Field(description="Only when they prefer a call or a text.")
    email: str | None = Field(description="Only when they prefer email.")
    referrals: list[ReferralReason] = Field(
        description="The open referrals to the caller's agency that allow seeing the patient."
    )
