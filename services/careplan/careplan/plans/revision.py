"""The one way a plan changes, for every wing: lock it (checking agency and version), draft it anew from
its inputs, save a new version with who changed what and why, and announce it with PlanUpdated."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from careloop_shared import contracts
from careloop_shared.errors import Conflict, NotFound
from careloop_shared.events import ReceivedEvent
from careplan.config import CareplanContext
from careplan.domain.commands import Command
from careplan.domain.plan import PlanDocument, PlanState
from careplan.domain.planning import redraft
from careplan.store import Uow


class PlanNotFound(NotFound):
    """No plan for this patient in the caller's agency (another agency's looks the same)."""

    def __init__(self) -> None:
        super().__init__("care plan not found")


class StaleVersion(Conflict):
    """The caller edited an older version than the plan is at; the answer names the current one."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the plan is at version {current}; reload and try again", current_version=current)


@dataclass(frozen=True)
class Change:
    """Who changed the plan, why, and what caused it: a person's command, or careloop on its own
    (``changed_by`` "system", no ``changed_by_subject``) reacting to ``caused_by``."""

    reason: str
    changed_by: str  # the role of whoever changed it, or "system"
    at: datetime
    caused_by: ReceivedEvent | None = None
    changed_by_subject: str | None = None  # the person; None when careloop did it on its own

    @classmethod
    def by(cls, command: Command, reason: str, at: datetime) -> Change:
        """A change a person asked for."""
        return cls(reason, command.by_role, at, changed_by_subject=command.by)


async def plan_to_change(
    uow: Uow, agency_id: str, patient_id: uuid.UUID, expected_version: int | None = None
) -> PlanState:
    """The patient's drafted plan, locked, for a command of the caller's agency made against
    ``expected_version`` (when it names one)."""
    plan = await uow.store.plans.lock_plan(patient_id)
    if plan is None or plan.agency_id != agency_id or plan.version == 0:
        raise PlanNotFound()
    if expected_version is not None and plan.version != expected_version:
        raise StaleVersion(plan.version)
    return plan


async def save(
    uow: Uow,
    plan: PlanState,
    document: PlanDocument,
    status: str,
    change: Change,
    *,
    based_on_assessment: uuid.UUID | None = None,
) -> int:
    """Store a new version and announce it; when neither document nor status changed, only the inputs.
    Returns the plan's version after."""
    if plan.document is not None and plan.status == status and plan.document.stored() == document.stored():
        await uow.store.plans.set_plan_inputs(plan)
        return plan.version
    version = plan.version + 1
    await uow.store.plans.save_version(
        plan,
        version=version,
        status=status,
        document=document,
        reason=change.reason,
        changed_by=change.changed_by,
        changed_by_subject=change.changed_by_subject,
        caused_by_event=change.caused_by.envelope.id if change.caused_by else None,
        at=change.at,
    )
    uow.emit(
        _announcement(plan, version, status, document, change, based_on_assessment),
        caused_by=change.caused_by,
    )
    # A later event in the same batch sees this version.
    plan.version, plan.status, plan.document = version, status, document
    return version


async def revise(
    ctx: CareplanContext,
    uow: Uow,
    plan: PlanState,
    change: Change,
    *,
    status: str | None = None,
    based_on_assessment: uuid.UUID | None = None,
) -> int:
    """Draft the plan anew from its (changed) inputs and save it; its status stays unless given."""
    document = redraft(ctx.library, plan, change.at, ctx.criteria.service_programs())
    return await save(
        uow, plan, document, status or plan.status, change, based_on_assessment=based_on_assessment
    )


def _announcement(
    plan: PlanState,
    version: int,
    status: str,
    document: PlanDocument,
    change: Change,
    based_on_assessment: uuid.UUID | None,
) -> contracts.PlanUpdated:
    return contracts.PlanUpdated(
        patient_id=plan.patient_id,
        agency_id=plan.agency_id,
        plan_id=plan.plan_id,
        version=version,
        status=status,
        risk_level=document.risk_level,
        # Each field's value as the plan holds it (a model's ``__dict__`` is its fields), validated once,
        # by the contract: a third of what dumping each to a dict first cost.
        goals=[contracts.Goal.model_validate(g.__dict__) for g in document.goals],
        interventions=[contracts.Intervention.model_validate(i.__dict__) for i in document.interventions],
        follow_up=contracts.FollowUpCadence(
            every_days=document.follow_up.every_days,
            priority=document.follow_up.priority,
            channel=document.follow_up.channel,
        ),
        based_on_assessment_id=based_on_assessment,
        reason=change.reason,
        changed_by_role=change.changed_by,
        preferred_language=document.preferred_language,
        contact_preference=document.contact_preference,
        actor_id=change.changed_by_subject,
        actor_role=change.changed_by if change.changed_by_subject else None,
    )
