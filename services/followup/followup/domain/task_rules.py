"""Which event opens which task, for whom, how soon, and what closes it: a versioned data file. Pure.

``rules/tasks.v1.json`` (``FOLLOWUP_TASK_RULES_FILE`` for an organisation's own) names, per kind of
task, the event that opens it (and on which flags or statuses), what it is about, its priority, when it
is due and when it goes to a supervisor, the role it is for, and the events that resolve it. The code
knows only how to read each event: which referral, follow-up, assessment, instrument or intervention it
is about (``ABOUT_BY_EVENT``); a file naming anything else stops the service at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from careloop_shared.contracts import (
    AppointmentStatusChanged,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    NetworkGapDetected,
    PatientAssessed,
    PlanAlternativesProposed,
    PlanUpdated,
    ReassessmentRequested,
    ReferralMade,
    ReferralOverdue,
    ReferralStatusChanged,
)
from careloop_shared.rules import Rule, RulesFile

TASK_RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "tasks.v1.json"
CARE_MANAGER = "care-manager"  # a task for this role goes to the patient's care manager

# What each event is about, as followup reads it ("patient" always). ReferralMade is about the
# referral it replaces (a re-route), since that is the one it resolves anything about.
ABOUT_BY_EVENT: dict[str, frozenset[str]] = {
    PatientAssessed.type: frozenset({"patient", "assessment", "instrument"}),
    FollowUpDue.type: frozenset({"patient", "follow-up"}),
    FollowUpOverdue.type: frozenset({"patient", "follow-up"}),
    FollowUpCompleted.type: frozenset({"patient", "follow-up"}),
    FollowUpCancelled.type: frozenset({"patient", "follow-up"}),
    FollowUpScheduled.type: frozenset({"patient", "follow-up"}),
    ReassessmentRequested.type: frozenset({"patient", "follow-up"}),
    ReferralOverdue.type: frozenset({"patient", "referral"}),
    ReferralStatusChanged.type: frozenset({"patient", "referral", "intervention"}),
    ReferralMade.type: frozenset({"patient", "referral", "intervention"}),
    PlanAlternativesProposed.type: frozenset({"patient", "service-request"}),
    PlanUpdated.type: frozenset({"patient"}),
    NetworkGapDetected.type: frozenset({"patient", "intervention"}),
    AppointmentStatusChanged.type: frozenset({"patient", "referral"}),
}
# followup's own events: tracked in the unit of work that publishes them, after whatever it has heard.
OWN_EVENTS = frozenset(
    e.type
    for e in (
        FollowUpDue,
        FollowUpOverdue,
        FollowUpCompleted,
        FollowUpScheduled,
        FollowUpCancelled,
        ReassessmentRequested,
    )
)


_WITH_STATUSES = frozenset({ReferralStatusChanged.type, AppointmentStatusChanged.type})


class Opening(Rule):
    """The event that opens a task, and the condition on it."""

    event: str
    urgent_flags: frozenset[str] | None = None  # PatientAssessed: when it raises any of these
    per_recommended_instrument: bool = False  # PatientAssessed: one task per instrument it recommends
    # ReferralStatusChanged, AppointmentStatusChanged: a move to one of these
    to_statuses: frozenset[str] | None = None
    # ReferralStatusChanged: also a completion whose outcome says the service was not delivered
    not_delivered: bool = False
    deadlines: frozenset[str] | None = None  # ReferralOverdue: for one of these deadlines


class Resolution(Rule):
    """An event that resolves the task: the same patient and the same thing the task is about."""

    event: str
    plan_reasons: frozenset[str] | None = None  # PlanUpdated: a version made for one of these reasons
    # Resolves whatever the times say: an event that can only follow the cause (a re-route follows the
    # rejection), whose time is read on another clock than the cause's.
    any_time: bool = False


class TaskKind(Rule):
    kind: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    about: str
    opened_by: Opening
    priority: str
    priority_by_cause: dict[str, str] = Field(default_factory=dict)  # the cause's own priority -> the task's
    due_after_minutes: float = Field(ge=0)
    escalate_after_minutes: float | None = Field(None, ge=0)  # None: no timed escalation
    escalated_by: frozenset[str] = frozenset()  # events that send it to the supervisor at once
    for_role: str
    resolved_by: tuple[Resolution, ...] = ()

    def remembers(self, resolver: str) -> bool:
        """Whether a resolution by the event ``resolver`` is kept for a cause still to come: only where
        the cause can be heard after it though made before it. Each event type has its topic, and a
        patient's events on one topic are heard in the order they were published, so a cause of the
        resolver's own type comes in order; a cause followup publishes itself is tracked as it is
        published, after everything heard before. (A dead letter an operator replays comes out of order:
        a task it opens that a later event already resolved is closed by hand.)"""
        opener = self.opened_by.event
        return resolver != opener and opener not in OWN_EVENTS

    @property
    def resolved_early(self) -> bool:
        """Whether a task of this kind can have been resolved before its cause arrived (``remembers``)."""
        return any(self.remembers(r.event) for r in self.resolved_by)

    def problems(self, priorities: tuple[str, ...]) -> list[str]:
        found: list[str] = []
        opener = self.opened_by
        for event in (opener.event, *self.escalated_by, *(r.event for r in self.resolved_by)):
            if event not in ABOUT_BY_EVENT:
                found.append(f"{self.kind}: unknown event {event}")
            elif self.about not in ABOUT_BY_EVENT[event] and not (
                event == opener.event and opener.per_recommended_instrument
            ):
                found.append(f"{self.kind}: {event} is not about a {self.about}")
        if opener.per_recommended_instrument and (opener.event, self.about) != (
            PatientAssessed.type,
            "instrument",
        ):
            found.append(
                f"{self.kind}: per_recommended_instrument needs PatientAssessed and about instrument"
            )
        if opener.urgent_flags is not None and opener.event != PatientAssessed.type:
            found.append(f"{self.kind}: urgent_flags apply to PatientAssessed only")
        if opener.to_statuses is not None and opener.event not in _WITH_STATUSES:
            found.append(
                f"{self.kind}: to_statuses apply to ReferralStatusChanged and AppointmentStatusChanged"
            )
        if opener.deadlines is not None and opener.event != ReferralOverdue.type:
            found.append(f"{self.kind}: deadlines apply to ReferralOverdue only")
        if opener.not_delivered and opener.to_statuses is None:
            found.append(f"{self.kind}: not_delivered goes with to_statuses")
        if any(r.plan_reasons is not None and r.event != PlanUpdated.type for r in self.resolved_by):
            found.append(f"{self.kind}: plan_reasons apply to PlanUpdated only")
        for priority in (self.priority, *self.priority_by_cause.values()):
            if priority not in priorities:
                found.append(f"{self.kind}: unknown priority {priority}")
        return found


class ToDo(Rule):
    """A task a person adds about a patient for themselves: its kind, what it may be for, how pressing,
    and how far ahead it may be due."""

    kind: str = Field("to-do", pattern=r"^[a-z][a-z0-9-]*$")
    purposes: frozenset[str] = frozenset({"other"})
    priorities: frozenset[str] = frozenset({"routine"})
    furthest_days: float = Field(365, gt=0, le=3650)


class TaskRules(RulesFile):
    priorities: tuple[str, ...] = Field(min_length=1)  # most pressing first
    urgent_priorities: frozenset[str]  # what caseloads count as urgent
    escalate_to_role: str
    agency_wide_roles: frozenset[str]  # who sees (and may move) every task of their agency
    close_reasons: frozenset[str]
    kinds: tuple[TaskKind, ...]
    to_do: ToDo = ToDo()

    @model_validator(mode="after")
    def _every_kind_is_one_the_code_can_follow(self) -> TaskRules:
        problems = [p for k in self.kinds for p in k.problems(self.priorities)]
        if len({k.kind for k in self.kinds} | {self.to_do.kind}) != len(self.kinds) + 1:
            problems.append("a kind is listed twice")
        problems += [
            f"to_do: unknown priority {p}" for p in sorted(self.to_do.priorities - set(self.priorities))
        ]
        problems += [
            f"unknown urgent priority {p}" for p in sorted(self.urgent_priorities - set(self.priorities))
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def rank(self, priority: str) -> int:
        return self.priorities.index(priority)

    def opened_by(self, event_type: str) -> list[TaskKind]:
        return [k for k in self.kinds if k.opened_by.event == event_type]

    def kind(self, name: str) -> TaskKind | None:
        return next((k for k in self.kinds if k.kind == name), None)

    def remembers(self, resolution: Mapping[str, Any]) -> bool:
        """Whether ``resolution`` (``domain.tasks.resolutions``) is kept: ``TaskKind.remembers``."""
        kind = self.kind(resolution["kind"])
        return kind is not None and kind.remembers(resolution["event_type"])


def due_at(kind: TaskKind, base: datetime) -> datetime:
    return base + timedelta(minutes=kind.due_after_minutes)


def escalate_at(kind: TaskKind, base: datetime) -> datetime | None:
    if kind.escalate_after_minutes is None:
        return None
    return base + timedelta(minutes=kind.escalate_after_minutes)
