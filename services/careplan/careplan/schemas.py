"""HTTP request and response bodies of careplan."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from careloop_shared.body import Body
from careloop_shared.http import MAX_INT
from careplan.domain.plan import PlanDocument
from careplan.domain.versions import GoalAchievement

Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,63}$")]


ChangedBy = Annotated[str, Field(description="The role of whoever made this version; system for careloop.")]
ChangedBySubject = Annotated[
    str | None,
    Field(
        description="The person who made this version (their identity provider's subject id); null when"
        " careloop made it on its own, or for a version from before people were recorded."
    ),
]
Person = Annotated[
    str | None,
    Field(description="A person (their subject id); null on a record from before people were recorded."),
]
PersonsRole = Annotated[str | None, Field(description="Their careloop role: care-manager, supervisor, ...")]


class CarePlanOut(BaseModel):
    plan_id: uuid.UUID
    patient_id: uuid.UUID
    version: int
    status: str
    reason: str
    changed_by: ChangedBy
    changed_by_subject: ChangedBySubject = None
    created_at: datetime
    document: PlanDocument


class VersionOut(BaseModel):
    version: int
    status: str
    reason: str
    changed_by: ChangedBy
    changed_by_subject: ChangedBySubject = None
    created_at: datetime


class DiffOut(BaseModel):
    from_version: int
    to_version: int
    changes: dict[str, Any]


class StatusIn(Body):
    status: Literal["draft", "active", "on-hold", "revoked", "completed"]
    expected_version: int = Field(ge=1, le=MAX_INT)


ActivityStatus = Literal[
    "not-started", "scheduled", "in-progress", "on-hold", "completed", "stopped", "cancelled"
]
GoalLifecycle = Literal["active", "accepted", "on-hold", "completed", "cancelled"]


class InterventionStatusIn(Body):
    status: ActivityStatus = Field(description="FHIR CarePlan.activity.detail.status.")
    expected_version: int = Field(ge=1, le=MAX_INT)


class GoalStatusIn(Body):
    lifecycle_status: GoalLifecycle | None = Field(None, description="FHIR Goal.lifecycleStatus.")
    achievement_status: GoalAchievement | None = Field(None, description="FHIR Goal.achievementStatus.")
    expected_version: int = Field(ge=1, le=MAX_INT)

    @model_validator(mode="after")
    def _says_something(self) -> GoalStatusIn:
        if self.lifecycle_status is None and self.achievement_status is None:
            raise ValueError("say the goal's lifecycle_status, its achievement_status, or both")
        return self


class MemberIn(Body):
    name: str = Field(min_length=1, max_length=200)
    relationship: Code = Field(description="care-manager, patient, family, friend, neighbour, other-support")
    role: Code = Field(description="e.g. primary-support, decision-maker, transport-helper")
    contact: str | None = Field(None, max_length=200)


class MemberPatch(Body):
    relationship: Code | None = None
    role: Code | None = None
    contact: str | None = Field(None, max_length=200)
    name: str | None = Field(None, min_length=1, max_length=200)


class MemberOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    name: str
    relationship: str
    role: str
    contact: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    created_by_subject: Person = None  # who added the member
    created_by_role: PersonsRole = None
    updated_by_subject: Person = None  # who changed the member last
    updated_by_role: PersonsRole = None


class Preference(Body):
    preferred_language: str | None = Field(None, pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
    contact_preference: Literal["phone", "text", "email", "do-not-contact"] | None = None


ContributionKind = Literal[
    "note", "agreed-goal", "preference", "stated-need", "need-withdrawn", "personal-goal", "goal-reworded"
]


class ContributionIn(Body):
    member_id: uuid.UUID
    kind: ContributionKind
    expected_version: int = Field(ge=1, le=MAX_INT)
    note: str | None = Field(
        None,
        max_length=4000,
        description="Kept in careplan only, sealed, never in events; for personal-goal, the goal in the"
        " patient's own words; for goal-reworded, its new words.",
    )
    goal_id: uuid.UUID | None = None
    preference: Preference | None = None
    need: Code | None = Field(
        None,
        description="stated-need: a need the plan library names, raised by the patient or family;"
        " need-withdrawn: a need raised so, no longer theirs (409 if none was raised);"
        " personal-goal: the library's need the goal is about, if any.",
    )
    due: AwareDatetime | None = Field(
        None, description="personal-goal: when it is due (in the future); by default the plan library's."
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> ContributionIn:
        part = {
            "note": "note",
            "agreed-goal": "goal_id",
            "preference": "preference",
            "stated-need": "need",
            "need-withdrawn": "need",
            "personal-goal": "note",
            "goal-reworded": "note",
        }
        if getattr(self, part[self.kind]) is None:
            raise ValueError(f"a {self.kind} contribution needs its {part[self.kind]}")
        if self.due is not None and self.kind != "personal-goal":
            raise ValueError("only a personal-goal contribution names a due time")
        if self.kind in ("personal-goal", "goal-reworded") and not (self.note or "").strip():
            raise ValueError(f"a {self.kind} contribution needs the patient's words")
        if self.kind == "goal-reworded" and self.goal_id is None:
            raise ValueError("a goal-reworded contribution names the goal (goal_id)")
        if self.preference is not None and not self.preference.model_dump(exclude_none=True):
            raise ValueError("a preference names a language or a contact preference")
        return self


class ServiceRequestIn(Body):
    service_code: Code
    expected_version: int = Field(ge=1, le=MAX_INT)


class ChoiceIn(Body):
    alternative: Code
    expected_version: int = Field(ge=1, le=MAX_INT)


class EducationIn(Body):
    materials: list[Code] | None = Field(
        None,
        max_length=50,
        description="Material ids given (edu-<topic>-<language>); by default the intervention's own, else"
        " the one explaining its need.",
    )
    channel: Literal["in-person", "phone", "text", "email", "mail"] | None = Field(
        None, description="How it was given."
    )
    teach_back_confirmed: bool | None = Field(
        None, description="Whether the patient explained it back in their own words (teach-back)."
    )


class MaterialOut(BaseModel):
    material_id: str = Field(description="The id of the text shown: edu-<topic>-<language>.")
    topic: str
    title: str
    version: str
    reviewed: date
    language: str = Field(description="The language of the text shown.")
    requested_language: str
    fell_back: bool = Field(description="Not written in the language asked for: shown in the fallback one.")
    note: str | None = Field(None, description="Says so when the text is not in the language asked for.")
    markdown: str


class MaterialInLanguage(BaseModel):
    material_id: str
    language: str
    title: str
    version: str
    reviewed: date


class TopicOut(BaseModel):
    topic: str
    materials: list[MaterialInLanguage] = Field(description="The topic's text in each language.")


class ContributionOut(BaseModel):
    id: uuid.UUID
    member_id: uuid.UUID
    member_relationship: str
    member_role: str
    kind: str
    note: str | None
    goal_id: uuid.UUID | None
    preference: dict[str, str] | None
    need: str | None = None
    plan_version: int
    created_at: datetime
    recorded_by_subject: Person = None  # who recorded it
    recorded_by_role: PersonsRole = None


class VersionRef(BaseModel):
    plan_version: int

    @classmethod
    def of(cls, version: int) -> VersionRef:
        return cls(plan_version=version)


class ServiceRequestOut(BaseModel):
    id: uuid.UUID
    service_code: str
    met: bool
    failed_criteria: list[str]
    alternatives: list[str]
    criteria_version: str
    chosen_alternative: str | None
    chosen_at: datetime | None
    created_at: datetime
    requested_by_subject: Person = None
    requested_by_role: PersonsRole = None
    chosen_by_subject: Person = None
    chosen_by_role: PersonsRole = None
