"""A to-do a person adds to the task list about a patient, for themselves ("send the housing form by
Friday"): what it is for (a code of the task rules' ``to_do`` purposes, never free text), how pressing, and
when it is due. It is closed like any task, by whoever works it; no event resolves it and the clock does not
escalate it. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from careloop_shared.contracts import TaskOpened
from followup.domain.follow_up import Actor, InvalidInput
from followup.domain.scheduling import in_body, time_problems
from followup.domain.task_rules import TaskRules
from followup.domain.tasks import opened_event_id


def to_do_row(
    rules: TaskRules,
    now: datetime,
    *,
    task_id: uuid.UUID,
    patient_id: uuid.UUID,
    agency_id: str,
    purpose: str,
    priority: str,
    due_at: datetime,
    by: Actor,
    assignee: Actor | None = None,
) -> dict[str, Any]:
    """The task's row, checked against the rules (422 naming each field that does not fit): for
    ``assignee`` (the patient's care manager), or for its maker ``by``."""
    assignee = assignee or by
    to_do, problems = rules.to_do, []
    if purpose not in to_do.purposes:
        problems.append({"loc": in_body("purpose"), "msg": "not a to-do purpose the rules name"})
    if priority not in to_do.priorities:
        problems.append({"loc": in_body("priority"), "msg": "not a priority a to-do may have"})
    problems += time_problems(due_at, now, to_do.furthest_days)
    if problems:
        raise InvalidInput(problems)
    return {
        "id": task_id,
        "kind": to_do.kind,
        "cause_key": str(task_id),
        "patient_id": patient_id,
        "agency_id": agency_id,
        "subject": "",
        "cause_event_id": opened_event_id(task_id),  # a person's: its own announcement
        "cause_event_type": TaskOpened.type,
        "cause_at": now,
        **dict.fromkeys(("referral_id", "follow_up_id", "assessment_id", "intervention_id", "instrument")),
        "priority": priority,
        "priority_rank": rules.rank(priority),
        "status": "open",
        "due_at": due_at,
        "escalate_at": None,
        "for_role": assignee.role,
        "assignee_id": assignee.subject,
        "assignee_role": assignee.role,
        "purpose": purpose,
        "opened_by": by.subject,
        "opened_by_role": by.role,
        "created_at": now,
        "updated_at": now,
    }
