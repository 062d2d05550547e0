"""Storing and announcing a change of a referral's appointment: the receiving agency's own, and one called
off with its referral (``loop.routing.record_change``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from careloop_shared.contracts import AppointmentStatusChanged
from careloop_shared.events import ReceivedEvent
from referral.domain.appointments import AppointmentChange
from referral.store import Uow


async def record_appointment(
    uow: Uow,
    referral: Any,
    change: AppointmentChange,
    by_agency: str,
    at: datetime,
    caused_by: ReceivedEvent | None = None,
    *,
    by: str | None = None,
    by_role: str | None = None,
) -> None:
    """The referral's appointment as ``change`` leaves it, announced (``by`` of ``by_agency``; None when
    careloop did it)."""
    await uow.store.loop.set_appointment(referral["id"], change.columns, at)
    uow.emit(
        AppointmentStatusChanged(
            patient_id=referral["patient_id"],
            agency_id=referral["agency_id"],
            referral_id=referral["id"],
            from_status=change.from_status,
            status=change.status,
            starts_at=change.starts_at,
            by_agency_id=by_agency,
            changed_at=at,
            actor_id=by,
            actor_role=by_role,
        ),
        caused_by=caused_by,
        time=at,
    )
