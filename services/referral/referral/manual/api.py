"""The route of referrals made by hand: a care manager refers a patient to a program they chose, or
overrides careloop's choice. The answer shows the referral: audited first, as any referral read."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter

from careloop_shared.http import Audit, Commands, CurrentPrincipal, Runtime, needs
from careloop_shared.patient_keys import key_ahead
from referral.domain.commands import MakeReferral
from referral.loop.api import KEYS_UNAVAILABLE, Ctx, audit_shown
from referral.loop.schemas import HistoryEntry, ReferralDetail
from referral.manual import handlers
from referral.manual.schemas import ReferralIn

router = APIRouter(prefix="/v1", tags=["referrals"])


def _made(made: handlers.Made) -> ReferralDetail:
    return ReferralDetail(**made.referral, history=[HistoryEntry(**h) for h in made.history])


@router.post(
    "/referrals",
    status_code=201,
    response_model=ReferralDetail,
    responses={
        404: {"description": "No care plan of this patient is known to the caller's agency"},
        409: {"description": "The intervention has an open referral that may not be replaced"},
        410: {"description": "A note about a patient whose data was erased; body names erased_at once known"},
        422: {"description": "Not an intervention of the plan, or a program that cannot take the patient"},
        503: {"description": KEYS_UNAVAILABLE},
    },
    openapi_extra=needs("referral:make"),
)
async def make_referral(
    body: ReferralIn, who: CurrentPrincipal, commands: Commands, audit: Audit, runtime: Runtime, ctx: Ctx
) -> Any:
    """Refer the patient, for an intervention of their plan, to the program chosen. An automatic referral
    of the intervention not yet accepted is cancelled (`overridden-by-care-manager`) and replaced. Without
    the patient's consent to share with the program's agency it waits as a draft (`awaiting-consent`).
    A note is kept sealed with the patient's data key."""
    if body.note is not None:
        await key_ahead(ctx.keys, who.agency_id, body.patient_id)  # before the transaction opens
    command = MakeReferral(
        who.agency_id,
        body.patient_id,
        body.intervention_id,
        body.service_id,
        by=who.subject,
        by_role=who.role,
        need=body.need,
        priority=body.priority,
        note=body.note,
    )
    try:
        answer = await commands.run(handlers.make_referral_by_hand, command, status_code=201, respond=_made)
    except handlers.PlanNotFound as refused:
        # The patient is named in the body, where the kernel's audit of refusals does not look.
        denied = audit.entry(body.patient_id, "referral", outcome="denied", outcome_detail=str(refused))
        await runtime.audit.record([denied])
        raise
    shown = json.loads(bytes(answer.body))
    made = (uuid.UUID(shown["patient_id"]), uuid.UUID(shown["id"]), shown["referring_agency_id"])
    await audit_shown(audit, [made])
    return answer
