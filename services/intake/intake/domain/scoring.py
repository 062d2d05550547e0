"""Scoring of screening instruments, driven by a versioned rules file. Pure: no I/O here.

The rules file says, per instrument: its items (a 0-3 style score, or a LOINC answer code that may carry
points), totals over items with interpretation bands, need domains with their conditions, urgent flags,
and how needs map to an overall risk level. Changing a threshold is a data change, not a code change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "screening.v1.json"
_LOINC = re.compile(r"^[0-9]{1,7}-[0-9]$")
UNRECOGNISED_ITEM = "<not a LOINC item code>"


class InvalidAnswers(ValueError):
    """Answers that do not fit the instrument. Each problem names the item, never the value."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s) with the answers")
        self.problems = problems


@dataclass(frozen=True)
class Score:
    instrument: str
    rules_version: str
    observations: list[dict[str, Any]]
    total: int | None
    interpretation: str | None
    needs: list[dict[str, Any]]
    risk_level: str
    urgent_flags: list[str]
    recommended_instruments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rules:
    version: str
    risk_levels: tuple[str, ...]
    instruments: dict[str, Any]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> Rules:
        data = json.loads(path.read_text())
        return cls(data["version"], tuple(data["risk_levels"]), data["instruments"])


def _problem(item: str, reason: str) -> dict[str, str]:
    return {"item": item, "reason": reason}


def _check_item(item: str, spec: dict[str, Any], value: Any) -> dict[str, str] | None:
    if spec["type"] == "score":
        if not isinstance(value, int) or isinstance(value, bool):
            return _problem(item, "must be an integer score")
        if not spec["min"] <= value <= spec["max"]:
            return _problem(item, f"must be between {spec['min']} and {spec['max']}")
        return None
    allowed = spec["answers"]
    if spec.get("multiple"):
        codes = [value] if isinstance(value, str) else value
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            return _problem(item, "must be a LOINC answer code or a non-empty list of them")
        if len(set(codes)) != len(codes):
            return _problem(item, "lists an answer twice")
        if any(c not in allowed for c in codes):
            return _problem(item, "is not an answer code of this item")
        if len(codes) > 1 and set(codes) & set(spec.get("exclusive", [])):
            return _problem(item, "combines an exclusive answer with others")
        return None
    if not isinstance(value, str):
        return _problem(item, "must be a LOINC answer code")
    if value not in allowed:
        return _problem(item, "is not an answer code of this item")
    return None


def _validate(spec: dict[str, Any], answers: dict[str, Any]) -> None:
    items: dict[str, Any] = spec["items"]
    problems = [_problem(i, "missing") for i in items if i not in answers]
    # An unknown key is only named when it is shaped like a LOINC code: it could be anything typed.
    problems += [
        _problem(i if _LOINC.match(i) else UNRECOGNISED_ITEM, "not an item of this instrument")
        for i in answers
        if i not in items
    ]
    problems += [p for i, s in items.items() if i in answers and (p := _check_item(i, s, answers[i]))]
    if problems:
        raise InvalidAnswers(problems)


def _points(spec: dict[str, Any], value: Any) -> int | None:
    if spec["type"] == "score":
        return int(value)
    if spec.get("multiple"):
        return None
    points = spec["answers"][value]
    return None if points is None else int(points)


def _answered_codes(value: Any) -> set[str]:
    return {value} if isinstance(value, str) else set(value) if isinstance(value, list) else set()


def _condition_holds(cond: dict[str, Any], answers: dict[str, Any], totals: dict[str, int]) -> bool:
    if "total" in cond:
        return totals[cond["total"]] > cond["greater_than"]
    codes = _answered_codes(answers[cond["item"]])
    if "in" in cond:
        return bool(codes & set(cond["in"]))
    return bool(codes - set(cond["not_in"]))


def score(rules: Rules, instrument: str, answers: dict[str, Any]) -> Score:
    spec = rules.instruments.get(instrument)
    if spec is None:
        raise InvalidAnswers([_problem("instrument", "unknown instrument")])
    _validate(spec, answers)
    items: dict[str, Any] = spec["items"]

    observations: list[dict[str, Any]] = []
    for item, item_spec in items.items():
        observation: dict[str, Any] = {"code": item, "value": answers[item]}
        points = _points(item_spec, answers[item])
        if item_spec["type"] == "choice" and points is not None:
            observation["points"] = points
        observations.append(observation)

    totals: dict[str, int] = {}
    needs: list[dict[str, Any]] = []
    risks = ["low"]
    recommended: list[str] = []
    primary_total: int | None = None
    interpretation: str | None = None
    for total_spec in spec.get("totals", []):
        value = sum(_points(items[i], answers[i]) or 0 for i in total_spec["items"])
        totals[total_spec["code"]] = value
        observation = {"code": total_spec["code"], "value": value}
        band = next((b for b in total_spec.get("bands", []) if b["min"] <= value <= b["max"]), None)
        if band is not None:
            observation["interpretation"] = band["interpretation"]
            needs += band.get("needs", [])
            risks.append(band["risk"])
            recommended += band.get("recommend", [])
            if primary_total is None:
                primary_total, interpretation = value, band["interpretation"]
        observations.append(observation)

    for domain in spec.get("domains", []):
        if any(_condition_holds(c, answers, totals) for c in domain["when_any"]):
            needs.append({"code": domain["need"], "severity": domain.get("severity")})

    need_codes = {n["code"] for n in needs}
    for rule in spec.get("risk", []):
        if "when_any_need" in rule and not need_codes & set(rule["when_any_need"]):
            continue
        if "when_min_needs" in rule and len(need_codes) < rule["when_min_needs"]:
            continue
        if "when_any" in rule and not any(_condition_holds(c, answers, totals) for c in rule["when_any"]):
            continue
        risks.append(rule["risk"])
        break  # the first rule that holds decides

    urgent_flags = [
        flag["flag"]
        for flag in spec.get("urgent_flags", [])
        if (_points(items[flag["item"]], answers[flag["item"]]) or 0) >= flag["min_points"]
    ]
    if urgent_flags:
        risks.append("urgent")
    return Score(
        instrument=instrument,
        rules_version=rules.version,
        observations=observations,
        total=primary_total if primary_total is not None else next(iter(totals.values()), None),
        interpretation=interpretation,
        needs=needs,
        risk_level=max(risks, key=rules.risk_levels.index),
        urgent_flags=urgent_flags,
        recommended_instruments=recommended,
    )
