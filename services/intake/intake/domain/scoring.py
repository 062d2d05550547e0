"""Scoring of screening instruments, driven by a versioned rules file. Pure: no I/O here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "screening.v1.json"


class InvalidAnswers(ValueError):
    """Answers that do not fit the instrument. Each problem names the item, never the value."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s) with the answers")
        self.problems = problems


@dataclass(frozen=True)
class Score:
    instrument: str
    rules_version: str
    total: int
    risk_level: str
    needs: list[dict[str, Any]]
    urgent_flags: list[str]


@dataclass(frozen=True)
class Rules:
    version: str
    instruments: dict[str, Any]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> Rules:
        data = json.loads(path.read_text())
        return cls(version=data["version"], instruments=data["instruments"])


def score(rules: Rules, instrument: str, answers: dict[str, Any]) -> Score:
    spec = rules.instruments.get(instrument)
    if spec is None:
        raise InvalidAnswers([{"item": "instrument", "reason": "unknown instrument"}])
    problems: list[dict[str, str]] = []
    items: dict[str, Any] = spec["items"]
    for item in sorted(set(items) - set(answers)):
        problems.append({"item": item, "reason": "missing"})
    for item in sorted(set(answers) - set(items)):
        problems.append({"item": item, "reason": "not an item of this instrument"})
    for item, bounds in items.items():
        value = answers.get(item)
        if item not in answers:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append({"item": item, "reason": "must be an integer"})
        elif not bounds["min"] <= value <= bounds["max"]:
            problems.append({"item": item, "reason": f"must be {bounds['min']}..{bounds['max']}"})
    if problems:
        raise InvalidAnswers(problems)
    total = sum(answers[i] for i in items)
    band = next(b for b in spec["bands"] if b["min"] <= total <= b["max"])
    return Score(
        instrument=instrument,
        rules_version=rules.version,
        total=total,
        risk_level=band["risk"],
        needs=list(band["needs"]),
        urgent_flags=list(band.get("urgent_flags", [])),
    )
