"""Who is responsible for a patient: a care manager, named at registration or reassigned by a supervisor.
Pure: no I/O here.

Which registering roles become responsible themselves, and the coded reasons for a reassignment, are
data: ``rules/care-manager.v1.json``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from careloop_shared.contracts import CareManagerAssigned
from careloop_shared.errors import Invalid
from careloop_shared.ids import new_id
from careloop_shared.rules import RulesFile

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "care-manager.v1.json"
REGISTRATION, REASSIGNMENT = "registration", "reassignment"


class CareManagerRules(RulesFile):
    registering_roles_made_responsible: frozenset[str]
    reassignment_reasons: frozenset[str]


class NoCareManager(Invalid):
    """Nobody would be responsible for the patient: the registering person's role carries no caseload."""

    def __init__(self, role: str) -> None:
        msg = f"a {role} registering a patient names the responsible care manager"
        super().__init__([{"loc": ["body", "care_manager_id"], "type": "missing", "msg": msg}])


class UnknownReason(Invalid):
    def __init__(self) -> None:
        super().__init__([{"loc": ["body", "reason"], "msg": "unknown reassignment reason code"}])


def responsible_at_registration(rules: CareManagerRules, named: str | None, by: str, by_role: str) -> str:
    """The care manager named, else the registering person when their role works a caseload."""
    if named is not None:
        return named
    if by_role in rules.registering_roles_made_responsible:
        return by
    raise NoCareManager(by_role)


def check_reassignment_reason(rules: CareManagerRules, reason: str | None) -> None:
    if reason is not None and reason not in rules.reassignment_reasons:
        raise UnknownReason()


@dataclass(frozen=True)
class Assignment:
    """A care manager made responsible: the history row intake keeps, and the event announcing it."""

    row: dict[str, Any]
    event: CareManagerAssigned


def assignment(
    *,
    patient_id: uuid.UUID,
    agency_id: str,
    care_manager_id: str,
    previous_care_manager_id: str | None,
    reason: str,
    at: datetime,
    by: str,
    by_role: str,
    reason_code: str | None = None,
) -> Assignment:
    row = {
        "id": new_id(),
        "patient_id": patient_id,
        "agency_id": agency_id,
        "care_manager_id": care_manager_id,
        "previous_care_manager_id": previous_care_manager_id,
        "reason": reason,
        "reason_code": reason_code,
        "assigned_at": at,
        "assigned_by": by,
        "assigned_by_role": by_role,
    }
    event = CareManagerAssigned(
        patient_id=patient_id,
        agency_id=agency_id,
        care_manager_id=care_manager_id,
        previous_care_manager_id=previous_care_manager_id,
        reason=reason,
        assigned_at=at,
        actor_id=by,
        actor_role=by_role,
    )
    return Assignment(row, event)
