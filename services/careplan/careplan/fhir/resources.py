"""careplan's plans, goals, care teams and service requests as FHIR R4. Pure: rows in, dicts out.

- ``CarePlan``: one per plan version (id ``<plan id>-v<version>``), the next naming the one before in
  ``replaces``. The current version has careplan's status; an earlier one is no longer in force, so it
  is ``revoked`` (FHIR: terminated, "may have been replaced by a new plan"), unless it was already
  ``completed``. ``intent`` is ``proposal`` for a draft (drafted by careloop, not yet agreed by the care
  team), else ``plan``. ``addresses`` names intake's ``Condition/<assessment id>-<need>`` for the
  current version only: what a plan is drafted from (the latest assessment per instrument group) is
  kept for the current version alone. Every version also says its needs in ``description`` and codes
  each intervention's need in ``activity.detail.reasonCode``.
- ``Goal``: one per goal (its id is stable across versions), as the latest version that holds it says;
  a goal no current version holds any more is ``cancelled`` when it was still open.
- ``CareTeam``: one per plan (id: the plan id): each member's relationship and role, never a name or a
  contact detail; the patient, as a member, is ``Patient/<id>``.
- ``ServiceRequest``: one per request checked against the necessity criteria: ``active`` when they
  were met (the service joined the plan), ``revoked`` when not (what failed, the alternatives and the
  one chosen are in ``note``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from careloop_shared.fhir import coding, concept, instant, reference
from careplan.domain.necessity import ServiceCriteria
from careplan.domain.plan import Assessment, Goal, Intervention, PlanDocument
from careplan.fhir.codes import (
    CARE_PLAN,
    CAREPLAN_CATEGORY,
    GOAL,
    GOAL_ACHIEVEMENT,
    INTERVENTION_KIND,
    PROGRAM_CATEGORY,
    SERVICE,
    TEAM_RELATIONSHIP,
    TEAM_ROLE,
    agency_reference,
    need_concept,
    sdoh_category,
    staff_reference,
    words,
)

_ENDED = frozenset({"completed", "revoked"})
_GOAL_CLOSED = frozenset({"completed", "cancelled", "rejected", "entered-in-error"})
# careplan's plan status -> CareTeam.status: a team forms with a draft and stands down with the plan.
TEAM_STATUS = {
    "draft": "proposed",
    "active": "active",
    "on-hold": "suspended",
    "completed": "inactive",
    "revoked": "inactive",
}


def care_plan_id(plan_id: Any, version: int) -> str:
    return f"{plan_id}-v{version}"


def parse_care_plan_id(resource_id: str) -> tuple[uuid.UUID, int] | None:
    """(plan id, version) of a CarePlan id, or None when it is not one."""
    plan_id, _, version = resource_id.rpartition("-v")
    if len(plan_id) != 36 or not version.isdigit() or len(version) > 9:
        return None
    try:
        return uuid.UUID(plan_id), int(version)
    except ValueError:
        return None


def conditions_of(assessments: Mapping[str, Any]) -> dict[str, str]:
    """Need -> the id of intake's Condition for it (``<assessment id>-<need>``, as intake makes it),
    from the latest assessment that identified the need."""
    found: dict[str, str] = {}
    parsed = [Assessment.model_validate(a) for a in assessments.values()]
    for assessment in sorted(parsed, key=lambda a: a.assessed_at):
        for need in assessment.needs:
            found[need.code] = f"{assessment.assessment_id}-{need.code}"
    return found


def _categories(needs: list[str]) -> list[dict[str, Any]]:
    return [c for need in dict.fromkeys(needs) if (c := sdoh_category(need))]


def care_plan(row: Mapping[str, Any], *, latest: int, conditions: Mapping[str, str]) -> dict[str, Any]:
    """One version of a plan; ``latest`` is the plan's current version, ``conditions`` what
    ``conditions_of`` gives for the plan's current inputs."""
    document = PlanDocument.model_validate(row["document"])
    version, current = int(row["version"]), int(row["version"]) == int(latest)
    status = row["status"] if current or row["status"] in _ENDED else "revoked"
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": care_plan_id(row["plan_id"], version),
        "identifier": [{"system": CARE_PLAN, "value": str(row["plan_id"])}],
        "status": status,
        "intent": "proposal" if row["status"] == "draft" else "plan",
        "category": [concept(coding(CAREPLAN_CATEGORY, "assess-plan")), *_categories(document.needs)],
        "title": f"Care plan, version {version}",
        "subject": reference("Patient", row["patient_id"]),
        "created": instant(row["created_at"]),
        "careTeam": [reference("CareTeam", row["plan_id"])],
    }
    if document.needs:
        resource["description"] = "Needs: " + "; ".join(words(n) for n in dict.fromkeys(document.needs))
    if version > 1:
        resource["replaces"] = [reference("CarePlan", care_plan_id(row["plan_id"], version - 1))]
    if row.get("changed_by_subject"):
        resource["author"] = staff_reference(row["changed_by_subject"])
    addressed = [conditions[n] for n in dict.fromkeys(document.needs) if n in conditions] if current else []
    if addressed:
        resource["addresses"] = [reference("Condition", c) for c in addressed]
    if document.goals:
        resource["goal"] = [reference("Goal", g.id) for g in document.goals]
    if document.interventions:
        resource["activity"] = [_activity(i, document.goals) for i in document.interventions]
    return resource


def _activity(intervention: Intervention, goals: list[Goal]) -> dict[str, Any]:
    codes = [coding(INTERVENTION_KIND, intervention.kind)]
    if intervention.service_code:
        codes.append(coding(SERVICE, intervention.service_code))
    if intervention.program_category:
        codes.append(coding(PROGRAM_CATEGORY, intervention.program_category))
    what = intervention.service_code or intervention.program_category or intervention.need
    detail: dict[str, Any] = {
        "code": concept(*codes, text=f"{words(intervention.kind)}: {words(what)}"),
        "reasonCode": [need_concept(intervention.need)],
        "status": intervention.status,
    }
    if intervention.kind == "referral":
        detail = {"kind": "ServiceRequest", **detail}
    aimed_at = [reference("Goal", g.id) for g in goals if g.need == intervention.need]
    if aimed_at:
        detail["goal"] = aimed_at
    return {"detail": detail}


def goal(
    stored: Mapping[str, Any], *, patient_id: Any, in_current: bool, conditions: Mapping[str, str]
) -> dict[str, Any]:
    """A goal as the latest version holding it says (``in_current``: that is the current version)."""
    held = Goal.model_validate(stored)
    resource: dict[str, Any] = {"resourceType": "Goal", "id": str(held.id)}
    if in_current or held.lifecycle_status in _GOAL_CLOSED:
        resource["lifecycleStatus"] = held.lifecycle_status
    else:
        resource["lifecycleStatus"] = "cancelled"
        resource["statusReason"] = "no longer in the current care plan"
    if held.achievement_status:
        resource["achievementStatus"] = concept(coding(GOAL_ACHIEVEMENT, held.achievement_status))
    category = sdoh_category(held.need)
    if category:
        resource["category"] = [category]
    resource["description"] = concept(coding(GOAL, held.description), text=words(held.description))
    resource["subject"] = reference("Patient", patient_id)
    resource["target"] = [{"measure": concept(text=held.target), "dueDate": held.due.date().isoformat()}]
    if in_current and held.need in conditions:
        resource["addresses"] = [reference("Condition", conditions[held.need])]
    return resource


def care_team(
    plan: Mapping[str, Any], members: Sequence[Mapping[str, Any]], agency_id: str
) -> dict[str, Any]:
    """The plan's care team: each member by relationship and role only (names and contact details stay
    in careplan); a member who left keeps their place with the period's end."""
    participants = []
    for member in members:
        period: dict[str, Any] = {"start": instant(member["created_at"])}
        if member["status"] != "active":
            period["end"] = instant(member["updated_at"])
        participant: dict[str, Any] = {
            "role": [
                concept(
                    coding(TEAM_RELATIONSHIP, member["relationship"]), text=words(member["relationship"])
                ),
                concept(coding(TEAM_ROLE, member["role"]), text=words(member["role"])),
            ],
            "period": period,
        }
        if member["relationship"] == "patient":
            participant["member"] = reference("Patient", plan["patient_id"])
        participants.append(participant)
    resource: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": str(plan["plan_id"]),
        "status": TEAM_STATUS.get(plan["status"], "active"),
        "name": "Care team",
        "subject": reference("Patient", plan["patient_id"]),
        "managingOrganization": [agency_reference(agency_id)],
    }
    if participants:
        resource["participant"] = participants
    return resource


def service_request(row: Mapping[str, Any], spec: ServiceCriteria | None) -> dict[str, Any]:
    """A requested service: categorised by the Gravity categories of the needs its criteria qualify
    it for (where they are ones) and its program category; ``spec``: its criteria, when still known."""
    qualifying = [n for c in (spec.criteria if spec else []) for n in c.any_need or []]
    categories = _categories(qualifying)
    if spec and spec.program_category:
        categories.append(concept(coding(PROGRAM_CATEGORY, spec.program_category)))
    code = row["service_code"]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(row["id"]),
        "status": "active" if row["met"] else "revoked",
        "intent": "order",
        **({"category": categories} if categories else {}),
        "code": concept(coding(SERVICE, code), text=spec.title if spec else words(code)),
        "subject": reference("Patient", row["patient_id"]),
        "authoredOn": instant(row["created_at"]),
    }
    if row.get("requested_by_subject"):
        resource["requester"] = staff_reference(row["requested_by_subject"])
    if not row["met"]:
        said = f"Necessity criteria not met: {', '.join(row['failed_criteria'])}"
        if row["alternatives"]:
            said += f"; alternatives proposed: {', '.join(row['alternatives'])}"
        note: dict[str, Any] = {"text": said}
        if row.get("chosen_alternative"):
            note = {"text": f"{said}; chosen: {row['chosen_alternative']}"}
            if row.get("chosen_by_subject"):
                note["authorReference"] = staff_reference(row["chosen_by_subject"])
            if row.get("chosen_at"):
                note["time"] = instant(row["chosen_at"])
        resource["note"] = [note]
    return resource
