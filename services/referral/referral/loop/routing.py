"""Routing: which program an intervention's referral goes to, making it, and recording its changes.

The directory's candidates are ranked for the patient (need, language, area, capacity, quality), then
the patient's consent decides: the best program it allows gets the referral now; if it allows none, the
best one waits for consent as a draft; if no program is eligible, the need is a gap in the network.
A program a care manager chose by hand goes through the same ``refer`` behind the same consent gate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careloop_shared.contracts import (
    NetworkGapDetected,
    ReferralMade,
    ReferralOutcome,
    ReferralStatusChanged,
)
from careloop_shared.errors import NotFound
from careloop_shared.events import ReceivedEvent
from careloop_shared.ids import NameBased, new_id
from careloop_shared.logging import get_logger
from referral.appointments.recorded import record_appointment
from referral.config import ReferralContext
from referral.domain.appointments import called_off_with
from referral.domain.consent import Consent, first_allowed
from referral.domain.lifecycle import Party, parties
from referral.domain.matching import MatchRequest, Ranked, rank
from referral.erasure.notes import seal_note
from referral.store import Uow

log = get_logger(__name__)


class ReferralNotFound(NotFound):
    """No such referral that the caller's agency may see."""

    def __init__(self) -> None:
        super().__init__("referral not found")


async def referral_as_party(
    uow: Uow, agency_id: str, referral_id: uuid.UUID, *, receiving_only: bool = False
) -> tuple[Any, frozenset[Party]]:
    """The referral, locked, and the sides of it the agency is (only the receiving one for a provider);
    ReferralNotFound when it is neither, the same as when there is no such referral."""
    referral = await uow.store.loop.get_referral(referral_id, lock=True)
    sides = frozenset[Party]()
    if referral is not None:
        sides = parties(
            agency_id,
            referring=referral["agency_id"],
            receiving=referral["receiving_agency_id"],
            status=referral["status"],
        )
        if receiving_only:
            sides = sides & {Party.target}
    if referral is None or not sides:
        raise ReferralNotFound()
    return referral, sides


AWAITING_CONSENT = "awaiting-consent"
_GAP_IDS = NameBased(uuid.UUID("c3a1e0f2-6b7d-4c19-8e5a-0f2d9b4a7c61"))


@dataclass(frozen=True)
class Ask:
    """One intervention's request for a program."""

    patient_id: uuid.UUID
    agency_id: str
    plan_id: uuid.UUID
    intervention_id: uuid.UUID
    need: str
    program_category: str | None
    priority: str
    language: str | None
    service_request_id: uuid.UUID
    replaces: uuid.UUID | None = None
    by: str | None = None  # the person whose action asked for it (a rejection re-routed); None for a plan
    by_role: str | None = None
    choice: str = "automatic"  # or "by-hand": a care manager chose the program
    note: str | None = None  # free text for the history only, kept sealed


@dataclass
class Known:
    """What referral knows of the patient, read once for all of a plan's interventions."""

    patient: Any = None
    consents: list[Consent] | None = None
    loaded: bool = False


async def ranked_programs(
    ctx: ReferralContext, uow: Uow, request: MatchRequest, exclude: list[str]
) -> list[Ranked]:
    directory = uow.store.directory
    services = await directory.candidate_services(request.program_category, request.need)
    quality = await ctx.quality.get(directory, [s.id for s in services])
    return rank(request, services, ctx.weights, quality, exclude=exclude)


def destination(
    ctx: ReferralContext, chosen: Ranked, allowed: uuid.UUID | str | None, now: datetime
) -> dict[str, Any]:
    """Where the referral goes; when consent allows sending it, since when and by when to answer."""
    sent = allowed is not None
    return {
        "program_id": chosen.service.id,
        "receiving_agency_id": chosen.service.agency_id,
        "consent_id": allowed if isinstance(allowed, uuid.UUID) else None,
        "made_at": now if sent else None,
        "response_due_at": ctx.deadlines.response_due(now) if sent else None,
        "outcome_due_at": ctx.deadlines.outcome_due(now) if sent else None,
    }


async def route(
    ctx: ReferralContext,
    uow: Uow,
    ask: Ask,
    caused_by: ReceivedEvent | None,
    exclude: list[str],
    known: Known | None = None,
) -> uuid.UUID | None:
    """Refer to the best eligible program: sent now, waiting for consent, or a network gap."""
    loop = uow.store.loop
    known = known or Known()
    if not known.loaded:
        known.patient, known.loaded = await loop.get_patient(ask.patient_id), True
    patient = known.patient
    language = ask.language or (patient["preferred_language"] if patient else None)
    postal_area = patient["postal_area"] if patient else None
    ranked = await ranked_programs(
        ctx, uow, MatchRequest(ask.need, ask.program_category, language, postal_area), exclude
    )
    if not ranked:
        await record_gap(ctx, uow, ask, caused_by, language=language, postal_area=postal_area)
        return None
    if known.consents is None:
        known.consents = await loop.consents_of(ask.patient_id)
    chosen, allowed = first_allowed(ranked, known.consents, patient_agency=ask.agency_id, at=ctx.clock())
    return await refer(ctx, uow, ask, chosen, allowed, caused_by, language=language, postal_area=postal_area)


async def record_gap(
    ctx: ReferralContext,
    uow: Uow,
    ask: Ask,
    caused_by: ReceivedEvent | None,
    *,
    language: str | None,
    postal_area: str | None,
) -> None:
    """No eligible program: the intervention waits on a gap in the network, announced once."""
    gap = {
        "intervention_id": ask.intervention_id,
        "patient_id": ask.patient_id,
        "need": ask.need,
        "program_category": ask.program_category,
        "postal_area": postal_area,
        "language": language,
        "detected_at": ctx.clock(),
    }
    # What routing needs to make the referral once a program appears (a recruited provider).
    routing = {"agency_id": ask.agency_id, "plan_id": ask.plan_id, "priority": ask.priority}
    if await uow.store.gaps.record_once({**gap, **routing}):
        uow.emit(
            NetworkGapDetected(agency_id=ask.agency_id, plan_id=ask.plan_id, **gap),
            caused_by=caused_by,
            event_id=_GAP_IDS(str(ask.intervention_id)),
        )
    log.info("network gap", need=ask.need, program_category=ask.program_category)


async def refer(
    ctx: ReferralContext,
    uow: Uow,
    ask: Ask,
    chosen: Ranked,
    allowed: uuid.UUID | str | None,
    caused_by: ReceivedEvent | None,
    *,
    language: str | None,
    postal_area: str | None,
) -> uuid.UUID | None:
    """Make the referral to ``chosen``: sent when consent ``allowed`` it, else a draft waiting for
    consent; the intervention's gap, if any, resolves. None when another delivery made it first."""
    loop, now = uow.store.loop, ctx.clock()
    sent = allowed is not None
    row = {
        "id": new_id(),
        "service_request_id": ask.service_request_id,
        "patient_id": ask.patient_id,
        "agency_id": ask.agency_id,
        "plan_id": ask.plan_id,
        "intervention_id": ask.intervention_id,
        "need": ask.need,
        "program_category": ask.program_category,
        "status": "requested" if sent else "draft",
        "status_reason": None if sent else AWAITING_CONSENT,
        "priority": ask.priority,
        "language": language,
        "postal_area": postal_area,
        "replaces_referral_id": ask.replaces,
        "choice": ask.choice,
        "made_by": ask.by,
        "made_by_role": ask.by_role,
        "created_at": now,
        "updated_at": now,
        **destination(ctx, chosen, allowed, now),
    }
    if not await loop.insert_referral(row):
        return None  # another delivery made it first
    await uow.store.gaps.resolve(ask.intervention_id, now)
    await loop.add_history(
        {
            "referral_id": row["id"],
            "from_status": None,
            "to_status": row["status"],
            "by_agency_id": ask.agency_id,
            "by_party": Party.requester.value,
            "by_subject": ask.by,
            "by_role": ask.by_role,
            "reason": row["status_reason"],
            "note_sealed": await seal_note(ctx.keys, row, ask.note),
            "changed_at": now,
        }
    )
    if sent:
        announce_made(uow, row, chosen, caused_by, by=ask.by, by_role=ask.by_role)
    return row["id"]


async def record_change(
    uow: Uow,
    referral: Any,
    to: str,
    party: Party,
    by_agency: str,
    at: datetime,
    caused_by: ReceivedEvent | None,
    *,
    by: str | None = None,
    by_role: str | None = None,
    reason: str | None = None,
    outcome: dict[str, Any] | None = None,
    note_sealed: dict[str, Any] | None = None,
) -> None:
    """One step in the referral's history, announced (the note, sealed, stays in the history only).
    ``by`` is the person of ``by_agency`` who made it; None when careloop did, reacting to an event."""
    await uow.store.loop.add_history(
        {
            "referral_id": referral["id"],
            "from_status": referral["status"],
            "to_status": to,
            "by_agency_id": by_agency,
            "by_party": party.value,
            "by_subject": by,
            "by_role": by_role,
            "reason": reason,
            "outcome": outcome,
            "note_sealed": note_sealed,
            "changed_at": at,
        }
    )
    uow.emit(
        ReferralStatusChanged(
            patient_id=referral["patient_id"],
            agency_id=referral["agency_id"],
            referral_id=referral["id"],
            plan_id=referral["plan_id"],
            intervention_id=referral["intervention_id"],
            from_status=referral["status"],
            to_status=to,
            by_agency_id=by_agency,
            by_party=party.value,
            reason=reason,
            outcome=ReferralOutcome(**outcome) if outcome else None,
            changed_at=at,
            actor_id=by,
            actor_role=by_role,
        ),
        caused_by=caused_by,
    )
    if (off := called_off_with(referral, to)) is not None:  # no appointment outlives its referral
        await record_appointment(uow, referral, off, by_agency, at, caused_by, by=by, by_role=by_role)


def announce_made(
    uow: Uow,
    row: Any,
    program: Ranked,
    caused_by: ReceivedEvent | None,
    *,
    by: str | None = None,
    by_role: str | None = None,
) -> None:
    """ReferralMade for a referral just sent to ``program``: made so, or released by the patient's
    consent; ``by`` is the person whose action made it (None when careloop did, reacting to an event)."""
    uow.emit(
        ReferralMade(
            patient_id=row["patient_id"],
            agency_id=row["agency_id"],
            referral_id=row["id"],
            plan_id=row["plan_id"],
            intervention_id=row["intervention_id"],
            need=row["need"],
            program_id=row["program_id"],
            receiving_agency_id=row["receiving_agency_id"],
            status="requested",
            response_due_at=row["response_due_at"],
            outcome_due_at=row["outcome_due_at"],
            replaces_referral_id=row["replaces_referral_id"],
            service_request_id=row["service_request_id"],
            program_category=program.service.program_category,
            actor_id=by,
            actor_role=by_role,
        ),
        caused_by=caused_by,
    )
