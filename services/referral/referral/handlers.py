"""referral's use cases: one function each, taking a unit of work."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    NetworkGapDetected,
    PatientRegistered,
    PatientUpdated,
    PlanUpdated,
    ReferralMade,
    ReferralOutcome,
    ReferralOverdue,
    ReferralStatusChanged,
)
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import SafeMessageError, get_logger
from careloop_shared.outbox import UnitOfWork
from referral import store
from referral.domain.consent import permission
from referral.domain.deadlines import Clock, Deadlines, overdue_event_id
from referral.domain.lifecycle import (
    REROUTE_REASONS,
    TERMINAL,
    IllegalTransition,
    Outcome,
    Party,
    check_transition,
)
from referral.domain.matching import Eligibility, MatchRequest, Ranked, Service, Weights, rank
from referral.domain.quality import NO_HISTORY, Quality
from referral.schemas import OrganizationIn, SeedDirectory, ServiceIn, StatusChangeIn

log = get_logger(__name__)

AWAITING_CONSENT = "awaiting-consent"
_GAP_IDS = uuid.UUID("c3a1e0f2-6b7d-4c19-8e5a-0f2d9b4a7c61")
_CLOSED_PLANS = frozenset({"revoked", "completed", "entered-in-error"})
_CLOSED_INTERVENTIONS = frozenset({"cancelled", "stopped", "completed"})


class QualityCache:
    """Programs' quality figures for ranking, recomputed at most every ``ttl_s`` seconds.

    Quality moves slowly; recomputing it from the whole referral history for every match would make
    matching slower as the history grows. The directory API always shows fresh figures.
    """

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._figures: dict[str, tuple[float, Quality]] = {}

    async def get(self, conn: asyncpg.Connection, service_ids: list[str]) -> dict[str, Quality]:
        now = time.monotonic()
        stale = [sid for sid in service_ids if self._figures.get(sid, (0.0, None))[0] <= now]
        if stale:
            histories = await store.histories(conn, stale)
            for sid in stale:
                history = histories.get(sid)
                self._figures[sid] = (now + self.ttl_s, Quality(history) if history else NO_HISTORY)
        return {sid: self._figures[sid][1] for sid in service_ids}


@dataclass(frozen=True)
class Referrals:
    """What the referral use cases are configured with."""

    weights: Weights
    deadlines: Deadlines
    clock: Clock
    quality: QualityCache = field(default_factory=QualityCache)


class ReferralNotFound(SafeMessageError):
    """No such referral that the caller's agency may see."""


class NotAllowed(SafeMessageError):
    """The caller may not change this directory entry."""


class UnknownEntry(SafeMessageError):
    """The body names a directory entry that does not exist."""


class ServiceNotFound(SafeMessageError):
    """No such service in the directory."""


# --- matching -------------------------------------------------------------------------------------


def service_of(row: Any) -> Service:
    e = row["eligibility"]
    return Service(
        id=row["id"],
        agency_id=row["receiving_agency_id"],
        program_category=row["program_category"],
        needs=tuple(row["needs"]),
        languages=tuple(row["languages"]),
        interpretation_services=row["interpretation_services"],
        eligibility=Eligibility(
            min_age=e.get("min_age"),
            max_age=e.get("max_age"),
            postal_prefixes=tuple(e.get("postal_prefixes", ())),
            requirements=tuple(e.get("requirements", ())),
        ),
        capacity_status=row["capacity_status"],
        status=row["status"],
    )


async def _ranked(
    ctx: Referrals, conn: asyncpg.Connection, request: MatchRequest, exclude: list[str]
) -> list[Ranked]:
    services = [
        service_of(r) for r in await store.candidate_services(conn, request.program_category, request.need)
    ]
    quality = await ctx.quality.get(conn, [s.id for s in services])
    return rank(request, services, ctx.weights, quality, exclude=exclude)


def _pick(
    ranked: list[Ranked], consents: list[Any], patient_agency: str, category: str | None, at: datetime
) -> tuple[Ranked, uuid.UUID | str | None]:
    """The best program the patient's consent allows; else the best, to wait for consent."""
    for candidate in ranked:
        allowed = permission(
            consents,
            patient_agency=patient_agency,
            target_agency=candidate.service.agency_id,
            category=candidate.service.program_category,
            at=at,
        )
        if allowed is not None:
            return candidate, allowed
    return ranked[0], None


@dataclass(frozen=True)
class _Ask:
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


@dataclass
class _Known:
    """What referral knows of the patient, read once for all of a plan's interventions."""

    patient: Any = None
    consents: list[Any] | None = None
    loaded: bool = False


async def _route(
    ctx: Referrals,
    uow: UnitOfWork,
    ask: _Ask,
    caused_by: ReceivedEvent | None,
    exclude: list[str],
    known: _Known | None = None,
) -> uuid.UUID | None:
    """Refer to the best eligible program: sent now, waiting for consent, or a network gap."""
    conn, now = uow.conn, ctx.clock()
    known = known or _Known()
    if not known.loaded:
        known.patient, known.loaded = await store.get_patient(conn, ask.patient_id), True
    patient = known.patient
    language = ask.language or (patient["preferred_language"] if patient else None)
    postal_area = patient["postal_area"] if patient else None
    request = MatchRequest(ask.need, ask.program_category, language, postal_area)
    ranked = await _ranked(ctx, conn, request, exclude)
    if not ranked:
        gap = {
            "intervention_id": ask.intervention_id,
            "patient_id": ask.patient_id,
            "need": ask.need,
            "program_category": ask.program_category,
            "postal_area": postal_area,
            "language": language,
            "detected_at": now,
        }
        if await store.record_gap_once(conn, gap):
            uow.emit(
                NetworkGapDetected(agency_id=ask.agency_id, plan_id=ask.plan_id, **gap),
                caused_by=caused_by,
                event_id=uuid.uuid5(_GAP_IDS, str(ask.intervention_id)),
            )
        log.info("network gap", need=ask.need, program_category=ask.program_category)
        return None
    if known.consents is None:
        known.consents = await store.consents_of(conn, ask.patient_id)
    consents = known.consents
    chosen, allowed = _pick(ranked, consents, ask.agency_id, ask.program_category, now)
    sent = allowed is not None
    row = {
        "id": uuid.uuid4(),
        "service_request_id": ask.service_request_id,
        "patient_id": ask.patient_id,
        "agency_id": ask.agency_id,
        "plan_id": ask.plan_id,
        "intervention_id": ask.intervention_id,
        "need": ask.need,
        "program_category": ask.program_category,
        "program_id": chosen.service.id,
        "receiving_agency_id": chosen.service.agency_id,
        "status": "requested" if sent else "draft",
        "status_reason": None if sent else AWAITING_CONSENT,
        "priority": ask.priority,
        "language": language,
        "postal_area": postal_area,
        "consent_id": allowed if isinstance(allowed, uuid.UUID) else None,
        "replaces_referral_id": ask.replaces,
        "made_at": now if sent else None,
        "response_due_at": ctx.deadlines.response_due(now) if sent else None,
        "outcome_due_at": ctx.deadlines.outcome_due(now) if sent else None,
        "created_at": now,
    }
    if not await store.insert_referral(conn, row):
        return None  # another delivery made it first
    await store.resolve_gap(conn, ask.intervention_id, now)
    await store.add_history(
        conn,
        {
            "referral_id": row["id"],
            "from_status": None,
            "to_status": row["status"],
            "by_agency_id": ask.agency_id,
            "by_party": Party.requester,
            "reason": row["status_reason"],
            "changed_at": now,
        },
    )
    if sent:
        _emit_made(uow, row, caused_by)
    return uuid.UUID(str(row["id"]))


def _emit_made(uow: UnitOfWork, row: Any, caused_by: ReceivedEvent | None) -> None:
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
        ),
        caused_by=caused_by,
    )


async def when_plan_updated_make_referrals(ctx: Referrals, uow: UnitOfWork, received: ReceivedEvent) -> None:
    plan = received.event
    assert isinstance(plan, PlanUpdated)
    if plan.status in _CLOSED_PLANS:
        return
    wanted = [i for i in plan.interventions if i.needs_referral and i.status not in _CLOSED_INTERVENTIONS]
    if not wanted:
        return
    referred = await store.interventions_with_referral(uow.conn, [i.id for i in wanted])
    known = _Known()
    for intervention in wanted:
        if intervention.id in referred:
            continue
        ask = _Ask(
            patient_id=plan.patient_id,
            agency_id=plan.agency_id,
            plan_id=plan.plan_id,
            intervention_id=intervention.id,
            need=intervention.need,
            program_category=intervention.program_category,
            priority=intervention.priority,
            language=intervention.language or plan.preferred_language,
            service_request_id=uuid.uuid4(),
        )
        await _route(ctx, uow, ask, received, exclude=[], known=known)


# --- what intake tells us -------------------------------------------------------------------------


async def when_patient_registered_or_updated_remember(uow: UnitOfWork, received: ReceivedEvent) -> None:
    event = received.event
    assert isinstance(event, PatientRegistered | PatientUpdated)
    as_of = event.registered_at if isinstance(event, PatientRegistered) else event.updated_at
    await store.upsert_patient(
        uow.conn,
        {
            "patient_id": event.patient_id,
            "agency_id": event.agency_id,
            "preferred_language": event.preferred_language,
            "contact_preference": event.contact_preference.value if event.contact_preference else None,
            "postal_area": event.postal_area,
            "as_of": as_of,
        },
    )


async def when_consent_recorded_send_waiting_referrals(
    ctx: Referrals, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    consent = received.event
    assert isinstance(consent, ConsentRecorded)
    conn = uow.conn
    await store.record_consent(
        conn,
        {
            "id": consent.consent_id,
            "patient_id": consent.patient_id,
            "agency_id": consent.agency_id,
            "purpose": consent.purpose,
            "agencies": consent.agencies,
            "program_categories": consent.program_categories,
            "period_start": consent.period_start,
            "period_end": consent.period_end,
        },
    )
    consents = await store.consents_of(conn, consent.patient_id)
    for draft in await store.drafts_of(conn, consent.patient_id):
        now = ctx.clock()
        request = MatchRequest(
            draft["need"], draft["program_category"], draft["language"], draft["postal_area"]
        )
        tried = await store.services_tried(conn, draft["intervention_id"])
        ranked = await _ranked(ctx, conn, request, tried)
        if not ranked:
            continue  # the directory changed; it waits for a program as well as consent
        chosen, allowed = _pick(ranked, consents, draft["agency_id"], draft["program_category"], now)
        if allowed is None:
            continue
        row = {
            **dict(draft),
            "program_id": chosen.service.id,
            "receiving_agency_id": chosen.service.agency_id,
            "consent_id": allowed if isinstance(allowed, uuid.UUID) else None,
            "made_at": now,
            "response_due_at": ctx.deadlines.response_due(now),
            "outcome_due_at": ctx.deadlines.outcome_due(now),
        }
        await store.send_draft(conn, draft["id"], row)
        _emit_made(uow, row, received)
        await _record_change(uow, draft, "requested", Party.requester, draft["agency_id"], now, received)


async def when_consent_revoked_stop_unanswered_referrals(
    ctx: Referrals, uow: UnitOfWork, received: ReceivedEvent
) -> None:
    """Unanswered referrals sent under the consent are cancelled unless another consent covers them."""
    revoked = received.event
    assert isinstance(revoked, ConsentRevoked)
    conn, now = uow.conn, ctx.clock()
    await store.revoke_consent(
        conn, revoked.consent_id, revoked.patient_id, revoked.agency_id, revoked.revoked_at
    )
    consents = await store.consents_of(conn, revoked.patient_id)
    for referral in await store.requested_under(conn, revoked.consent_id):
        still = permission(
            consents,
            patient_agency=referral["agency_id"],
            target_agency=referral["receiving_agency_id"],
            category=referral["program_category"],
            at=now,
        )
        if isinstance(still, uuid.UUID):
            await store.set_consent(conn, referral["id"], still)
            continue
        await store.set_status(
            conn,
            referral["id"],
            status="cancelled",
            reason="consent-revoked",
            outcome=None,
            at=now,
            closed=True,
        )
        await _record_change(
            uow,
            referral,
            "cancelled",
            Party.requester,
            referral["agency_id"],
            now,
            received,
            reason="consent-revoked",
        )


# --- the closed loop ------------------------------------------------------------------------------


async def _record_change(
    uow: UnitOfWork,
    referral: Any,
    to: str,
    party: Party,
    by_agency: str,
    at: datetime,
    caused_by: ReceivedEvent | None,
    *,
    reason: str | None = None,
    outcome: dict[str, Any] | None = None,
    note: str | None = None,
) -> None:
    await store.add_history(
        uow.conn,
        {
            "referral_id": referral["id"],
            "from_status": referral["status"],
            "to_status": to,
            "by_agency_id": by_agency,
            "by_party": party.value,
            "reason": reason,
            "outcome": outcome,
            "note": note,
            "changed_at": at,
        },
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
        ),
        caused_by=caused_by,
    )


async def change_status(
    ctx: Referrals, uow: UnitOfWork, agency_id: str, referral_id: uuid.UUID, cmd: StatusChangeIn
) -> uuid.UUID | None:
    """Move a referral along its lifecycle; return the referral a rejection re-routed to, if any."""
    conn = uow.conn
    referral = await store.get_referral(conn, referral_id, lock=True)
    parties: set[Party] = set()
    if referral is not None and referral["agency_id"] == agency_id:
        parties.add(Party.requester)
    if (
        referral is not None
        and referral["receiving_agency_id"] == agency_id
        and referral["status"] != "draft"
    ):
        parties.add(Party.target)
    if referral is None or not parties:
        raise ReferralNotFound("referral not found")
    if referral["status"] == "draft" and cmd.status == "requested":
        raise IllegalTransition("a waiting referral is sent when the patient's consent arrives")
    outcome = Outcome(**cmd.outcome.model_dump()) if cmd.outcome else None
    party = check_transition(
        referral["status"], cmd.status, frozenset(parties), reason=cmd.reason, outcome=outcome
    )
    now = ctx.clock()
    outcome_body = cmd.outcome.model_dump() if cmd.outcome else None
    await store.set_status(
        conn,
        referral_id,
        status=cmd.status,
        reason=cmd.reason,
        outcome=outcome_body,
        at=now,
        closed=cmd.status in TERMINAL,
    )
    await _record_change(
        uow,
        referral,
        cmd.status,
        party,
        agency_id,
        now,
        None,
        reason=cmd.reason,
        outcome=outcome_body,
        note=cmd.note,
    )
    if cmd.status == "rejected" and cmd.reason in REROUTE_REASONS:
        ask = _Ask(
            patient_id=referral["patient_id"],
            agency_id=referral["agency_id"],
            plan_id=referral["plan_id"],
            intervention_id=referral["intervention_id"],
            need=referral["need"],
            program_category=referral["program_category"],
            priority=referral["priority"],
            language=referral["language"],
            service_request_id=referral["service_request_id"],
            replaces=referral_id,
        )
        return await _route(
            ctx, uow, ask, None, exclude=await store.services_tried(conn, ask.intervention_id)
        )
    return None


async def flag_overdue(uow: UnitOfWork, now: datetime, limit: int = 500) -> int:
    """ReferralOverdue once per referral and deadline; the flag and the event commit together."""
    flagged = 0
    for deadline, claim in (
        ("response", store.claim_response_overdue),
        ("outcome", store.claim_outcome_overdue),
    ):
        for row in await claim(uow.conn, now, limit):
            uow.emit(
                ReferralOverdue(
                    patient_id=row["patient_id"],
                    agency_id=row["agency_id"],
                    referral_id=row["id"],
                    receiving_agency_id=row["receiving_agency_id"],
                    deadline=deadline,
                    due_at=row["due_at"],
                ),
                event_id=overdue_event_id(row["id"], deadline),
            )
            flagged += 1
    return flagged


# --- the directory --------------------------------------------------------------------------------

_DIRECTORY_ADMINS = frozenset({"admin", "supervisor"})


async def load_seed_directory(conn: asyncpg.Connection, seed: SeedDirectory, at: datetime) -> None:
    """Upsert the seed by id; entries an organisation changed through the API are left as they are."""
    async with conn.transaction():
        for org in seed.organizations:
            await store.upsert_organization(conn, org, source="seed", at=at)
        for svc in seed.services:
            await store.upsert_service(conn, svc, source="seed", at=at)


def _may_write(role: str, agency_id: str, owner_agency: str | None) -> bool:
    return role in _DIRECTORY_ADMINS or owner_agency == agency_id


async def save_organization(
    uow: UnitOfWork, role: str, agency_id: str, body: OrganizationIn, at: datetime
) -> bool:
    """Create or update; True when created."""
    existing = await store.get_organization(uow.conn, body.id)
    if not _may_write(role, agency_id, existing["agency_id"] if existing else body.agency_id):
        raise NotAllowed("only a directory administrator or the organisation itself may change it")
    if existing and existing["agency_id"] != body.agency_id and role not in _DIRECTORY_ADMINS:
        raise NotAllowed("only a directory administrator may move an organisation to another agency")
    return bool(await store.upsert_organization(uow.conn, body, source="api", at=at))


async def save_service(uow: UnitOfWork, role: str, agency_id: str, body: ServiceIn, at: datetime) -> bool:
    org = await store.get_organization(uow.conn, body.organization_id)
    if org is None:
        raise UnknownEntry("organization_id names no organization")
    existing = await store.get_service(uow.conn, body.id, lock=True)
    owner = existing["receiving_agency_id"] if existing else org["agency_id"]
    if not _may_write(role, agency_id, owner) or not _may_write(role, agency_id, org["agency_id"]):
        raise NotAllowed("only a directory administrator or the organisation itself may change it")
    return bool(await store.upsert_service(uow.conn, body, source="api", at=at))


async def update_capacity(
    uow: UnitOfWork, role: str, agency_id: str, service_id: str, status: str, notes: str | None, at: datetime
) -> None:
    existing = await store.get_service(uow.conn, service_id, lock=True)
    if existing is None:
        raise ServiceNotFound("service not found")
    if not _may_write(role, agency_id, existing["receiving_agency_id"]):
        raise NotAllowed("only a directory administrator or the organisation itself may change its capacity")
    await store.update_capacity(uow.conn, service_id, status, notes, at)
