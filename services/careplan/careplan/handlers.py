"""careplan's use cases: reactions to events, and care managers' commands.

Every change of a plan goes through ``_save`` and makes a new version with who changed what and why;
each version is announced with PlanUpdated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from careloop_shared.consumer import batch_handler
from careloop_shared.contracts import (
    CareTeamChanged,
    EducationProvided,
    FollowUpCadence,
    FollowUpCompleted,
    Goal,
    Intervention,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    PlanAlternativesProposed,
    PlanUpdated,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import SafeMessageError, get_logger
from careloop_shared.outbox import UnitOfWork
from careplan import store
from careplan.domain.necessity import Decision, NecessityCriteria, decide
from careplan.domain.planning import PlanInputs, PlanLibrary, carry_over, draft_plan, highest_risk
from careplan.domain.versions import (
    apply_goal_progress,
    apply_referral_status,
    change_status,
    plan_status_after_progress,
)

log = get_logger(__name__)


class ForeignAgencyAssessment(SafeMessageError):
    """An assessment names an agency other than the one whose patient the plan belongs to."""


class PlanNotFound(SafeMessageError):
    """No plan for this patient in the caller's agency."""


class NotFound(SafeMessageError):
    """No such care team member, service request or intervention here."""


class StaleVersion(SafeMessageError):
    def __init__(self, current: int) -> None:
        super().__init__(f"the plan is at version {current}; reload and try again")
        self.current = current


class Refused(SafeMessageError):
    """A request that cannot be carried out in the plan's present state."""


@dataclass(frozen=True)
class Change:
    """Who changed the plan, why, and what caused it."""

    reason: str
    changed_by: str
    at: datetime
    caused_by: ReceivedEvent | None = None


@dataclass(frozen=True)
class Planning:
    library: PlanLibrary
    criteria: NecessityCriteria


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---- the one way a plan changes ---------------------------------------------------------------------


async def _save(
    uow: UnitOfWork,
    plan: dict[str, Any],
    document: dict[str, Any],
    status: str,
    change: Change,
    *,
    based_on_assessment: uuid.UUID | None = None,
) -> int | None:
    """Store a new version and announce it; when neither document nor status changed, only the inputs."""
    if plan["document"] == document and plan["status"] == status:
        await store.set_plan_inputs(uow.conn, plan)
        return None
    version = plan["version"] + 1
    await store.save_version(
        uow.conn,
        plan,
        version=version,
        status=status,
        document=document,
        reason=change.reason,
        changed_by=change.changed_by,
        caused_by_event=change.caused_by.envelope.id if change.caused_by else None,
        at=change.at,
    )
    uow.emit(
        PlanUpdated(
            patient_id=plan["patient_id"],
            agency_id=plan["agency_id"],
            plan_id=plan["plan_id"],
            version=version,
            status=status,
            risk_level=RiskLevel(document["risk_level"]),
            goals=[Goal(**{**g, "due": datetime.fromisoformat(g["due"])}) for g in document["goals"]],
            interventions=[Intervention(**i) for i in document["interventions"]],
            follow_up=FollowUpCadence(
                every_days=document["follow_up"]["every_days"],
                priority=RiskLevel(document["follow_up"]["priority"]),
            ),
            based_on_assessment_id=based_on_assessment,
            reason=change.reason,
            changed_by_role=change.changed_by,
            preferred_language=document.get("preferred_language"),
            contact_preference=document.get("contact_preference"),
        ),
        caused_by=change.caused_by,
    )
    plan.update(version=version, status=status, document=document)  # a later event in the batch sees it
    return version


def _redraft(library: PlanLibrary, plan: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The plan drafted anew from its inputs, keeping the progress recorded on the previous version."""
    assessments = sorted(plan["assessments"].values(), key=lambda a: a["assessed_at"])
    overrides = plan["overrides"]
    inputs = PlanInputs(
        patient_id=plan["patient_id"],
        needs=[n for a in assessments for n in a["needs"]],
        risk_level=highest_risk([a["risk_level"] for a in assessments]),
        urgent_flags=list(dict.fromkeys(f for a in assessments for f in a["urgent_flags"])),
        preferred_language=overrides.get("preferred_language") or plan["preferred_language"],
        contact_preference=overrides.get("contact_preference") or plan["contact_preference"],
        services=list(plan["services"]),
        agreed_goals=list(plan["agreed_goals"]),
    )
    return carry_over(plan["document"], draft_plan(library, inputs, now=at))


async def _locked(conn: asyncpg.Connection, patient_id: uuid.UUID) -> dict[str, Any] | None:
    return await store.lock_plan(conn, patient_id)


async def _plan_of(uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID) -> dict[str, Any]:
    plan = await _locked(uow.conn, patient_id)
    if plan is None or plan["agency_id"] != agency_id or plan["version"] == 0:
        raise PlanNotFound("care plan not found")
    return plan


def _expect(plan: dict[str, Any], expected_version: int) -> None:
    if plan["version"] != expected_version:
        raise StaleVersion(plan["version"])


# ---- reactions to events ----------------------------------------------------------------------------


@batch_handler
async def when_patient_assessed_revise_plan(
    planning: Planning, uow: UnitOfWork, batch: list[ReceivedEvent]
) -> None:
    """Revise each assessed patient's plan; a batch opens and locks its plans in two statements."""
    assessed_events = [r.event for r in batch if isinstance(r.event, PatientAssessed)]
    assert len(assessed_events) == len(batch)
    # The first assessment opens a (draft) plan; later ones find it. Either way it is locked.
    await store.open_plans(uow.conn, {e.patient_id: (e.agency_id, e.assessed_at) for e in assessed_events})
    plans = await store.lock_plans(uow.conn, [e.patient_id for e in assessed_events])
    for received in batch:
        await _revise_for_assessment(planning, uow, plans[received.event.patient_id], received)


async def _revise_for_assessment(
    planning: Planning, uow: UnitOfWork, plan: dict[str, Any], received: ReceivedEvent
) -> None:
    assessed = received.event
    assert isinstance(assessed, PatientAssessed)
    if plan["agency_id"] != assessed.agency_id:
        raise ForeignAgencyAssessment("assessment from another agency than the plan's")
    group = planning.library.group_of(assessed.instrument)
    previous = plan["assessments"].get(group)
    if previous is not None and previous["assessed_at"] > assessed.assessed_at.isoformat():
        return  # an older result of the same kind arrived late: the newer one stands
    plan["assessments"] = {
        **plan["assessments"],
        group: {
            "instrument": assessed.instrument,
            "assessment_id": str(assessed.assessment_id),
            "needs": [n.model_dump() for n in assessed.needs],
            "risk_level": assessed.risk_level.value,
            "urgent_flags": list(assessed.urgent_flags),
            "assessed_at": assessed.assessed_at.isoformat(),
        },
    }
    document = _redraft(planning.library, plan, assessed.assessed_at)
    status = plan["status"] if plan["status"] == "on-hold" else "active"
    change = Change(f"assessment:{assessed.instrument}", "system", assessed.assessed_at, received)
    await _save(uow, plan, document, status, change, based_on_assessment=assessed.assessment_id)


async def when_patient_details_change_personalise_plan(
    planning: Planning, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, PatientRegistered | PatientUpdated)
    contact = event.contact_preference.value if event.contact_preference else None
    await store.upsert_patient(
        uow.conn, event.patient_id, event.agency_id, event.preferred_language, contact, received.envelope.time
    )
    plan = await _locked(uow.conn, event.patient_id)
    if plan is None or plan["version"] == 0 or plan["status"] in ("revoked", "completed"):
        return
    document = _redraft(planning.library, plan, received.envelope.time)
    await _save(
        uow,
        plan,
        document,
        plan["status"],
        Change("preferences-changed", "system", received.envelope.time, received),
    )


async def when_referral_status_changes_track_intervention(
    planning: Planning, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, ReferralStatusChanged)
    plan = await _locked(uow.conn, event.patient_id)
    if plan is None or plan["document"] is None:
        log.warning("referral status for a patient without a plan", referral_id=str(event.referral_id))
        return
    document = apply_referral_status(plan["document"], str(event.intervention_id), event.to_status)
    if document is not None:
        await _save(
            uow, plan, document, plan["status"], Change("progress", "system", event.changed_at, received)
        )


async def when_follow_up_completed_record_progress(
    planning: Planning, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, FollowUpCompleted)
    plan = await _locked(uow.conn, event.patient_id)
    if plan is None or plan["document"] is None:
        return
    document = plan["document"]
    for progress in event.goal_progress:
        document = apply_goal_progress(document, str(progress.goal_id), progress.progress) or document
    status = plan_status_after_progress(document, plan["status"])
    await _save(uow, plan, document, status, Change("progress", "system", event.completed_at, received))


# ---- care managers' commands ------------------------------------------------------------------------


async def change_plan_status(
    uow: UnitOfWork,
    agency_id: str,
    role: str,
    patient_id: uuid.UUID,
    status: str,
    expected_version: int,
) -> int:
    plan = await _plan_of(uow, agency_id, patient_id)
    _expect(plan, expected_version)
    try:
        new_status = change_status(plan["document"], plan["status"], status)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    version = await _save(uow, plan, plan["document"], new_status, Change("status-change", role, now_utc()))
    return version or plan["version"]


async def add_member(
    uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID, member: dict[str, Any]
) -> dict[str, Any]:
    await _plan_of(uow, agency_id, patient_id)
    row = await store.insert_member(
        uow.conn,
        {**member, "id": uuid.uuid4(), "patient_id": patient_id, "agency_id": agency_id, "at": now_utc()},
    )
    _announce_member(uow, agency_id, patient_id, row, "added")
    return dict(row)


async def change_member(
    uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID, member_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    current = await store.get_member(uow.conn, agency_id, patient_id, member_id, lock=True)
    if current is None or current["status"] != "active":
        raise NotFound("care team member not found")
    changes = {k: v for k, v in changes.items() if current[k] != v}
    if not changes:
        return dict(current)
    row = await store.update_member(uow.conn, member_id, changes, now_utc())
    _announce_member(uow, agency_id, patient_id, row, "changed")
    return dict(row)


async def remove_member(uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID, member_id: uuid.UUID) -> None:
    current = await store.get_member(uow.conn, agency_id, patient_id, member_id, lock=True)
    if current is None or current["status"] != "active":
        raise NotFound("care team member not found")
    row = await store.update_member(uow.conn, member_id, {"status": "inactive"}, now_utc())
    _announce_member(uow, agency_id, patient_id, row, "removed")


def _announce_member(uow: UnitOfWork, agency_id: str, patient_id: uuid.UUID, row: Any, change: str) -> None:
    uow.emit(
        CareTeamChanged(
            patient_id=patient_id,
            agency_id=agency_id,
            member_id=row["id"],
            change=change,
            relationship=row["relationship"],
            role=row["role"],
        )
    )


async def contribute(
    uow: UnitOfWork,
    planning: Planning,
    agency_id: str,
    role: str,
    patient_id: uuid.UUID,
    contribution: dict[str, Any],
) -> int:
    """Record a care team member's note, agreed goal or preference; the last two make a new version."""
    plan = await _plan_of(uow, agency_id, patient_id)
    _expect(plan, contribution["expected_version"])
    member = await store.get_member(uow.conn, agency_id, patient_id, contribution["member_id"])
    if member is None or member["status"] != "active":
        raise NotFound("care team member not found")
    kind, at = contribution["kind"], now_utc()
    await store.insert_contribution(
        uow.conn,
        {
            "id": uuid.uuid4(),
            "patient_id": patient_id,
            "agency_id": agency_id,
            "member_id": member["id"],
            "kind": kind,
            "goal_id": contribution.get("goal_id"),
            "note": contribution.get("note"),
            "preference": contribution.get("preference"),
            "plan_version": plan["version"],
            "at": at,
        },
    )
    if kind == "note":
        return int(plan["version"])
    if kind == "agreed-goal":
        goal_id = str(contribution["goal_id"])
        if goal_id not in {g["id"] for g in plan["document"]["goals"]}:
            raise NotFound("goal not found in the current plan")
        plan["agreed_goals"] = list(dict.fromkeys([*plan["agreed_goals"], goal_id]))
    else:
        plan["overrides"] = {**plan["overrides"], **contribution["preference"]}
    document = _redraft(planning.library, plan, at)
    version = await _save(uow, plan, document, plan["status"], Change("care-team-contribution", role, at))
    return version or int(plan["version"])


async def request_service(
    uow: UnitOfWork,
    planning: Planning,
    agency_id: str,
    role: str,
    patient_id: uuid.UUID,
    service_code: str,
    expected_version: int,
) -> dict[str, Any]:
    """Check a requested service against its necessity criteria; add it, or propose alternatives."""
    plan = await _plan_of(uow, agency_id, patient_id)
    _expect(plan, expected_version)
    decision: Decision = decide(planning.criteria, service_code, plan["document"])
    request_id, at = uuid.uuid4(), now_utc()
    await store.insert_service_request(
        uow.conn,
        {
            "id": request_id,
            "patient_id": patient_id,
            "agency_id": agency_id,
            "plan_id": plan["plan_id"],
            "service_code": service_code,
            "met": decision.met,
            "failed_criteria": decision.failed_criteria,
            "alternatives": decision.alternatives,
            "criteria_version": decision.criteria_version,
            "requested_by": role,
            "at": at,
        },
    )
    version = plan["version"]
    if decision.met:
        version = await _add_service(uow, planning, plan, service_code, Change("service-request", role, at))
    else:
        uow.emit(
            PlanAlternativesProposed(
                patient_id=patient_id,
                agency_id=agency_id,
                plan_id=plan["plan_id"],
                service_request_id=request_id,
                service_code=service_code,
                failed_criteria=decision.failed_criteria,
                alternatives=decision.alternatives,
            )
        )
    return {
        "service_request_id": request_id,
        "service_code": service_code,
        "decision": "met" if decision.met else "not-met",
        "failed_criteria": decision.failed_criteria,
        "alternatives": decision.alternatives,
        "criteria_version": decision.criteria_version,
        "plan_version": version,
    }


async def choose_alternative(
    uow: UnitOfWork,
    planning: Planning,
    agency_id: str,
    role: str,
    patient_id: uuid.UUID,
    request_id: uuid.UUID,
    alternative: str,
    expected_version: int,
) -> int:
    plan = await _plan_of(uow, agency_id, patient_id)
    _expect(plan, expected_version)
    request = await store.get_service_request(uow.conn, agency_id, patient_id, request_id, lock=True)
    if request is None:
        raise NotFound("service request not found")
    if request["met"] or request["chosen_alternative"] is not None:
        raise Refused("this request has no open alternatives")
    if alternative not in request["alternatives"]:
        raise Refused("not one of the alternatives proposed for this request")
    at = now_utc()
    await store.choose_alternative(uow.conn, request_id, alternative, at)
    return await _add_service(uow, planning, plan, alternative, Change("alternative-chosen", role, at))


async def _add_service(
    uow: UnitOfWork, planning: Planning, plan: dict[str, Any], service_code: str, change: Change
) -> int:
    plan["services"] = list(dict.fromkeys([*plan["services"], service_code]))
    document = _redraft(planning.library, plan, change.at)
    version = await _save(uow, plan, document, plan["status"], change)
    return version or int(plan["version"])


async def record_education(
    uow: UnitOfWork,
    agency_id: str,
    role: str,
    patient_id: uuid.UUID,
    intervention_id: uuid.UUID,
    materials: list[str] | None,
) -> int:
    """Record that education was given; the education intervention is then completed."""
    plan = await _plan_of(uow, agency_id, patient_id)
    intervention = next(
        (i for i in plan["document"]["interventions"] if i["id"] == str(intervention_id)), None
    )
    if intervention is None:
        raise NotFound("intervention not found in the current plan")
    given = materials or intervention["education_materials"]
    if not given:
        raise Refused("no education material to record for this intervention")
    at = now_utc()
    await store.insert_education(
        uow.conn,
        {
            "id": uuid.uuid4(),
            "patient_id": patient_id,
            "agency_id": agency_id,
            "plan_id": plan["plan_id"],
            "intervention_id": intervention_id,
            "materials": given,
            "language": intervention["language"],
            "recorded_by": role,
            "at": at,
        },
    )
    uow.emit(
        EducationProvided(
            patient_id=patient_id,
            agency_id=agency_id,
            plan_id=plan["plan_id"],
            intervention_id=intervention_id,
            materials=given,
            language=intervention["language"],
            provided_at=at,
        )
    )
    document = plan["document"]
    if intervention["kind"] == "education":
        document = {
            **document,
            "interventions": [
                {**i, "status": "completed"} if i["id"] == str(intervention_id) else i
                for i in document["interventions"]
            ],
        }
    version = await _save(uow, plan, document, plan["status"], Change("education-provided", role, at))
    return version or int(plan["version"])
