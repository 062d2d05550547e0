"""Request bodies take JSON's types as they are: ``Body`` is the base of every model a route reads.

Pydantic's lax mode turns ``0`` into a date (the epoch), ``"1"`` into a number and ``0`` into
``false``; from a client that is a mistake to point out, not to guess at. A field declared a boolean
takes ``true`` or ``false``, a number takes a JSON number, a date or a time takes a string (ISO 8601),
text takes a string; anything else is a 422 at that field. Pydantic's strict mode cannot do this here:
FastAPI validates the decoded body as Python, where strict mode refuses the strings a date is sent as.
"""

from __future__ import annotations

import enum
import re
import types
import uuid
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

_AS_TEXT = (date, datetime, time, timedelta, uuid.UUID, str)
_JSON_NAME = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
              list: "an array", dict: "an object"}  # fmt: skip


# Text that is to be a day or a time starts as ISO 8601 does (2026-12-01): pydantic would read "0.5" as
# half a second past 1970, and "0" as the first day of that year.
_WRITTEN_AS_A_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NOT_ISO = PydanticCustomError("date_format", "should be a day or a time in ISO 8601, such as 2026-12-01")


def _is_a_day(text: str) -> bool:
    return _WRITTEN_AS_A_DAY.match(text) is not None


@cache
def json_kinds(annotation: Any) -> frozenset[type] | None:
    """The JSON value types (as Python decodes them) a field of ``annotation`` takes; None: any."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return json_kinds(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kinds: set[type] = set()
        for arg in get_args(annotation):
            if arg is type(None):
                continue
            sub = json_kinds(arg)
            if sub is None:
                return None
            kinds |= sub
        return frozenset(kinds)
    if origin is Literal:
        return frozenset(type(v) for v in get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        return frozenset({list})
    if origin is dict:
        return frozenset({dict})
    if isinstance(annotation, type):
        if annotation is bool:
            return frozenset({bool})
        if issubclass(annotation, enum.Enum):
            return frozenset({annotation, *(type(m.value) for m in annotation)})
        if annotation is int:
            return frozenset({int})
        if annotation is float:
            return frozenset({int, float})
        if issubclass(annotation, _AS_TEXT):
            return frozenset({str, annotation})  # the object itself: built in code, never from JSON
        if issubclass(annotation, BaseModel):
            return frozenset({dict, annotation})
    return None


def _kind_ok(value: Any, kinds: frozenset[type]) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, never to JSON
        return bool in kinds
    return isinstance(value, tuple(kinds))


class JsonTypes(BaseModel):
    """Mixin: each field's value must be of the JSON type its declaration names (a day or a time: text in
    ISO 8601)."""

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        problems = []
        for name, field in cls.model_fields.items():
            value = data.get(field.alias or name, None)
            annotation: Any = field.annotation
            kinds = json_kinds(annotation) if value is not None and annotation is not None else None
            if kinds is None or _kind_ok(value, kinds):
                if kinds and isinstance(value, str) and kinds & {date, datetime} and not _is_a_day(value):
                    problems.append(InitErrorDetails(type=_NOT_ISO, loc=(field.alias or name,), input=value))
                continue
            wanted = " or ".join(sorted({_JSON_NAME[k] for k in kinds if k in _JSON_NAME}))
            problems.append(
                InitErrorDetails(
                    type=PydanticCustomError("json_type", "should be {wanted}", {"wanted": wanted}),
                    loc=(field.alias or name,),
                    input=value,
                )
            )
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return data


class Body(JsonTypes):
    """A request body: JSON types as they are, and no field the route does not know."""

    model_config = ConfigDict(extra="forbid")


# The times a client may send: the years 1900 to 2999. PostgreSQL's driver (asyncpg) stores
# 0001-01-01T00:00Z and 9999-12-31T23:59:59.999999Z as -infinity and infinity and reads them back
# without an offset (a consent starting then broke every page that showed it), and a time an offset
# away from either end has no UTC form in Python at all.
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=UTC)


# PostgreSQL's integer: no count, version or offset a client sends, nor any number an event carries, is
# beyond it (``http``, ``events.not_kept``).
MAX_INT = 2**31 - 1
MIN_INT = -(2**31)


def as_utc_if_naive(value: datetime) -> datetime:
    """A time without an offset taken as UTC, as PostgreSQL would store it."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def in_the_years_kept(value: datetime) -> bool:
    """Whether the time (one without an offset taken as UTC) lies in the years 1900 to 2999."""
    try:
        return EARLIEST_TIME <= as_utc_if_naive(value) < LATEST_TIME
    except OverflowError:  # its offset takes it past the first or the last day Python can name
        return False


def _in_the_years_kept(value: datetime) -> datetime:
    if not in_the_years_kept(value):
        raise PydanticCustomError("time_out_of_range", "should be a time in the years 1900 to 2999")
    return as_utc_if_naive(value)


def _written_as_a_time(value: Any) -> Any:
    """A time in a URL is written in ISO 8601 too (``JsonTypes`` sees to a body's)."""
    if isinstance(value, str) and not _is_a_day(value):
        raise _NOT_ISO
    return value


# A time in a request (its body or its URL): ISO 8601, in the years 1900 to 2999; one sent without an
# offset is taken as UTC (as PostgreSQL would store it), so that two times of one request always compare.
Moment = Annotated[datetime, BeforeValidator(_written_as_a_time), AfterValidator(_in_the_years_kept)]
# The same, its offset required.
AwareMoment = Annotated[
    AwareDatetime, BeforeValidator(_written_as_a_time), AfterValidator(_in_the_years_kept)
]
