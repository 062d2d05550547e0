"""Patients waiting on a gap in the network get their referral once a program that can take them
appears (a recruited provider activated): routed as any referral, behind the patient's consent."""

from __future__ import annotations

from careloop_shared.db import ALL_AGENCIES
from careloop_shared.ids import new_id
from careloop_shared.logging import get_logger
from referral.config import ReferralContext
from referral.domain.commands import ReferWaitingPatients
from referral.domain.lifecycle import TERMINAL
from referral.domain.matching import MatchRequest, rank
from referral.loop.routing import Ask, route
from referral.store import Uow

log = get_logger(__name__)


async def refer_patients_waiting_on_gaps(ctx: ReferralContext, uow: Uow, cmd: ReferWaitingPatients) -> int:
    """Every open gap one of the programs is eligible for gets its referral made now (sent, or waiting
    for consent) and resolves; returns how many. A rejected referral's gap is re-routed from it."""
    # The network's work, whoever brought the program: every agency's waiting patients are referred on
    # behalf of their own agencies, and the caller is told how many, never who.
    async with uow.store.acting_for(ALL_AGENCIES):
        return await _refer_waiting(ctx, uow, cmd)


async def _refer_waiting(ctx: ReferralContext, uow: Uow, cmd: ReferWaitingPatients) -> int:
    loop, made = uow.store.loop, 0
    for service_id in cmd.service_ids:
        service = await uow.store.directory.program(service_id)
        if service is None:
            continue
        for gap in await uow.store.gaps.waiting_for(service.program_category, service.needs):
            request = MatchRequest(gap["need"], gap["program_category"], gap["language"], gap["postal_area"])
            if not rank(request, [service], ctx.weights):
                continue
            if gap["agency_id"] is None or gap["plan_id"] is None:
                log.info("gap without routing details waits for its plan's next version")
                continue
            latest = await loop.latest_referral(gap["intervention_id"])
            if latest is not None and latest["status"] not in TERMINAL:
                continue  # referred since (the gap resolved in this unit of work)
            ask = Ask(
                patient_id=gap["patient_id"],
                agency_id=gap["agency_id"],
                plan_id=gap["plan_id"],
                intervention_id=gap["intervention_id"],
                need=gap["need"],
                program_category=gap["program_category"],
                priority=gap["priority"],
                language=gap["language"],
                service_request_id=latest["service_request_id"] if latest else new_id(),
                replaces=latest["id"] if latest else None,
                by=cmd.by,  # made on behalf of the person who brought the program
                by_role=cmd.by_role,
            )
            tried = await loop.services_tried(ask.intervention_id)
            if await route(ctx, uow, ask, None, exclude=tried) is not None:
                made += 1
    if made:
        log.info("waiting patients referred", count=made)
    return made
