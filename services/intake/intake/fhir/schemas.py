"""Bodies of intake's FHIR routes: the ``QuestionnaireResponse`` it imports, and the search parameters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict

from careloop_shared.body import Body, Moment
from careloop_shared.fhir import UUID_PATTERN

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
