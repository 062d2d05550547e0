"""How intake learns which receiving agency may see which patient: from referral's events.

ReferralMade opens a grant for its receiving agency; the referral's closing ends it. The events travel
on two topics, so a closing may come first: its end is recorded, and the grant arriving later stays
ended. Nothing is announced: the grants only decide what intake shows.
"""

from __future__ import annotations

from typing import TypeAlias

from careloop_shared.coalesce import side_by_side
from careloop_shared.contracts import ReferralMade, ReferralStatusChanged
from careloop_shared.events import ReceivedEvent
from careloop_shared.logging import get_logger
from careloop_shared.outbox import UnitOfWork
from intake.config import IntakeContext
from intake.domain.referred import CLOSING_STATUSES
from intake.store import IntakeStore

log = get_logger(__name__)

Uow: TypeAlias = UnitOfWork[IntakeStore]


# Each event touches its own referral's grant only: a batch's patients run at once and their grants
# are written by one statement (``ReferredStore``).
@side_by_side
async def when_referral_made_grant_access(ctx: IntakeContext, uow: Uow, received: ReceivedEvent) -> None:
    """The receiving agency may see the patient's contact details, while consent covers it."""
    made = received.event
    assert isinstance(made, ReferralMade)
    granted = await uow.store.referred.grant(
        {
            "referral_id": made.referral_id,
            "patient_id": made.patient_id,
            "patient_agency_id": made.agency_id,
            "receiving_agency_id": made.receiving_agency_id,
            "need": made.need,
            "program_category": made.program_category,
            "granted_at": ctx.clock(),
        }
    )
    if granted:
        log.info("referral grant recorded", referral_id=str(made.referral_id))


@side_by_side
async def when_referral_status_changed_end_access(
    ctx: IntakeContext, uow: Uow, received: ReceivedEvent
) -> None:
    """A closed referral gives its receiving agency no more access to the patient."""
    change = received.event
    assert isinstance(change, ReferralStatusChanged)
    if change.to_status not in CLOSING_STATUSES:
        return
    ended = await uow.store.referred.end(
        {
            "referral_id": change.referral_id,
            "patient_id": change.patient_id,
            "patient_agency_id": change.agency_id,
            "ended_at": change.changed_at,
            "end_status": change.to_status,
            "end_reason": change.reason,
        }
    )
    if ended:
        log.info("referral grant ended", referral_id=str(change.referral_id), status=change.to_status)
