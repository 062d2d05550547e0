"""Bodies of intake's FHIR routes: the ``QuestionnaireResponse`` it imports, and the search parameters."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict

from careloop_shared.body import Body, Moment
from careloop_shared.fhir import UUID_PATTERN, SearchPage
from careloop_shared.http import MAX_INT
from intake.schemas import Name

ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"  # a FHIR resource id
FhirId = Annotated[str, Field(pattern=ID_PATTERN)]
_VALUES = ("valueInteger", "valueCoding")


class CodingIn(Body):
    system: str | None = Field(None, max_length=200)
    code: str = Field(min_length=1, max_length=64)
    display: str | None = Field(None, max_length=1000)


def _exactly_one_value(schema: JsonDict) -> None:
    props = schema["properties"]
    assert isinstance(props, dict)
    for name in _VALUES:  # present means a value: null is not one
        prop = props[name]
        assert isinstance(prop, dict)
        branches = prop.pop("anyOf", None)
        if isinstance(branches, list):
            prop.update(next(b for b in branches if isinstance(b, dict) and b.get("type") != "null"))
        prop.pop("default", None)
    schema["oneOf"] = [{"required": [name]} for name in _VALUES]


class AnswerIn(Body):
    """One answer: a score (``valueInteger``) or a LOINC answer code (``valueCoding``), not both."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_value)
    valueInteger: int | None = Field(None, ge=-(2**31), le=2**31 - 1)
    valueCoding: CodingIn | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and [n for n in _VALUES if n in data] != [
            n for n in _VALUES if data.get(n) is not None
        ]:
            raise ValueError("an answer value may not be null")
        if isinstance(data, dict) and sum(n in data for n in _VALUES) != 1:
            raise ValueError("an answer has exactly one of valueInteger or valueCoding")
        return data


class ItemIn(Body):
    linkId: str = Field(min_length=1, max_length=100, description="The item's LOINC code.")
    text: str | None = Field(None, max_length=2000)
    answer: list[AnswerIn] = Field(default_factory=list, max_length=20)
    item: list[ItemIn] = Field(default_factory=list, max_length=100, description="Items of a group.")


class ReferenceIn(Body):
    reference: str = Field(pattern=rf"^Patient/{UUID_PATTERN}$", description="Patient/<id> of your agency.")
    display: str | None = Field(None, max_length=200)


class QuestionnaireResponseIn(Body):
    """A completed screening to score: the instrument by ``questionnaire`` (the canonical url of the
    Questionnaire intake serves for it, ``urn:careloop:questionnaire:<instrument>``, or its address
    ``Questionnaire/<instrument>``), the patient by ``subject``, answers by LOINC ``linkId``."""

    resourceType: Literal["QuestionnaireResponse"]
    id: FhirId | None = None
    meta: dict[str, Any] | None = None
    language: str | None = Field(None, max_length=35)
    questionnaire: str = Field(
        min_length=1,
        max_length=300,
        description="urn:careloop:questionnaire:<instrument>[|<version>], or Questionnaire/<instrument>",
    )
    status: Literal["completed", "amended"]
    subject: ReferenceIn
    authored: Moment | None = None
    item: list[ItemIn] = Field(min_length=1, max_length=100)


def _birth_date(value: str) -> date:
    """FHIR's ``birthdate`` as careloop matches it: one whole day, with or without the ``eq`` prefix."""
    return date.fromisoformat(value.removeprefix("eq"))


class PatientSearchForm(BaseModel):
    """``POST Patient/_search``'s form: ``_id``, or the whole ``given`` and ``family`` name with the
    ``birthdate`` (all three), or neither (the agency's patients); ``_count`` and ``_offset`` page."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id_: uuid.UUID | None = Field(None, alias="_id", description="The patient's id.")
    given: Name | None = Field(None, description="The whole given name (with family and birthdate).")
    family: Name | None = Field(None, description="The whole family name (with given and birthdate).")
    birthdate: (
        Annotated[str, Field(pattern=r"^(eq)?\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, or eqYYYY-MM-DD.")]
        | None
    ) = None
    count: int = Field(50, ge=1, le=200, alias="_count")
    offset: int = Field(0, ge=0, le=MAX_INT, alias="_offset")

    @model_validator(mode="after")
    def _whole_name_and_day(self) -> PatientSearchForm:
        named = [self.given, self.family, self.birthdate]
        if any(v is not None for v in named) and not all(v is not None for v in named):
            raise ValueError("a search by name takes given, family and birthdate together")
        if self.birthdate is not None:
            try:
                _birth_date(self.birthdate)
            except ValueError:
                raise ValueError("birthdate is not a day of the calendar") from None
        return self

    @property
    def by_name(self) -> tuple[str, str, date] | None:
        """The given name, family name and birth date searched for, if they are."""
        if self.given is None or self.family is None or self.birthdate is None:
            return None
        return self.given, self.family, _birth_date(self.birthdate)

    @property
    def page(self) -> SearchPage:
        return SearchPage(_count=self.count, _offset=self.offset)
