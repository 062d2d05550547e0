"""The closed loop's use cases: each plan intervention routed to a program behind the patient's consent,
referrals moved along their lifecycle by the two agencies, and flagged when a deadline passes."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from careloop_shared.consumer import batch_handler, refusing
from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    PatientRegistered,
    PatientUpdated,
    PlanUpdated,
    ReferralOverdue,
)
from careloop_shared.events import ReceivedEvent
from careloop_shared.ids import new_id
from careloop_shared.logging import get_logger
from referral.config import ReferralContext
from referral.domain.appointments import ASKED_ABOUT
from referral.domain.commands import ChangeReferralStatus
from referral.domain.consent import first_allowed, permission
from referral.domain.deadlines import overdue_event_id
from referral.domain.lifecycle import (
    REROUTE_REASONS,
    TERMINAL,
    IllegalTransition,
    Party,
    check_transition,
)
from referral.domain.matching import MatchRequest
from referral.erasure.notes import history_shown, refuse_note_if_erased, seal_note
from referral.loop.batches import InterventionOfAnotherPlan
from referral.loop.routing import (
    Ask,
    Known,
    announce_made,
    destination,
    ranked_programs,
    record_change,
    referral_as_party,
    route,
)
from referral.loop.routing import ReferralNotFound as ReferralNotFound  # the API's and the FHIR view's
from referral.store import Uow

log = get_logger(__name__)

OVERDUE_BATCH = 500  # referrals flagged per deadline in one unit of work
CLOSED_PLANS = frozenset({"revoked", "completed", "entered-in-error"})
_CLOSED_INTERVENTIONS = frozenset({"cancelled", "stopped", "completed"})


@dataclass(frozen=True)
class StatusChange:
    """The referral as the change left it, with its history, and the referral a rejection re-routed to."""

    referral: dict[str, Any]
    history: list[dict[str, Any]]
    rerouted_to: uuid.UUID | None


# --- what the plan and intake tell us -----------------------------------------------------------


async def when_plan_updated_make_referrals(ctx: ReferralContext, uow: Uow, received: ReceivedEvent) -> None:
    """Remember the plan (a hand-made referral must be for one of its interventions), then refer each
    intervention that needs a referral and has none."""
    plan = received.event
    assert isinstance(plan, PlanUpdated)
    if await _remember_plan(ctx, uow, plan) is None:  # it names another patient's intervention
        raise refusing(received, InterventionOfAnotherPlan())
    if plan.status in CLOSED_PLANS:
        return
    wanted = [i for i in plan.interventions if i.needs_referral and i.status not in _CLOSED_INTERVENTIONS]
    if not wanted:
        return
    referred = await uow.store.loop.interventions_with_referral([i.id for i in wanted])
    known = Known()
    for intervention in wanted:
        if intervention.id in referred:
            continue
        ask = Ask(
            patient_id=plan.patient_id,
            agency_id=plan.agency_id,
            plan_id=plan.plan_id,
            intervention_id=intervention.id,
            need=intervention.need,
            program_category=intervention.program_category,
            priority=intervention.priority,
            language=intervention.language or plan.preferred_language,
            service_request_id=new_id(),
        )
        await route(ctx, uow, ask, received, exclude=[], known=known)


async def _remember_plan(ctx: ReferralContext, uow: Uow, plan: PlanUpdated) -> bool | None:
    return await uow.store.loop.remember_plan(
        {
            "patient_id": plan.patient_id,
            "agency_id": plan.agency_id,
            "plan_id": plan.plan_id,
            "version": plan.version,
            "status": plan.status,
            "updated_at": ctx.clock(),
        },
        [
            {
                **i.model_dump(include={"need", "kind", "program_category", "needs_referral", "status"}),
                "intervention_id": i.id,
                "patient_id": plan.patient_id,
                "agency_id": plan.agency_id,
                "priority": i.priority,
                "language": i.language or plan.preferred_language,
            }
            for i in plan.interventions
        ],
    )


async def when_patient_registered_or_updated_remember(
    ctx: ReferralContext, uow: Uow, received: ReceivedEvent
) -> None:
    event = received.event
    assert isinstance(event, PatientRegistered | PatientUpdated)
    await uow.store.loop.upsert_patient(
        {
            "patient_id": event.patient_id,
            "agency_id": event.agency_id,
            "preferred_language": event.preferred_language,
            "contact_preference": event.contact_preference.value if event.contact_preference else None,
            "postal_area": event.postal_area,
            "as_of": event.registered_at if isinstance(event, PatientRegistered) else event.updated_at,
        }
    )


async def when_consent_recorded_send_waiting_referrals(
    ctx: ReferralContext, uow: Uow, received: ReceivedEvent
) -> None:
    consent, loop = received.event, uow.store.loop
    assert isinstance(consent, ConsentRecorded)
    await loop.record_consents([_consent_row(consent)])
    await _send_waiting(ctx, uow, received, await loop.drafts_of(consent.patient_id))


@batch_handler
async def when_consents_recorded_send_waiting_referrals(
    ctx: ReferralContext, uow: Uow, batch: list[ReceivedEvent]
) -> None:
    """Different patients' consents are recorded, and the referrals waiting for them found, in one statement
    each; the referrals are then sent consent by consent, in order (sending draws on programs' capacity). A
    patient's second consent in the batch: every consent one at a time, as they came (the first's referrals
    are sent under the consents known before the second)."""
    consents = [r.event for r in batch if isinstance(r.event, ConsentRecorded)]
    assert len(consents) == len(batch)
    patients = [c.patient_id for c in consents]
    if len(set(patients)) < len(patients):
        for received in batch:
            await when_consent_recorded_send_waiting_referrals(ctx, uow, received)
        return
    loop = uow.store.loop
    await loop.record_consents([_consent_row(c) for c in consents])
    waiting = await loop.drafts_of_patients(patients)
    for received, patient in zip(batch, patients, strict=True):
        await _send_waiting(ctx, uow, received, waiting.get(patient, []))


def _consent_row(consent: ConsentRecorded) -> dict[str, Any]:
    return {
        "id": consent.consent_id,
        "patient_id": consent.patient_id,
        "agency_id": consent.agency_id,
        "purpose": consent.purpose,
        "agencies": consent.agencies,
        "program_categories": consent.program_categories,
        "period_start": consent.period_start,
        "period_end": consent.period_end,
    }


async def _send_waiting(ctx: ReferralContext, uow: Uow, received: ReceivedEvent, drafts: list[Any]) -> None:
    """Send the patient's referrals that waited for a consent and that the patient's consents now allow."""
    if not drafts:
        return  # no referral was waiting for a consent
    loop = uow.store.loop
    consents = await loop.consents_of(received.event.patient_id)
    for draft in drafts:
        now, by_hand = ctx.clock(), draft["choice"] == "by-hand"
        request = MatchRequest(
            draft["need"], draft["program_category"], draft["language"], draft["postal_area"]
        )
        tried = [] if by_hand else await loop.services_tried(draft["intervention_id"])
        ranked = await ranked_programs(ctx, uow, request, tried)
        if by_hand:  # the care manager's choice, as long as it can still take the patient
            ranked = [r for r in ranked if r.service.id == draft["program_id"]]
        if not ranked:
            continue  # the directory changed; it waits for a program as well as consent
        chosen, allowed = first_allowed(ranked, consents, patient_agency=draft["agency_id"], at=now)
        if allowed is None:
            continue
        sending = destination(ctx, chosen, allowed, now)
        await loop.send_draft(draft["id"], sending)
        # Made by the person whose action made it (none for a plan's), released by careloop.
        maker = {"by": draft["made_by"], "by_role": draft["made_by_role"]}
        announce_made(uow, {**dict(draft), **sending}, chosen, received, **maker)
        await record_change(uow, draft, "requested", Party.requester, draft["agency_id"], now, received)


async def when_consent_revoked_stop_unanswered_referrals(
    ctx: ReferralContext, uow: Uow, received: ReceivedEvent
) -> None:
    """Unanswered referrals sent under the consent are cancelled unless another consent covers them."""
    revoked, loop, now = received.event, uow.store.loop, ctx.clock()
    assert isinstance(revoked, ConsentRevoked)
    await loop.revoke_consent(revoked.consent_id, revoked.patient_id, revoked.agency_id, revoked.revoked_at)
    consents = await loop.consents_of(revoked.patient_id)
    for referral in await loop.requested_under(revoked.consent_id):
        still = permission(
            consents,
            patient_agency=referral["agency_id"],
            target_agency=referral["receiving_agency_id"],
            category=referral["program_category"],
            at=now,
        )
        if isinstance(still, uuid.UUID):
            await loop.set_consent(referral["id"], still)
            continue
        reason = "consent-revoked"
        await loop.set_status(
            referral["id"], status="cancelled", reason=reason, outcome=None, at=now, closed=True
        )
        await record_change(
            uow, referral, "cancelled", Party.requester, referral["agency_id"], now, received, reason=reason
        )


# --- the agencies move the referral -------------------------------------------------------------


async def change_referral_status(ctx: ReferralContext, uow: Uow, cmd: ChangeReferralStatus) -> StatusChange:
    """Move a referral along its lifecycle; a rejection for want of capacity or eligibility re-routes
    it to the next best program. The note is kept sealed, and the history answered with notes opened."""
    loop = uow.store.loop
    referral, sides = await referral_as_party(
        uow, cmd.agency_id, cmd.referral_id, receiving_only=cmd.receiving_only
    )
    if referral["status"] == "draft" and cmd.status == "requested":
        raise IllegalTransition("a waiting referral is sent when the patient's consent arrives")
    party = check_transition(referral["status"], cmd.status, sides, reason=cmd.reason, outcome=cmd.outcome)
    await refuse_note_if_erased(uow, referral["patient_id"], cmd.note)
    note_sealed = await seal_note(ctx.keys, referral, cmd.note)
    now = ctx.clock()
    outcome = asdict(cmd.outcome) if cmd.outcome else None
    await loop.set_status(
        cmd.referral_id,
        status=cmd.status,
        reason=cmd.reason,
        outcome=outcome,
        at=now,
        closed=cmd.status in TERMINAL,
    )
    await record_change(
        uow,
        referral,
        cmd.status,
        party,
        cmd.agency_id,
        now,
        None,
        by=cmd.by,
        by_role=cmd.by_role,
        reason=cmd.reason,
        outcome=outcome,
        note_sealed=note_sealed,
    )
    rerouted = None
    if cmd.status == "rejected" and cmd.reason in REROUTE_REASONS:
        ask = Ask(
            patient_id=referral["patient_id"],
            agency_id=referral["agency_id"],
            plan_id=referral["plan_id"],
            intervention_id=referral["intervention_id"],
            need=referral["need"],
            program_category=referral["program_category"],
            priority=referral["priority"],
            language=referral["language"],
            service_request_id=referral["service_request_id"],
            replaces=cmd.referral_id,
            by=cmd.by,  # made on behalf of the person whose rejection re-routes it
            by_role=cmd.by_role,
        )
        # The caller is a party to this referral (above), and the re-route is the referring agency's:
        # its patient's details, consents and gap are read, and its new referral made, acting for it.
        async with uow.store.acting_for(referral["agency_id"]):
            tried = await loop.services_tried(ask.intervention_id)
            rerouted = await route(ctx, uow, ask, None, exclude=tried)
    changed = await loop.get_referral(cmd.referral_id)
    assert changed is not None
    history = await history_shown(ctx.keys, referral, await loop.history_of(cmd.referral_id))
    return StatusChange(dict(changed), history, rerouted)


# --- deadlines ------------------------------------------------------------------------------------


async def flag_overdue_referrals(ctx: ReferralContext, uow: Uow) -> bool:
    """Periodic: ReferralOverdue once per referral and deadline (attendance: once per booking), the flag
    and the event committed together. True when a deadline filled its batch and more may be overdue."""
    now, loop, more = ctx.clock(), uow.store.loop, False
    attendance = partial(
        loop.claim_attendance_overdue, grace=ctx.deadlines.attendance_grace, statuses=sorted(ASKED_ABOUT)
    )
    for deadline, claim in (
        ("response", loop.claim_response_overdue),
        ("outcome", loop.claim_outcome_overdue),
        ("attendance", attendance),  # again with each booking: its id names the due time
    ):
        rows = await claim(now, OVERDUE_BATCH)
        for row in rows:
            again = row["due_at"] if deadline == "attendance" else None
            uow.emit(
                ReferralOverdue(
                    patient_id=row["patient_id"],
                    agency_id=row["agency_id"],
                    referral_id=row["id"],
                    receiving_agency_id=row["receiving_agency_id"],
                    deadline=deadline,
                    due_at=row["due_at"],
                ),
                event_id=overdue_event_id(row["id"], deadline, again),
            )
        if rows:
            log.info("referrals overdue", deadline=deadline, count=len(rows))
        more = more or len(rows) == OVERDUE_BATCH
    return more
