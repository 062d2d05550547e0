"""A referral as FHIR R4: the ``ServiceRequest`` (what the referring agency asks for) and the ``Task``
(the receiving agency's progress on it) of the Gravity SDOH Clinical Care referral workflow. Pure: a
referral row in, dicts out.

A re-routed referral is a new Task on the same ServiceRequest: the ServiceRequest's id is the
referral's ``service_request_id``, and it is made of the newest referral of that request the caller may
see. careloop's referral statuses are the Gravity referral Task statuses (``draft`` included), so
``Task.status`` is the referral's status; ``businessStatus`` says careloop's own status and, where
``domain.md`` 3.6 gives one, the finer business status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from careloop_shared.fhir import SDOH_CATEGORY, coding, concept, instant, reference
from referral.domain.lifecycle import NEEDS_REASON
from referral.fhir.codes import FhirCodes

AGENCY = "urn:careloop:agency"
NEED = "urn:careloop:need"
PROGRAM_CATEGORY = "urn:careloop:program-category"
REFERRAL_STATUS = "urn:careloop:referral-status"
BUSINESS_STATUS = "urn:careloop:referral-business-status"
REFERRAL_REASON = "urn:careloop:referral-reason"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
PRIORITIES = frozenset({"routine", "urgent", "asap", "stat"})

# The referral's (the newest Task's) status -> ServiceRequest.status: the request stays active while a
# Task works on it, and ends with it (a rejection that was re-routed shows the new Task instead).
REQUEST_STATUS = {
    "draft": "draft",
    "requested": "active",
    "accepted": "active",
    "in-progress": "active",
    "on-hold": "on-hold",
    "completed": "completed",
    "rejected": "revoked",
    "cancelled": "revoked",
    "failed": "revoked",
    "entered-in-error": "entered-in-error",
}


def words(code: str) -> str:
    """A careloop code as words: ``no-capacity`` -> ``No capacity``."""
    return code.replace("-", " ").capitalize()


def agency(agency_id: str) -> dict[str, Any]:
    """A logical reference to a careloop agency: an agency may run several directory organizations."""
    return {"type": "Organization", "identifier": {"system": AGENCY, "value": agency_id}}


def organization_of(organization_id: str | None, agency_id: str) -> dict[str, Any]:
    """The directory organization that runs the program, else (not in the directory) its agency."""
    return reference("Organization", organization_id) if organization_id else agency(agency_id)


def _priority(row: Mapping[str, Any]) -> str:
    return row["priority"] if row["priority"] in PRIORITIES else "routine"


def _authored(row: Mapping[str, Any]) -> str:
    return instant(row["made_at"] or row["created_at"])


def need_concept(need: str, codes: FhirCodes) -> dict[str, Any]:
    category = codes.sdoh_category(need)
    return concept(coding(SDOH_CATEGORY, category) if category else coding(NEED, need), text=words(need))


def service_request(row: Mapping[str, Any], performer: str | None, codes: FhirCodes) -> dict[str, Any]:
    """What the referring agency authorises, from the newest referral of the request; ``performer`` the
    directory organization of the program it was sent to."""
    category = codes.sdoh_category(row["need"])
    program = row["program_category"]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(row["service_request_id"]),
        "status": REQUEST_STATUS.get(row["status"], "unknown"),
        "intent": "order",
    }
    if category:
        resource["category"] = [concept(coding(SDOH_CATEGORY, category))]
    resource["priority"] = _priority(row)
    # No standard code for a program category: careloop's own code, and words.
    resource["code"] = (
        concept(coding(PROGRAM_CATEGORY, program), text=words(program))
        if program
        else concept(text=words(row["need"]))
    )
    resource["subject"] = reference("Patient", row["patient_id"])
    resource["authoredOn"] = _authored(row)
    resource["requester"] = agency(row["referring_agency_id"])
    resource["performer"] = [organization_of(performer, row["receiving_agency_id"])]
    resource["reasonCode"] = [need_concept(row["need"], codes)]
    if row["consent_id"]:
        resource["supportingInfo"] = [reference("Consent", row["consent_id"])]
    return resource


def finer_status(row: Mapping[str, Any]) -> str | None:
    """The business status ``domain.md`` 3.6 proposes, where the referral says enough to give it."""
    status, reason, outcome = row["status"], row["status_reason"], row["outcome"] or {}
    if status == "requested":
        return "awaiting-response"
    if status == "on-hold" and reason == "waitlist":
        return "waitlisted"
    if status == "completed" and outcome.get("service_delivered"):
        return "service-delivered"
    if status == "cancelled" and reason == "referred-elsewhere":
        return "rerouted"
    return None


def business_status(row: Mapping[str, Any]) -> dict[str, Any]:
    finer = finer_status(row)
    codings = [coding(REFERRAL_STATUS, row["status"])]
    if finer:
        codings.append(coding(BUSINESS_STATUS, finer))
    return concept(*codings, text=words(finer or row["status"]))


def status_reason(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The coded reason, always with words: the profile wants ``statusReason.text`` for a rejected,
    cancelled, on-hold or failed referral."""
    reason = row["status_reason"]
    if reason:
        return concept(coding(REFERRAL_REASON, reason), text=words(reason))
    return {"text": words(row["status"])} if row["status"] in NEEDS_REASON else None


def outputs(row: Mapping[str, Any], codes: FhirCodes) -> list[dict[str, Any]]:
    """A completed referral's outcome: the resulting activity, and the program enrollment when said."""
    outcome = row["outcome"] or {}
    if row["status"] != "completed" or not outcome:
        return []
    found = []
    delivered = outcome.get("service_delivered")
    if delivered is not None:
        said = "Service delivered" if delivered else "Service not delivered"
        why = f": {words(outcome['reason']).lower()}" if not delivered and outcome.get("reason") else ""
        found.append(
            {
                "type": concept(coding(SDOH_CATEGORY, "resulting-activity", "Resulting Activity")),
                "valueCodeableConcept": concept(text=said + why),
            }
        )
    enrollment = outcome.get("enrollment_status")
    if enrollment:
        known = codes.enrollment.get(enrollment)
        value = (
            concept(coding(SDOH_CATEGORY, known.code, known.display), text=words(enrollment))
            if known
            else concept(text=words(enrollment))
        )
        found.append(
            {
                "type": concept(coding(SDOH_CATEGORY, "enrollment-status", "Enrollment Status")),
                "valueCodeableConcept": value,
            }
        )
    return found


def task(row: Mapping[str, Any], owner: str | None, codes: FhirCodes) -> dict[str, Any]:
    """The receiving agency's progress on the referral (SDOHCC Task For Referral Management); ``owner``
    the directory organization of the program it was sent to."""
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(row["id"]),
        "status": row["status"],
    }
    reason = status_reason(row)
    if reason:
        resource["statusReason"] = reason
    resource |= {
        "businessStatus": business_status(row),
        "intent": "order",
        "priority": _priority(row),
        "code": concept(coding(TASK_CODE, "fulfill", "Fulfill the focal request")),
        "focus": reference("ServiceRequest", row["service_request_id"]),
        "for": reference("Patient", row["patient_id"]),
        "authoredOn": _authored(row),
        "lastModified": instant(row["updated_at"]),
        "requester": agency(row["referring_agency_id"]),
        "owner": organization_of(owner, row["receiving_agency_id"]),
    }
    if row["accepted_at"]:
        resource["executionPeriod"] = {"start": instant(row["accepted_at"])}
    if row["outcome_due_at"]:
        resource["restriction"] = {"period": {"end": instant(row["outcome_due_at"])}}
    made = outputs(row, codes)
    if made:
        resource["output"] = made
    return resource
