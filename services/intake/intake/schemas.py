"""HTTP request and response bodies of intake."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict

from careloop_shared.body import Body, Moment
from careloop_shared.contact import Email, Phone
from careloop_shared.contracts import ContactChannel, ContactPreference
from intake.domain.patients import contact_problems

Language = Annotated[str, Field(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$", max_length=35)]
PostalCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,11}$")]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(str.strip)]
StaffId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^\S+$",
        description="A staff member's id at the identity provider (the token's sub).",
    ),
]
SafeChannelsIn = Annotated[
    list[ContactChannel] | None,
    Field(
        max_length=len(ContactChannel),
        description="The channels the patient marked safe to be contacted through; null: not said.",
    ),
]


def _not_in_future(value: date) -> date:
    if value > date.today():
        raise ValueError("birth date is in the future")
    return value


# The rules of contact_problems, for clients: a phone to call or text, an email to write to.
REACHABLE_AS_PREFERRED: JsonDict = {
    "allOf": [
        {
            "if": {"properties": {"contact_preference": {"enum": ["phone", "text"]}}},
            "then": {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
        },
        {
            "if": {
                "properties": {"contact_preference": {"const": "email"}},
                "required": ["contact_preference"],
            },
            "then": {"required": ["email"], "properties": {"email": {"type": "string"}}},
        },
    ]
}


class PatientIn(Body):
    """A phone number is required when the contact preference is phone or text (the default is phone),
    an email address when it is email."""

    model_config = ConfigDict(json_schema_extra=REACHABLE_AS_PREFERRED)
    given_name: Name
    family_name: Name
    birth_date: Annotated[date, AfterValidator(_not_in_future)]
    preferred_language: Language = "en"
    contact_preference: ContactPreference = ContactPreference.phone
    phone: Phone | None = None
    email: Email | None = None
    postal_code: PostalCode | None = None
    care_manager_id: StaffId | None = Field(
        None, description="The responsible care manager; defaults to the registering care manager."
    )
    safe_channels: SafeChannelsIn = None

    @model_validator(mode="after")
    def _reachable_as_preferred(self) -> PatientIn:
        problems = contact_problems(self.contact_preference.value, self.phone, self.email)
        if problems:
            raise ValueError(problems[0])
        return self


class PatientSearch(Body):
    """Whom to look for, as a front desk asks: the whole name and the birth date. Matched as registration
    matches a likely duplicate (accents, case, punctuation and spacing aside), never by part of a name."""

    given_name: Name
    family_name: Name
    birth_date: date


class PatientPatch(Body):
    """Only the fields present change; ``null`` clears an optional contact detail or the safe channels.
    The care manager changes by reassignment (``POST /v1/patients/{id}/care-manager``), not here."""

    given_name: Name | None = None
    family_name: Name | None = None
    birth_date: Annotated[date, AfterValidator(_not_in_future)] | None = None
    preferred_language: Language | None = None
    contact_preference: ContactPreference | None = None
    phone: Phone | None = None
    email: Email | None = None
    postal_code: PostalCode | None = None
    safe_channels: SafeChannelsIn = None


class PatientOut(BaseModel):
    id: uuid.UUID
    given_name: str
    family_name: str
    birth_date: date
    preferred_language: str
    contact_preference: ContactPreference
    phone: str | None
    email: str | None
    postal_code: str | None
    care_manager_id: str | None = Field(
        description="The responsible care manager; null before this was kept."
    )
    safe_channels: list[ContactChannel] | None = Field(
        description="The channels the patient marked safe to be contacted through; null: not said."
    )
    created_at: datetime
    updated_at: datetime


class ReassignmentIn(Body):
    care_manager_id: StaffId
    reason: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9-]{0,63}$",
        description="Coded, e.g. caseload-balance, staff-leave (rules/care-manager.v1.json).",
    )


class AssignmentOut(BaseModel):
    """The assignment in force: who is responsible for the patient, since when, made so by whom and why."""

    patient_id: uuid.UUID
    care_manager_id: str
    previous_care_manager_id: str | None = None
    reason: str | None = Field(None, description="registration or reassignment.")
    reason_code: str | None = Field(None, description="The supervisor's coded reason for a reassignment.")
    assigned_at: datetime | None = None
    assigned_by: str | None = None
    assigned_by_role: str | None = None


class Created(BaseModel):
    id: uuid.UUID


class ConsentIn(Body):
    """Names at least one agency or program category; a period_end, if given, after period_start."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["agencies"], "properties": {"agencies": {"minItems": 1}}},
                {"required": ["program_categories"], "properties": {"program_categories": {"minItems": 1}}},
            ]
        }
    )
    purpose: str = Field(pattern=r"^[a-z][a-z0-9-]{1,63}$", description="e.g. referral, care-coordination")
    agencies: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    program_categories: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    period_start: Moment | None = Field(None, description="Defaults to now.")
    period_end: Moment | None = None

    @model_validator(mode="after")
    def _meaningful(self) -> ConsentIn:
        if not self.agencies and not self.program_categories:
            raise ValueError("a consent names at least one agency or program category")
        if self.period_start and self.period_end and self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


class ConsentOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    purpose: str
    agencies: list[str]
    program_categories: list[str]
    period_start: datetime
    period_end: datetime | None
    status: str
    recorded_at: datetime
    revoked_at: datetime | None
    recorded_by: str | None = Field(
        None, description="Who recorded it (their subject id); null before this was kept."
    )
    recorded_by_role: str | None = None
    revoked_by: str | None = Field(None, description="Who revoked it (their subject id).")
    revoked_by_role: str | None = None


class AssessmentIn(Body):
    instrument: str = Field(max_length=50, description="phq-2, phq-9 or ahc-hrsn")
    answers: dict[Annotated[str, Field(max_length=20)], Any] = Field(
        description="Item LOINC code -> 0-3 score (PHQ) or LOINC answer code(s) (HRSN)."
    )


class AssessmentOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    instrument: str
    rules_version: str
    observations: list[dict[str, Any]]
    total_score: int | None
    interpretation: str | None
    needs: list[dict[str, Any]]
    risk_level: str
    urgent_flags: list[str]
    recommended_instruments: list[str]
    assessed_at: datetime
    assessed_by: str | None = Field(
        None, description="Who recorded the answers (their subject id); null before this was kept."
    )
    assessed_by_role: str | None = None
    erased: bool = Field(
        False,
        description="The patient's data was erased: the item-level answers are gone for good (their data key"
        " was destroyed); totals, needs and risk remain.",
    )


class ErasureIn(BaseModel):
    reason: str = Field(
        min_length=3,
        max_length=500,
        description="Why (e.g. the patient's request under state privacy law); kept in intake only, never in"
        " an event or a log.",
    )


class ErasureOut(BaseModel):
    patient_id: uuid.UUID
    erased_at: datetime


class DataKeyOut(BaseModel):
    """A patient's data key, released to a service that seals their sensitive text with it."""

    patient_id: uuid.UUID
    kid: str = Field(description="The key's id, `<patient id>/<version>`, as sealed values name it.")
    key: str = Field(description="The 32-byte AES-256-GCM key, base64. Never cache it past its use.")


class QuestionOption(BaseModel):
    value: int | str = Field(description="What to send as the answer: a score, or a LOINC answer code.")
    label: str


class Question(BaseModel):
    code: str = Field(description="The item's LOINC code: the key of its answer.")
    text: str
    type: str = Field(description="score or choice")
    multiple: bool = Field(description="Several answers may be chosen (send a list).")
    exclusive: list[str] = Field(default_factory=list, description="Answers that stand alone.")
    options: list[QuestionOption]


class QuestionnaireOut(BaseModel):
    """An instrument as a form asks it, from the rules that score it."""

    id: str
    title: str
    panel: str = Field(description="LOINC panel code.")
    rules_version: str
    language: str | None
    prompt: str | None
    items: list[Question]
