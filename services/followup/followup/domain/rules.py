"""Follow-up rules an organisation may change, read from a versioned data file. Pure: no I/O here.

Cadences by risk, grace periods, retry delays, how many attempts before a reassessment, and the code
lists for barriers, next steps and reschedule reasons all live in ``rules/follow-up-rules.v1.json``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pydantic import Field, model_validator

from careloop_shared.rules import Rule, RulesFile

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "follow-up-rules.v1.json"
PRIORITIES = ("urgent", "high", "moderate", "low")  # most urgent first


def _every_priority(table: str, values: dict[str, float]) -> None:
    missing = set(PRIORITIES) - set(values)
    if missing:
        raise ValueError(f"{table} lacks {sorted(missing)}")


class ReferralCheckIn(Rule):
    """A check-in some hours after a referral's response deadline, at the patient's plan priority."""

    hours_after_response_due: float
    default_priority: str  # when followup has not heard of the patient's plan


class ServiceCheckIn(Rule):
    """A check-in some days after a referral was completed: did the service help?"""

    days_after_completion: float


class NotReached(Rule):
    """How often to try again when the patient was not reached, and how long to wait in between."""

    max_attempts: int = Field(ge=1)
    retry_after_hours_by_priority: dict[str, float]

    @model_validator(mode="after")
    def _every_priority_has_a_delay(self) -> NotReached:
        _every_priority("retry_after_hours_by_priority", self.retry_after_hours_by_priority)
        return self


class ArrangedContact(Rule):
    """A contact a care manager arranges with the patient for a time they agreed: what it is for, how it
    may reach them (the plan's channel, or one of ``always_allowed``), and why one may be called off."""

    purposes: frozenset[str]
    channels: frozenset[str]  # every channel an arranged contact may name
    always_allowed: frozenset[str]  # allowed whatever the plan's channel (in person)
    default_priority: str  # when followup has not heard of the patient's plan
    max_days_ahead: float = Field(gt=0)
    cancel_reasons: frozenset[str]

    @model_validator(mode="after")
    def _known_channels_and_priority(self) -> ArrangedContact:
        if not self.always_allowed <= self.channels:
            raise ValueError("always_allowed names a channel not in channels")
        if self.default_priority not in PRIORITIES:
            raise ValueError(f"default_priority must be one of {', '.join(PRIORITIES)}")
        return self

    def channels_for(self, plan_channel: str | None) -> list[str]:
        """The channels allowed for a patient whose plan reaches them by ``plan_channel``: that one (a
        safe channel, for a patient at risk at home) and in person; every one when no plan says."""
        if plan_channel is None:
            return sorted(self.channels)
        return sorted({plan_channel} | self.always_allowed)


class FollowUpRules(RulesFile):
    cadence_days_by_risk: dict[str, float]
    grace_hours_by_priority: dict[str, float]
    referral_check_in: ReferralCheckIn
    service_check_in: ServiceCheckIn
    referral_statuses_ending_check_in: frozenset[str]
    plan_statuses_ending_follow_up: frozenset[str]
    not_reached: NotReached
    progress: frozenset[str]
    reassess_when_progress: frozenset[str]
    barriers: frozenset[str]
    next_steps: frozenset[str]
    reschedule_reasons: frozenset[str]
    max_reschedule_days: float
    arranged_contact: ArrangedContact

    @model_validator(mode="after")
    def _every_priority_has_a_cadence_and_a_grace_period(self) -> FollowUpRules:
        _every_priority("cadence_days_by_risk", self.cadence_days_by_risk)
        _every_priority("grace_hours_by_priority", self.grace_hours_by_priority)
        return self

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
        return timedelta(hours=self.not_reached.retry_after_hours_by_priority[priority])

    def referral_check_in_due(self, response_due_at: datetime) -> datetime:
        return response_due_at + timedelta(hours=self.referral_check_in.hours_after_response_due)

    def service_check_in_due(self, completed_at: datetime) -> datetime:
        return completed_at + timedelta(days=self.service_check_in.days_after_completion)

    def ends_follow_up(self, plan_status: str) -> bool:
        return plan_status in self.plan_statuses_ending_follow_up
