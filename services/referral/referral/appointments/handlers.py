"""The referred patient's appointment with the receiving program: booked, moved, attended, missed or called
off by the receiving agency (``AppointmentStatusChanged``); the referring agency sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from careloop_shared.errors import Forbidden
from referral.appointments.recorded import record_appointment
from referral.config import ReferralContext
from referral.domain.appointments import change_appointment
from referral.domain.lifecycle import Party
from referral.loop.routing import referral_as_party
from referral.store import Uow


@dataclass(frozen=True)
class ChangeAppointment:
    """Book (with a time) or move the referral's appointment, or say how it went, as the receiving agency."""

    agency_id: str
    referral_id: uuid.UUID
    status: str
    by: str  # the person (token sub)
    by_role: str
    starts_at: datetime | None = None


class BookedByTheReceiver(Forbidden):
    """The referring agency sees the appointment; the receiving agency, which runs the program, keeps it."""

    def __init__(self) -> None:
        super().__init__("the receiving agency books and keeps its appointments")


async def change_referral_appointment(
    ctx: ReferralContext, uow: Uow, cmd: ChangeAppointment
) -> dict[str, Any]:
    """Check the move, store the appointment on the referral and announce it; the referral as it is now."""
    loop = uow.store.loop
    referral, sides = await referral_as_party(uow, cmd.agency_id, cmd.referral_id)
    if Party.target not in sides:
        raise BookedByTheReceiver()
    now = ctx.clock()
    change = change_appointment(dict(referral), cmd.status, cmd.starts_at, now)
    await record_appointment(uow, referral, change, cmd.agency_id, now, by=cmd.by, by_role=cmd.by_role)
    updated = await loop.get_referral(cmd.referral_id)
    assert updated is not None  # locked above, in this transaction
    return dict(updated)
