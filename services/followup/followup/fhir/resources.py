"""followup's follow-ups and work-queue tasks as FHIR R4 ``Task``. Pure: rows in, dicts out.

A follow-up is a Task for the patient's care manager to reach the patient (``intent`` ``plan``): its own
status as ``businessStatus``, the open ones ``ready``; when it is sought in ``restriction.period`` (due
until its grace period ends); when completed, the last attempt's coded outcome as ``output`` (never the
note). A work-queue task is a Task for a person or a role, ``focus`` what it is about. Both carry the
patient as ``for`` and are told apart by ``meta.tag`` and ``code``. Only a follow-up is referenced
literally (``Task/<id>``, served here); what other services own is named by identifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from careloop_shared.fhir import coding, concept, instant, reference

STAFF = "urn:careloop:staff"  # a staff member's id at the identity provider (as intake says it)
ROLE = "urn:careloop:role"
TASK_TYPE = "urn:careloop:task-type"  # meta.tag: which of followup's two kinds of Task
FOLLOW_UP_REASON = "urn:careloop:follow-up-reason"
CONTACT_PURPOSE = "urn:careloop:contact-purpose"  # what an arranged contact is for
TASK_KIND = "urn:careloop:task-kind"
TO_DO_PURPOSE = "urn:careloop:to-do-purpose"  # what a to-do a person added is for
BUSINESS_STATUS = "urn:careloop:task-business-status"
CLOSE_REASON = "urn:careloop:task-close-reason"
EVENT_TYPE = "urn:careloop:event-type"
OUTCOME = "urn:careloop:follow-up-outcome"  # the names of an outcome's parts in Task.output.type
BARRIER = "urn:careloop:barrier"
NEXT_STEP = "urn:careloop:next-step"
REASSESSMENT = "urn:careloop:reassessment-reason"
INSTRUMENT = "urn:careloop:instrument"
# Identifier systems of what other services own (their FHIR ids are theirs to decide).
REFERRAL = "urn:careloop:referral"
CARE_PLAN = "urn:careloop:care-plan"
ASSESSMENT = "urn:careloop:assessment"
INTERVENTION = "urn:careloop:intervention"

FOLLOW_UP_TAG = "follow-up"
WORK_ITEM_TAG = "work-item"

# careloop's status -> FHIR Task.status (an open follow-up or task is ready to be done, per SDOHCC
# TaskForPatient and internal work Tasks); careloop's own status stays in businessStatus.
FOLLOW_UP_STATUS = {
    "scheduled": "ready",
    "due": "ready",
    "overdue": "ready",
    "completed": "completed",
    "cancelled": "cancelled",
}
TASK_STATUS = {"open": "ready", "in-progress": "in-progress", "done": "completed", "cancelled": "cancelled"}
# careloop's priorities -> FHIR's (routine < urgent < asap < stat): same name where FHIR has it.
FOLLOW_UP_PRIORITY = {"urgent": "urgent", "high": "urgent", "moderate": "routine", "low": "routine"}
TASK_PRIORITY = {"stat": "stat", "urgent": "urgent", "high": "urgent", "routine": "routine"}


def statuses_of(fhir_status: str, table: Mapping[str, str]) -> list[str]:
    """careloop's statuses a FHIR Task.status stands for (none: nothing has it)."""
    return [ours for ours, theirs in table.items() if theirs == fhir_status]


def staff(staff_id: str) -> dict[str, Any]:
    """A logical reference to a staff member: careloop serves no Practitioner to resolve."""
    return {"type": "Practitioner", "identifier": {"system": STAFF, "value": staff_id}}


def _by_identifier(resource_type: str, system: str, value: Any) -> dict[str, Any]:
    return {"type": resource_type, "identifier": {"system": system, "value": str(value)}}


def _coded(system: str, code: str) -> dict[str, Any]:
    return concept(coding(system, code), text=code)


def _tag(code: str) -> dict[str, Any]:
    return {"tag": [coding(TASK_TYPE, code)]}


def _period(start: Any = None, end: Any = None) -> dict[str, Any]:
    return {
        **({"start": instant(start)} if start is not None else {}),
        **({"end": instant(end)} if end is not None else {}),
    }


def follow_up(row: Mapping[str, Any], outcome: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A follow-up as a Task; ``outcome``, the last attempt's, is shown once the follow-up completed."""
    status = str(row["status"])
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(row["id"]),
        "meta": _tag(FOLLOW_UP_TAG),
        "status": FOLLOW_UP_STATUS.get(status, "ready"),
        "businessStatus": _coded(BUSINESS_STATUS, status),
        "intent": "plan",
        "priority": FOLLOW_UP_PRIORITY.get(str(row["priority"]), "routine"),
        "code": _coded(FOLLOW_UP_REASON, str(row["reason"])),
        "for": reference("Patient", row["patient_id"]),
        "authoredOn": instant(row["created_at"]),
        "lastModified": instant(row["updated_at"]),
        "restriction": {"period": _period(row["due_at"], row["overdue_at"])},
    }
    if row.get("purpose"):
        resource["reasonCode"] = _coded(CONTACT_PURPOSE, str(row["purpose"]))
    if row["plan_id"] is not None:
        resource["focus"] = _by_identifier("CarePlan", CARE_PLAN, row["plan_id"])
    elif row["referral_id"] is not None:
        resource["focus"] = _by_identifier("ServiceRequest", REFERRAL, row["referral_id"])
    if row.get("assignee_id"):
        resource["owner"] = staff(str(row["assignee_id"]))
    if row["completed_at"] is not None:
        resource["executionPeriod"] = _period(end=row["completed_at"])
    if status == "completed" and outcome is not None:
        resource["output"] = _outcome(outcome, row.get("reassessment"))
    return resource


def _output(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": _coded(OUTCOME, name), **value}


def _outcome(outcome: Mapping[str, Any], reassessment: str | None) -> list[dict[str, Any]]:
    """The attempt's coded findings: reached, barriers, the next step, a reassessment asked for."""
    found = [_output("reached", {"valueBoolean": bool(outcome["reached"])})]
    found += [
        _output("barrier", {"valueCodeableConcept": _coded(BARRIER, b)}) for b in outcome["barriers"] or ()
    ]
    if outcome["next_step"]:
        found.append(_output("next-step", {"valueCodeableConcept": _coded(NEXT_STEP, outcome["next_step"])}))
    if reassessment:
        found.append(_output("reassessment", {"valueCodeableConcept": _coded(REASSESSMENT, reassessment)}))
    return found


def _focus(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a task is about, the most specific first: a follow-up (served here), a referral, an
    assessment, an intervention."""
    if row["follow_up_id"] is not None:
        return reference("Task", row["follow_up_id"])
    for column, resource_type, system in (
        ("referral_id", "ServiceRequest", REFERRAL),
        ("assessment_id", "QuestionnaireResponse", ASSESSMENT),
        ("intervention_id", "HealthcareService", INTERVENTION),
    ):
        if row[column] is not None:
            return _by_identifier(resource_type, system, row[column])
    return None


def work_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A work-queue task as a Task: for its person (``owner``) or its role (``performerType``)."""
    status = str(row["status"])
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(row["id"]),
        "meta": _tag(WORK_ITEM_TAG),
        "status": TASK_STATUS.get(status, "ready"),
        "businessStatus": _coded(BUSINESS_STATUS, status),
        "intent": "plan",
        "priority": TASK_PRIORITY.get(str(row["priority"]), "routine"),
        "code": _coded(TASK_KIND, str(row["kind"])),
        "for": reference("Patient", row["patient_id"]),
        "authoredOn": instant(row["created_at"]),
        "lastModified": instant(row["updated_at"]),
        "performerType": [_coded(ROLE, str(row["assignee_role"]))],
        # Why: the event that called for it, or what a to-do a person added is for.
        "reasonCode": (
            _coded(TO_DO_PURPOSE, str(row["purpose"]))
            if row.get("purpose")
            else _coded(EVENT_TYPE, str(row["cause_event_type"]))
        ),
        "restriction": {"period": _period(end=row["due_at"])},
    }
    focus = _focus(row)
    if focus is not None:
        resource["focus"] = focus
    if row["assignee_id"]:
        resource["owner"] = staff(str(row["assignee_id"]))
    if row.get("opened_by"):  # a to-do's maker, who may have added it for the patient's care manager
        resource["requester"] = staff(str(row["opened_by"]))
    if row["closed_reason"]:
        resource["statusReason"] = _coded(CLOSE_REASON, str(row["closed_reason"]))
    if row["closed_at"] is not None:
        resource["executionPeriod"] = _period(end=row["closed_at"])
    if row["instrument"]:
        instrument = _coded(INSTRUMENT, str(row["instrument"]))
        resource["input"] = [{"type": concept(text="instrument"), "valueCodeableConcept": instrument}]
    return resource
