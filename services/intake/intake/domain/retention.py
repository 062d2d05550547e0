"""How long intake keeps a patient's identifying details and sealed data once their case is over. Pure:
no I/O here.

The rules are data (``rules/retention.v1.json``): each names which cases it applies to and how long
after the case's last activity the patient is erased, the same way a supervisor's erasure does it.
intake hears of no discharge, so a case counts as over when nothing has happened to it for that long:
its last activity is the latest of its registration, a change of details, a consent recorded or revoked,
an assessment, a care manager assignment, and a referral made or closed; a referral still open keeps it
going.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from careloop_shared.rules import Rule, RulesFile

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "retention.v1.json"

CLOSED_CASES = "closed-cases"  # no referral open
NEVER_ENGAGED = "never-engaged"  # registered, and never assessed, consented or referred


class Period(Rule):
    years: int = Field(0, ge=0)
    days: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _not_empty(self) -> Period:
        if self.years == 0 and self.days == 0:
            raise ValueError("a retention period of zero would erase at once: give years or days")
        return self

    def before(self, at: datetime) -> datetime:
        """``at`` less this period (29 February less a year is 28 February)."""
        year = at.year - self.years
        day = min(at.day, 28) if (at.month, at.day) == (2, 29) and not _leap(year) else at.day
        return at.replace(year=year, day=day) - timedelta(days=self.days)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


class RetentionRule(Rule):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="Named in the erasure's recorded reason.")
    description: str
    applies_to: Literal["closed-cases", "never-engaged"]
    erase_after: Period = Field(description="How long after the case's last activity.")


class RetentionRules(RulesFile):
    rules: tuple[RetentionRule, ...] = Field(description="The first that selects a patient erases them.")

    @model_validator(mode="after")
    def _names_unique(self) -> RetentionRules:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("two retention rules have the same name")
        return self


@dataclass(frozen=True)
class CaseActivity:
    """What intake knows of a patient's case, for the rules to decide on."""

    last_activity_at: datetime
    engaged: bool  # ever assessed, consented or referred
    referral_open: bool


def applies(rule: RetentionRule, case: CaseActivity) -> bool:
    if rule.applies_to == NEVER_ENGAGED:
        return not case.engaged and not case.referral_open
    return not case.referral_open


def rule_for(rules: RetentionRules, case: CaseActivity, now: datetime) -> RetentionRule | None:
    """The rule that erases this patient now (the first in the file's order), or None."""
    for rule in rules.rules:
        if applies(rule, case) and case.last_activity_at <= rule.erase_after.before(now):
            return rule
    return None


def quiet_since(rules: RetentionRules, now: datetime) -> datetime | None:
    """No rule selects a case active after this instant (None: no rules): where to start looking."""
    return max((rule.erase_after.before(now) for rule in rules.rules), default=None)


def erasure_reason(rules: RetentionRules, rule: RetentionRule) -> str:
    return f"retention rule {rule.name} ({rules.version})"


def run_due(last_started_at: datetime | None, now: datetime, every: timedelta) -> bool:
    """Whether the rules are to be applied again: never yet, or ``every`` since the last run began."""
    return last_started_at is None or now >= last_started_at + every
