"""careplan's use cases."""

from __future__ import annotations

import uuid
from datetime import datetime

from careloop_shared.contracts import (
    FollowUpCadence,
    Goal,
    Intervention,
    PatientAssessed,
    PlanUpdated,
    RiskLevel,
)
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import SafeMessageError
from careloop_shared.outbox import UnitOfWork
from careplan import store
from careplan.domain.planning import PlanLibrary, draft_plan


class ForeignAgencyAssessment(SafeMessageError):
    """An assessment names an agency other than the one whose patient the plan belongs to."""


async def when_patient_assessed_revise_plan(
    library: PlanLibrary, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    assessed = received.event
    assert isinstance(assessed, PatientAssessed)
    current = await store.lock_current(uow.conn, assessed.patient_id)
    if current is not None and current["agency_id"] != assessed.agency_id:
        raise ForeignAgencyAssessment("assessment from another agency than the plan's")
    document = draft_plan(
        library,
        patient_id=assessed.patient_id,
        needs=[n.code for n in assessed.needs],
        risk_level=assessed.risk_level.value,
        now=assessed.assessed_at,
    )
    plan_id = current["plan_id"] if current else uuid.uuid4()
    version = current["version"] + 1 if current else 1
    await store.save_version(
        uow.conn,
        patient_id=assessed.patient_id,
        plan_id=plan_id,
        agency_id=assessed.agency_id,
        version=version,
        status="active",
        document=document,
        reason=f"assessment {assessed.assessment_id} ({assessed.instrument})",
        caused_by_event=received.envelope.id,
        at=assessed.assessed_at,
    )
    uow.emit(
        PlanUpdated(
            patient_id=assessed.patient_id,
            agency_id=assessed.agency_id,
            plan_id=plan_id,
            version=version,
            status="active",
            risk_level=assessed.risk_level,
            goals=[Goal(**{**g, "due": datetime.fromisoformat(g["due"])}) for g in document["goals"]],
            interventions=[Intervention(**i) for i in document["interventions"]],
            follow_up=FollowUpCadence(
                every_days=document["follow_up"]["every_days"],
                priority=RiskLevel(document["follow_up"]["priority"]),
            ),
            based_on_assessment_id=assessed.assessment_id,
        ),
        caused_by=received,
    )
