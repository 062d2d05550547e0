"""Tasks: units of work for a person, made from the events that call for them. Pure: no I/O.

An event is read into ``Facts`` (who, when, what it is about); the rules decide which tasks it opens
(one per kind and cause, under an id derived from both, so a redelivery or a replica makes no second),
which it resolves (the same patient's open tasks about the same thing, caused no later than it), and
which it sends to a supervisor. A resolution is remembered where a cause can arrive after it
(``TaskKind.remembers``), so a task whose cause arrives after its resolution never opens. A person
moves a task along ``open -> in-progress -> done | cancelled``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from careloop_shared.contracts import (
    TaskCause,
    TaskEscalated,
    TaskOpened,
    TaskStatusChanged,
)
from careloop_shared.errors import Conflict
from careloop_shared.ids import NameBased
from followup.domain.announcements import Announcement
from followup.domain.follow_up import Actor, InvalidInput
from followup.domain.scheduling import in_body
from followup.domain.task_facts import Facts
from followup.domain.task_rules import CARE_MANAGER, TaskKind, TaskRules, due_at, escalate_at

_TASK_IDS = NameBased(uuid.UUID("3c0f8e52-91d4-4b7e-a2c6-7d15e9b04f38"))
_TASK_EVENT_IDS = NameBased(uuid.UUID("a4e71b09-6d2c-4f85-b3a8-0c9e5d2f7b61"))

ACTIVE = ("open", "in-progress")
CLOSED = ("done", "cancelled")
MOVES: dict[str, frozenset[str]] = {
    "open": frozenset({"in-progress", "done", "cancelled"}),
    "in-progress": frozenset({"done", "cancelled"}),
}
RESOLVED = "resolved"


class IllegalMove(Conflict):
    """A task cannot move so from where it is. The message names the statuses only."""


def task_id(kind: str, cause_key: str) -> uuid.UUID:
    """One task per kind and cause, whoever makes it and however often."""
    return _TASK_IDS(f"{kind}/{cause_key}")


def _event_id(*parts: object) -> uuid.UUID:
    return _TASK_EVENT_IDS("/".join(map(str, parts)))


def _subjects(kind: TaskKind, facts: Facts) -> list[str]:
    opener = kind.opened_by
    if opener.per_recommended_instrument:
        return list(dict.fromkeys(facts.recommended))
    if opener.urgent_flags is not None and not opener.urgent_flags & facts.urgent_flags:
        return []
    if opener.deadlines is not None and facts.deadline not in opener.deadlines:
        return []
    if opener.to_statuses is not None and facts.to_status not in opener.to_statuses:
        if not (opener.not_delivered and facts.not_delivered):
            return []
    return [facts.about[kind.about]]


def tasks_to_open(
    rules: TaskRules, facts: Facts, now: datetime, *, care_manager: str | None
) -> list[dict[str, Any]]:
    """The rows of the tasks this event opens (the store keeps one per kind and cause)."""
    rows = []
    base = facts.due_base or facts.at
    for kind in rules.opened_by(facts.event_type):
        for subject in _subjects(kind, facts):
            cause_key = (
                f"{facts.cause_key}/{subject}"
                if kind.opened_by.per_recommended_instrument
                else facts.cause_key
            )
            priority = kind.priority_by_cause.get(facts.priority or "", kind.priority)
            rows.append(
                {
                    "id": task_id(kind.kind, cause_key),
                    "kind": kind.kind,
                    "cause_key": cause_key,
                    "patient_id": facts.patient_id,
                    "agency_id": facts.agency_id,
                    "subject": subject,
                    "cause_event_id": facts.event_id,
                    "cause_event_type": facts.event_type,
                    "cause_at": facts.at,
                    "referral_id": facts.ids.get("referral_id"),
                    "follow_up_id": facts.ids.get("follow_up_id"),
                    "assessment_id": facts.ids.get("assessment_id"),
                    "intervention_id": facts.ids.get("intervention_id"),
                    "instrument": subject if kind.about == "instrument" else None,
                    "priority": priority,
                    "priority_rank": rules.rank(priority),
                    "status": "open",
                    "due_at": due_at(kind, base),
                    "escalate_at": escalate_at(kind, base),
                    "for_role": kind.for_role,
                    "assignee_id": care_manager if kind.for_role == CARE_MANAGER else None,
                    "assignee_role": kind.for_role,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    return rows


def resolutions(rules: TaskRules, facts: Facts) -> list[dict[str, Any]]:
    """What this event resolves: per kind, the thing it is about for this patient, from its time on."""
    found = []
    for kind in rules.kinds:
        for r in kind.resolved_by:
            if r.event != facts.event_type or kind.about not in facts.about:
                continue
            if r.plan_reasons is not None and facts.plan_reason not in r.plan_reasons:
                continue
            found.append(
                {
                    "patient_id": facts.patient_id,
                    "agency_id": facts.agency_id,
                    "kind": kind.kind,
                    "subject": facts.about[kind.about],
                    "event_id": facts.event_id,
                    "event_type": facts.event_type,
                    "resolved_at": facts.at,
                    "any_time": r.any_time,
                }
            )
    return found


def escalations(rules: TaskRules, facts: Facts) -> list[tuple[str, str]]:
    """(kind, subject) of the tasks this event sends to the supervisor at once."""
    return [
        (k.kind, facts.about[k.about])
        for k in rules.kinds
        if facts.event_type in k.escalated_by and k.about in facts.about
    ]


def resolved_changes(resolution: Mapping[str, Any], now: datetime, by: Actor | None) -> dict[str, Any]:
    return {
        "status": "done",
        "closed_at": now,
        "closed_by": by.subject if by else None,
        "closed_by_role": by.role if by else None,
        "closed_reason": RESOLVED,
        "resolved_by_event_id": resolution["event_id"],
        "resolved_by_event_type": resolution["event_type"],
    }


def escalated_changes(rules: TaskRules, now: datetime) -> dict[str, Any]:
    """Escalated: the supervisor, who sees every task of the agency, is told (``TaskEscalated``); the
    task stays on its assignee's list, marked escalated."""
    return {"escalated_at": now}


def may_see(task: Mapping[str, Any], subject: str, role: str, agency_id: str, *, sees_all: bool) -> bool:
    """A supervisor sees the agency's tasks; anyone else their own and their role's unassigned ones."""
    if task["agency_id"] != agency_id:
        return False
    return (
        sees_all
        or task["assignee_id"] == subject
        or (task["assignee_id"] is None and task["assignee_role"] == role)
    )


def change_status(
    rules: TaskRules, task: Mapping[str, Any], to: str, reason: str | None, by: Actor, now: datetime
) -> tuple[dict[str, Any], Announcement]:
    """A person's move of a task: the changes to store and the event. Unknown reasons are refused
    (InvalidInput) before moves that are not allowed from where the task is (IllegalMove)."""
    if reason is not None and reason not in rules.close_reasons:
        raise InvalidInput([{"loc": in_body("reason"), "msg": "unknown reason code"}])
    if to not in MOVES.get(task["status"], frozenset()):
        raise IllegalMove(f"task is {task['status']}; it cannot move to {to}")
    changes: dict[str, Any] = {"status": to}
    if to in CLOSED:
        changes |= {
            "closed_at": now,
            "closed_by": by.subject,
            "closed_by_role": by.role,
            "closed_reason": reason,
        }
    elif task["assignee_id"] is None and task["assignee_role"] == by.role:
        changes["assignee_id"] = by.subject  # starting a task of one's role takes it
    return changes, status_changed(task, to, reason, now, by)


# --- announcements ---------------------------------------------------------------------------------


def opened(task: Mapping[str, Any]) -> Announcement:
    person = task["assignee_id"]
    return Announcement(
        TaskOpened(
            patient_id=task["patient_id"],
            agency_id=task["agency_id"],
            task_id=task["id"],
            kind=task["kind"],
            priority=task["priority"],
            due_at=task["due_at"],
            assignee_id=person,
            assignee_role=None if person else task["assignee_role"],
            cause=TaskCause(
                event_id=task["cause_event_id"],
                event_type=task["cause_event_type"],
                referral_id=task["referral_id"],
                follow_up_id=task["follow_up_id"],
                assessment_id=task["assessment_id"],
                intervention_id=task["intervention_id"],
                instrument=task["instrument"],
            ),
            purpose=task.get("purpose"),
            actor_id=task.get("opened_by"),  # a to-do's maker; none for a task an event opened
            actor_role=task.get("opened_by_role"),
        ),
        opened_event_id(task["id"]),
    )


def opened_event_id(task_id: uuid.UUID) -> uuid.UUID:
    """The id of the TaskOpened announcing the task: a to-do's cause."""
    return _event_id("opened", task_id)


def status_changed(
    task: Mapping[str, Any], to: str, reason: str | None, at: datetime, by: Actor | None
) -> Announcement:
    """Once per status a task reaches (none is reached twice)."""
    return Announcement(
        TaskStatusChanged(
            patient_id=task["patient_id"],
            agency_id=task["agency_id"],
            task_id=task["id"],
            from_status=task["status"],
            to_status=to,
            reason=reason,
            changed_at=at,
            actor_id=by.subject if by else None,
            actor_role=by.role if by else None,
        ),
        _event_id("status", task["id"], to),
    )


def escalated(task: Mapping[str, Any], to_role: str, at: datetime) -> Announcement:
    """Once per task: an escalated task is not escalated again."""
    return Announcement(
        TaskEscalated(
            patient_id=task["patient_id"],
            agency_id=task["agency_id"],
            task_id=task["id"],
            kind=task["kind"],
            to_role=to_role,
            due_at=task["due_at"],
            escalated_at=at,
        ),
        _event_id("escalated", task["id"]),
    )
