"""Referrals a care manager makes by hand: for an intervention of the patient's current plan, to a
program they chose from the directory, replacing an automatic referral the receiving agency has not
taken up yet. The program must be able to take the patient (the matching rules say why not), and the
patient's consent gates sending it, exactly as for a referral careloop makes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careloop_shared.errors import Conflict, Invalid, NotFound
from careloop_shared.ids import new_id
from referral.config import ReferralContext
from referral.domain.commands import MakeReferral
from referral.domain.consent import permission
from referral.domain.lifecycle import OVERRIDABLE, OVERRIDDEN, TERMINAL, Party, check_transition
from referral.domain.matching import WHY_NOT, MatchRequest, Ranked, ineligible
from referral.erasure.notes import history_shown, refuse_note_if_erased
from referral.loop.handlers import CLOSED_PLANS
from referral.loop.routing import Ask, record_change, refer
from referral.store import Uow


class PlanNotFound(NotFound):
    """No plan known of a patient of the caller's agency (another agency's patient looks the same)."""

    def __init__(self) -> None:
        super().__init__("no care plan of this patient is known")


class OpenReferral(Conflict):
    """The intervention has an open referral that a new one may not replace."""

    def __init__(self, why: str, referral_id: uuid.UUID) -> None:
        super().__init__(why, referral_id=str(referral_id))


@dataclass(frozen=True)
class Made:
    """The referral as made, with its history (sent, or waiting for the patient's consent)."""

    referral: dict[str, Any]
    history: list[dict[str, Any]]


async def make_referral_by_hand(ctx: ReferralContext, uow: Uow, cmd: MakeReferral) -> Made:
    """Refer for an intervention of the current plan of the caller's agency's patient (404 otherwise) to
    a program that can take the patient (422 naming why not), after the intervention's open referral
    made way; sent now, or a draft until the patient's consent covers the program's agency."""
    loop, now = uow.store.loop, ctx.clock()
    plan = await loop.plan_intervention(cmd.patient_id, cmd.intervention_id)
    if plan is None or plan["agency_id"] != cmd.agency_id:
        raise PlanNotFound()
    await refuse_note_if_erased(uow, cmd.patient_id, cmd.note)
    if plan["intervention_id"] is None:
        where = ["body", "intervention_id"]
        raise Invalid.at(where, "not_in_plan", "the intervention is not in the patient's current plan")
    if plan["plan_status"] in CLOSED_PLANS:
        raise Conflict(f"the patient's care plan is {plan['plan_status']}: nothing is referred from it")
    service = await uow.store.directory.program(cmd.service_id)
    if service is None:
        raise Invalid.at(["body", "service_id"], "unknown_service", "service_id names no directory service")
    patient = await loop.get_patient(cmd.patient_id)
    language = plan["language"] or (patient["preferred_language"] if patient else None)
    postal_area = patient["postal_area"] if patient else None
    need = cmd.need or plan["need"]
    request = MatchRequest(need, service.program_category, language, postal_area)
    why = ineligible(service, request, ctx.weights)
    if why is not None:
        raise Invalid.at(["body", "service_id"], why.replace("-", "_"), WHY_NOT[why])
    latest = await loop.latest_referral(cmd.intervention_id)
    await _make_way(uow, cmd, latest, now)
    ask = Ask(
        patient_id=cmd.patient_id,
        agency_id=cmd.agency_id,
        plan_id=plan["plan_id"],
        intervention_id=cmd.intervention_id,
        need=need,
        program_category=service.program_category,  # what a consent names
        priority=cmd.priority or plan["priority"],
        language=language,
        service_request_id=latest["service_request_id"] if latest else new_id(),
        replaces=latest["id"] if latest else None,
        by=cmd.by,
        by_role=cmd.by_role,
        choice="by-hand",
        note=cmd.note,
    )
    allowed = permission(
        await loop.consents_of(cmd.patient_id),
        patient_agency=cmd.agency_id,
        target_agency=service.agency_id,
        category=service.program_category,
        at=now,
    )
    made = await refer(
        ctx, uow, ask, Ranked(service, 0.0), allowed, None, language=language, postal_area=postal_area
    )
    if made is None:
        raise Conflict("the intervention's referrals changed meanwhile; read them and try again")
    referral = await loop.get_referral(made)
    assert referral is not None
    return Made(dict(referral), await history_shown(ctx.keys, referral, await loop.history_of(made)))


async def _make_way(uow: Uow, cmd: MakeReferral, latest: Any, now: datetime) -> None:
    """The intervention's open referral makes way: an automatic one the receiving agency has not taken
    up is cancelled as overridden by the care manager; any other open one is refused (409)."""
    if latest is None or latest["status"] in TERMINAL:
        return
    if latest["choice"] != "automatic" or latest["status"] not in OVERRIDABLE:
        raise OpenReferral("the intervention has an open referral: cancel it to refer again", latest["id"])
    if latest["program_id"] == cmd.service_id:
        raise OpenReferral("the intervention's open referral already goes to this program", latest["id"])
    requester = frozenset({Party.requester})
    party = check_transition(latest["status"], "cancelled", requester, reason=OVERRIDDEN, outcome=None)
    await uow.store.loop.set_status(
        latest["id"], status="cancelled", reason=OVERRIDDEN, outcome=None, at=now, closed=True
    )
    await record_change(
        uow,
        latest,
        "cancelled",
        party,
        cmd.agency_id,
        now,
        None,
        by=cmd.by,
        by_role=cmd.by_role,
        reason=OVERRIDDEN,
    )
