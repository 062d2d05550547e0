"""A referred patient's appointment with the receiving program, as the receiving agency books it and says how
it went (a subset of FHIR Appointment's statuses). Pure: no I/O.

One appointment per referral at a time: booking again after a missed or cancelled one, or moving a booked
one, replaces its time. Only the receiving agency books and records attendance, and only while it works on
the referral (accepted, in progress or on hold); the referring agency sees it. A referral completed with an
appointment still booked keeps it (an enrolled patient's first visit may still be to come), and the
receiving agency still says whether the patient came, or calls it off; it books no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from careloop_shared.errors import Conflict, Invalid, problem

AppointmentStatus = Literal["booked", "fulfilled", "noshow", "cancelled"]
APPOINTMENT_STATUSES: tuple[str, ...] = get_args(AppointmentStatus)
# From (None: no appointment yet) -> where it may go. Booking again moves a booked appointment.
APPOINTMENT_TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({"booked"}),
    "booked": frozenset({"booked", "fulfilled", "noshow", "cancelled"}),
    "noshow": frozenset({"booked"}),
    "cancelled": frozenset({"booked"}),
    "fulfilled": frozenset(),
}
_SAID = {
    None: "not booked",
    "booked": "booked",
    "fulfilled": "attended",
    "noshow": "missed",
    "cancelled": "cancelled",
}
ATTENDANCE = frozenset({"fulfilled", "noshow"})
ENDS_APPOINTMENT = frozenset({"cancelled", "failed", "entered-in-error"})
WORKED_ON = frozenset({"accepted", "in-progress", "on-hold"})  # referral statuses that take appointments
# Referral statuses in which a booked appointment is still answered for (came, missed, called off), not moved.
ANSWERED_AFTER = frozenset({"completed"})
ASKED_ABOUT = WORKED_ON | ANSWERED_AFTER  # whose booked appointments the deadline sweep asks about
FURTHEST_BOOKING = timedelta(days=365)


class NotWorkedOn(Conflict):
    """The referral is not one the receiving agency works on now."""


class IllegalAppointmentMove(Conflict):
    """The appointment cannot move from its status to the one asked."""


class NotYet(Conflict):
    """Whether the patient came is said once the appointment's time has come."""


@dataclass(frozen=True)
class AppointmentChange:
    from_status: str | None
    status: str
    starts_at: datetime

    @property
    def columns(self) -> dict[str, Any]:
        # Any change answers for the booking before it: an attendance flag is for the booking it names.
        return {
            "appointment_status": self.status,
            "appointment_starts_at": self.starts_at,
            "attendance_overdue_at": None,
        }


def called_off_with(referral: Any, to_status: str) -> AppointmentChange | None:
    """A booked appointment is called off with a referral that ends without the service (cancelled,
    failed, entered in error); one completed keeps it as it was."""
    if to_status not in ENDS_APPOINTMENT or referral.get("appointment_status") != "booked":
        return None
    return AppointmentChange("booked", "cancelled", referral["appointment_starts_at"])


def change_appointment(
    referral: dict[str, Any], status: str, starts_at: datetime | None, now: datetime
) -> AppointmentChange:
    """The move asked of the referral's appointment, checked: a booking names a time to come (within a
    year); attendance and cancellation keep the booked time."""
    current = referral.get("appointment_status")
    answered = referral["status"] in ANSWERED_AFTER and current == "booked" and status != "booked"
    if referral["status"] not in WORKED_ON and not answered:
        raise NotWorkedOn(
            f"the referral is {referral['status']}: appointments are booked for referrals worked on,"
            " and one still booked when the referral completed is only said attended, missed or called off"
        )
    if status not in APPOINTMENT_TRANSITIONS.get(current, frozenset()):
        raise IllegalAppointmentMove(f"an appointment {_SAID[current]} cannot become {status}")
    if status == "booked":
        if starts_at is None:
            raise Invalid([problem(["body", "starts_at"], "missing", "a booking names its time")])
        if starts_at <= now or starts_at > now + FURTHEST_BOOKING:
            raise Invalid([problem(["body", "starts_at"], "out_of_range", "must be in the coming year")])
        return AppointmentChange(current, status, starts_at)
    if starts_at is not None:
        raise Invalid([problem(["body", "starts_at"], "not_allowed", "only a booking names a time")])
    booked_for: datetime = referral["appointment_starts_at"]
    if status in ATTENDANCE and now < booked_for:
        raise NotYet("whether the patient came is said once the appointment's time has come")
    return AppointmentChange(current, status, booked_for)
