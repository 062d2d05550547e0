"""Versioned rules files: data an organisation may change, validated whole into typed models at start.

A service keeps its files in ``<service>/rules/`` and describes each with a ``RulesFile`` model; a
setting may point at an organisation's own copy. A file that does not fit its model stops the
service at start with where and why, never later in the middle of an event.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from careloop_shared.body import JsonTypes
from careloop_shared.errors import SafeMessageError


class RulesFile(BaseModel):
    """Base of every rules file: a version, recorded with what the rules decided."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str


class Rule(JsonTypes):
    """A part of a rules file (some are request bodies too, e.g. a directory entry): JSON types as they
    are (``careloop_shared.body``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


R = TypeVar("R", bound=RulesFile)


class InvalidRulesFile(SafeMessageError):
    def __init__(self, path: Path, error: ValidationError) -> None:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in error.errors())
        super().__init__(f"rules file {path} does not fit {error.title}: {where}")


def load_rules(model: type[R], path: Path) -> R:
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise InvalidRulesFile(path, exc) from None
