"""Choosing a program for a referral from the directory. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED_DIRECTORY = Path(__file__).resolve().parent.parent / "directory" / "seed.v1.json"


@dataclass(frozen=True)
class Program:
    id: str
    agency_id: str
    name: str
    category: str


@dataclass(frozen=True)
class Directory:
    version: str
    programs: tuple[Program, ...]
    response_deadline_days: float

    @classmethod
    def load(cls, path: Path | None = None) -> Directory:
        data: dict[str, Any] = json.loads((path or SEED_DIRECTORY).read_text())
        return cls(
            data["version"],
            tuple(Program(**p) for p in data["programs"]),
            data["response_deadline_days"],
        )


def best_program(directory: Directory, category: str | None) -> Program | None:
    """The first program of the category; richer ranking comes with the directory issue."""
    return next((p for p in directory.programs if p.category == category), None)
