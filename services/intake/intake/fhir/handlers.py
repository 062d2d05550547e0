"""The import of a FHIR QuestionnaireResponse: the native assessment command, answered in FHIR."""

from __future__ import annotations

from typing import Any

from intake import handlers
from intake.config import IntakeContext
from intake.domain.commands import AssessPatient
from intake.erasure.handlers import revealed
from intake.fhir.assessments import questionnaire_response


async def import_assessment(ctx: IntakeContext, uow: handlers.Uow, cmd: AssessPatient) -> dict[str, Any]:
    """Scored, stored and announced exactly as ``POST /v1/patients/{id}/assessments`` does (the same
    handler, so the same events); the answer is the QuestionnaireResponse as intake now serves it."""
    assessment_id = await handlers.assess_patient(ctx, uow, cmd)
    row = await uow.store.get_assessment(cmd.agency_id, assessment_id)
    assert row is not None  # written by this unit of work a moment ago
    [shown] = await revealed(ctx, uow.store, cmd.agency_id, [row])
    return questionnaire_response(shown, ctx.rules)
