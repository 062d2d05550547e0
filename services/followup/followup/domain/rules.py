"""Follow-up rules an organisation may change, read from a versioned data file. Pure: no I/O but load.

Cadences by risk, grace periods, retry delays, how many attempts before a reassessment, and the code
lists for barriers, next steps and reschedule reasons all live in ``rules/follow-up-rules.v1.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "follow-up-rules.v1.json"
PRIORITIES = ("urgent", "high", "moderate", "low")  # most urgent first


@dataclass(frozen=True)
class FollowUpRules:
    version: str
    cadence_days_by_risk: dict[str, float]
    grace_hours_by_priority: dict[str, float]
    referral_check_in_hours_after_response_due: float
    referral_check_in_default_priority: str
    service_check_in_days_after_completion: float
    referral_statuses_ending_check_in: frozenset[str]
    plan_statuses_ending_follow_up: frozenset[str]
    max_attempts: int
    retry_after_hours_by_priority: dict[str, float]
    progress: frozenset[str]
    reassess_when_progress: frozenset[str]
    barriers: frozenset[str]
    next_steps: frozenset[str]
    reschedule_reasons: frozenset[str]
    max_reschedule_days: float

    @classmethod
    def load(cls, path: Path | None = None) -> FollowUpRules:
        return cls.from_data(json.loads((path or RULES_FILE).read_text()))

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FollowUpRules:
        rules = cls(
            version=data["version"],
            cadence_days_by_risk=dict(data["cadence_days_by_risk"]),
            grace_hours_by_priority=dict(data["grace_hours_by_priority"]),
            referral_check_in_hours_after_response_due=data["referral_check_in"]["hours_after_response_due"],
            referral_check_in_default_priority=data["referral_check_in"]["default_priority"],
            service_check_in_days_after_completion=data["service_check_in"]["days_after_completion"],
            referral_statuses_ending_check_in=frozenset(data["referral_statuses_ending_check_in"]),
            plan_statuses_ending_follow_up=frozenset(data["plan_statuses_ending_follow_up"]),
            max_attempts=int(data["not_reached"]["max_attempts"]),
            retry_after_hours_by_priority=dict(data["not_reached"]["retry_after_hours_by_priority"]),
            progress=frozenset(data["progress"]),
            reassess_when_progress=frozenset(data["reassess_when_progress"]),
            barriers=frozenset(data["barriers"]),
            next_steps=frozenset(data["next_steps"]),
            reschedule_reasons=frozenset(data["reschedule_reasons"]),
            max_reschedule_days=data["max_reschedule_days"],
        )
        for table in ("cadence_days_by_risk", "grace_hours_by_priority", "retry_after_hours_by_priority"):
            missing = set(PRIORITIES) - set(getattr(rules, table))
            if missing:
                raise ValueError(f"follow-up rules: {table} lacks {sorted(missing)}")
        if rules.max_attempts < 1:
            raise ValueError("follow-up rules: max_attempts must be at least 1")
        return rules

    def cadence_days(self, plan_every_days: float | None, risk: str) -> float:
        """The plan's own cadence when it gives one, else the default for the plan's risk."""
        if plan_every_days is not None and plan_every_days > 0:
            return plan_every_days
        return self.cadence_days_by_risk[risk]

    def grace(self, priority: str) -> timedelta:
        return timedelta(hours=self.grace_hours_by_priority[priority])

    def overdue_at(self, due_at: datetime, priority: str) -> datetime:
        return due_at + self.grace(priority)

    def retry_delay(self, priority: str) -> timedelta:
        return timedelta(hours=self.retry_after_hours_by_priority[priority])

    def referral_check_in_due(self, response_due_at: datetime) -> datetime:
        return response_due_at + timedelta(hours=self.referral_check_in_hours_after_response_due)

    def service_check_in_due(self, completed_at: datetime) -> datetime:
        return completed_at + timedelta(days=self.service_check_in_days_after_completion)
