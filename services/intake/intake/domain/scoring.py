"""Scoring of screening instruments, driven by a versioned rules file. Pure: no I/O here.

The rules file says, per instrument: its items (a 0-3 style score, or a LOINC answer code that may carry
points), totals over items with interpretation bands, need domains with their conditions, urgent flags,
and how needs map to an overall risk level. Changing a threshold is a data change, not a code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from careloop_shared.errors import Invalid, problem
from careloop_shared.rules import Rule, RulesFile

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "screening.v1.json"
_LOINC = re.compile(r"^[0-9]{1,7}-[0-9]$")
UNRECOGNISED_ITEM = "<not a LOINC item code>"


class InvalidAnswers(Invalid):
    """Answers that do not fit the instrument. Each problem names the item, never the value."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(
            [
                problem(
                    ["body", "instrument"] if p["item"] == "instrument" else ["body", "answers", p["item"]],
                    "invalid_answer",
                    p["reason"],
                )
                for p in problems
            ]
        )
        self.by_item = problems


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


class ScoreItem(Rule):
    """An item answered with a score, e.g. 0-3 on the PHQ."""

    type: Literal["score"]
    min: int
    max: int


class ChoiceItem(Rule):
    """An item answered with LOINC answer codes; an answer may carry points."""

    type: Literal["choice"]
    answers: dict[str, int | None]
    multiple: bool = False
    exclusive: list[str] = Field(default_factory=list)


Item = Annotated[ScoreItem | ChoiceItem, Field(discriminator="type")]


class NeedRef(Rule):
    code: str
    severity: str | None = None


class Band(Rule):
    min: int
    max: int
    interpretation: str
    risk: str
    needs: list[NeedRef] = Field(default_factory=list)
    recommend: list[str] = Field(default_factory=list)


class Total(Rule):
    code: str
    items: list[str]
    bands: list[Band] = Field(default_factory=list)


class Condition(Rule):
    """A total above a threshold, or an item answered with (or without) some codes."""

    total: str | None = None
    greater_than: int | None = None
    item: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    not_in: list[str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        forms = [
            self.total is not None and self.greater_than is not None,
            self.item is not None and (self.in_ is None) != (self.not_in is None),
        ]
        if forms.count(True) != 1:
            raise ValueError("a condition is either total+greater_than, or item with in or not_in")
        return self


class Domain(Rule):
    need: str
    severity: str | None = None
    when_any: list[Condition]


class RiskRule(Rule):
    risk: str
    when_any_need: list[str] | None = None
    when_min_needs: int | None = None
    when_any: list[Condition] | None = None


class UrgentFlag(Rule):
    """Raised when an item, or a total, scores at least ``min_points``, whatever else the answers say."""

    flag: str
    item: str | None = None
    total: str | None = None
    min_points: int

    @model_validator(mode="after")
    def _one_source(self) -> UrgentFlag:
        if (self.item is None) == (self.total is None):
            raise ValueError("an urgent flag names an item or a total, not both")
        return self


class Wording(Rule):
    """How an instrument is asked in one language: its prompt, each item's text, each answer's label."""

    prompt: str | None = None
    items: dict[str, str]
    answers: dict[str, str] = Field(default_factory=dict)  # LOINC answer code -> label
    scale: dict[str, str] = Field(default_factory=dict)  # score -> label, for scored items


class Instrument(Rule):
    title: str
    panel: str
    wording: dict[str, Wording] = Field(default_factory=dict)  # by language
    items: dict[str, Item]
    totals: list[Total] = Field(default_factory=list)
    domains: list[Domain] = Field(default_factory=list)
    risk: list[RiskRule] = Field(default_factory=list)
    urgent_flags: list[UrgentFlag] = Field(default_factory=list)


class ScreeningRules(RulesFile):
    risk_levels: tuple[str, ...]
    instruments: dict[str, Instrument]

    @model_validator(mode="after")
    def _worded_fully(self) -> ScreeningRules:
        for name, instrument in self.instruments.items():
            for language, wording in instrument.wording.items():
                missing = set(instrument.items) - set(wording.items)
                answers = {
                    a for i in instrument.items.values() if isinstance(i, ChoiceItem) for a in i.answers
                }
                missing |= answers - set(wording.answers)
                if missing:
                    raise ValueError(f"{name} in {language} has no words for {sorted(missing)}")
        return self


def _problem(item: str, reason: str) -> dict[str, str]:
    return {"item": item, "reason": reason}


def _check_item(item: str, spec: ScoreItem | ChoiceItem, value: Any) -> dict[str, str] | None:
    if isinstance(spec, ScoreItem):
        if not isinstance(value, int) or isinstance(value, bool):
            return _problem(item, "must be an integer score")
        if not spec.min <= value <= spec.max:
            return _problem(item, f"must be between {spec.min} and {spec.max}")
        return None
    if spec.multiple:
        codes = [value] if isinstance(value, str) else value
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            return _problem(item, "must be a LOINC answer code or a non-empty list of them")
        if len(set(codes)) != len(codes):
            return _problem(item, "lists an answer twice")
        if any(c not in spec.answers for c in codes):
            return _problem(item, "is not an answer code of this item")
        if len(codes) > 1 and set(codes) & set(spec.exclusive):
            return _problem(item, "combines an exclusive answer with others")
        return None
    if not isinstance(value, str):
        return _problem(item, "must be a LOINC answer code")
    if value not in spec.answers:
        return _problem(item, "is not an answer code of this item")
    return None


def _validate(spec: Instrument, answers: dict[str, Any]) -> None:
    items = spec.items
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


def _points(spec: ScoreItem | ChoiceItem, value: Any) -> int | None:
    if isinstance(spec, ScoreItem):
        return int(value)
    if spec.multiple:
        return None
    return spec.answers[value]


def _answered_codes(value: Any) -> set[str]:
    return {value} if isinstance(value, str) else set(value) if isinstance(value, list) else set()


def _condition_holds(cond: Condition, answers: dict[str, Any], totals: dict[str, int]) -> bool:
    if cond.total is not None:
        return totals[cond.total] > (cond.greater_than or 0)
    codes = _answered_codes(answers[cond.item or ""])
    if cond.in_ is not None:
        return bool(codes & set(cond.in_))
    return bool(codes - set(cond.not_in or ()))


def _risk_rule_holds(
    rule: RiskRule, need_codes: set[str], answers: dict[str, Any], totals: dict[str, int]
) -> bool:
    if rule.when_any_need is not None and not need_codes & set(rule.when_any_need):
        return False
    if rule.when_min_needs is not None and len(need_codes) < rule.when_min_needs:
        return False
    return rule.when_any is None or any(_condition_holds(c, answers, totals) for c in rule.when_any)


def score(rules: ScreeningRules, instrument: str, answers: dict[str, Any]) -> Score:
    spec = rules.instruments.get(instrument)
    if spec is None:
        raise InvalidAnswers([_problem("instrument", "unknown instrument")])
    _validate(spec, answers)
    items = spec.items

    observations: list[dict[str, Any]] = []
    for item, item_spec in items.items():
        observation: dict[str, Any] = {"code": item, "value": answers[item]}
        points = _points(item_spec, answers[item])
        if isinstance(item_spec, ChoiceItem) and points is not None:
            observation["points"] = points
        observations.append(observation)

    totals: dict[str, int] = {}
    needs: list[dict[str, Any]] = []
    risks = ["low"]
    recommended: list[str] = []
    primary_total: int | None = None
    interpretation: str | None = None
    for total_spec in spec.totals:
        value = sum(_points(items[i], answers[i]) or 0 for i in total_spec.items)
        totals[total_spec.code] = value
        observation = {"code": total_spec.code, "value": value}
        band = next((b for b in total_spec.bands if b.min <= value <= b.max), None)
        if band is not None:
            observation["interpretation"] = band.interpretation
            needs += [n.model_dump() for n in band.needs]
            risks.append(band.risk)
            recommended += band.recommend
            if primary_total is None:
                primary_total, interpretation = value, band.interpretation
        observations.append(observation)

    for domain in spec.domains:
        if any(_condition_holds(c, answers, totals) for c in domain.when_any):
            needs.append({"code": domain.need, "severity": domain.severity})

    need_codes = {n["code"] for n in needs}
    # The first rule that holds decides.
    decided = next((r.risk for r in spec.risk if _risk_rule_holds(r, need_codes, answers, totals)), None)
    if decided is not None:
        risks.append(decided)

    urgent_flags = [
        flag.flag
        for flag in spec.urgent_flags
        if (
            totals[flag.total]
            if flag.total
            else _points(items[flag.item or ""], answers[flag.item or ""]) or 0
        )
        >= flag.min_points
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
