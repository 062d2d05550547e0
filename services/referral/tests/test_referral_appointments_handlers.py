"""The referred patient's appointment with the receiving program, on an in-memory store."""

from datetime import timedelta

import pytest

from careloop_shared.contracts import AppointmentStatusChanged, ReferralOverdue
from careloop_shared.errors import Invalid
from careloop_shared.testing.fakes import run, run_step
from referral.appointments.handlers import BookedByTheReceiver, ChangeAppointment, change_referral_appointment
from referral.domain.appointments import IllegalAppointmentMove, NotWorkedOn, NotYet
from referral.domain.deadlines import overdue_event_id
from referral.loop import handlers
from services.referral.tests.test_referral_loop_handlers import DELIVERED, HOME, change, program, referred

RECEIVER = "agency-food"


def appointment(referral_id, status, starts_at=None, *, agency=RECEIVER):
    return ChangeAppointment(agency, referral_id, status, "pr-kai", "provider", starts_at)


async def accepted(ctx, store) -> dict:
    await program(ctx, store, "pantry", RECEIVER)
    row, _ = await referred(ctx, store)
    await run(
        handlers.change_referral_status,
        ctx,
        store,
        change(RECEIVER, row["id"], "accepted", by_role="provider"),
    )
    return row


async def test_the_receiver_books_an_appointment_and_says_the_patient_came(ctx, store, clock):
    row = await accepted(ctx, store)
    when = clock.now + timedelta(days=2)
    shown, uow = await run(change_referral_appointment, ctx, store, appointment(row["id"], "booked", when))
    assert (shown["appointment_status"], shown["appointment_starts_at"]) == ("booked", when)
    [booked] = uow.events(AppointmentStatusChanged)
    assert (booked.referral_id, booked.from_status, booked.status, booked.starts_at) == (
        row["id"],
        None,
        "booked",
        when,
    )
    assert (booked.patient_id, booked.agency_id, booked.by_agency_id) == (row["patient_id"], HOME, RECEIVER)
    assert (booked.actor_id, booked.actor_role, booked.changed_at) == ("pr-kai", "provider", clock.now)

    clock.advance(days=2, hours=1)
    shown, uow = await run(change_referral_appointment, ctx, store, appointment(row["id"], "fulfilled"))
    assert (shown["appointment_status"], shown["appointment_starts_at"]) == ("fulfilled", when)
    [came] = uow.events(AppointmentStatusChanged)
    assert (came.from_status, came.status, came.starts_at) == ("booked", "fulfilled", when)


async def test_a_missed_appointment_is_booked_again_and_a_booked_one_moved(ctx, store, clock):
    row = await accepted(ctx, store)
    first = clock.now + timedelta(days=1)
    await run(change_referral_appointment, ctx, store, appointment(row["id"], "booked", first))
    clock.advance(days=1, hours=1)
    await run(change_referral_appointment, ctx, store, appointment(row["id"], "noshow"))
    again = clock.now + timedelta(days=5)
    shown, _ = await run(change_referral_appointment, ctx, store, appointment(row["id"], "booked", again))
    assert (shown["appointment_status"], shown["appointment_starts_at"]) == ("booked", again)
    moved = clock.now + timedelta(days=6)
    shown, uow = await run(change_referral_appointment, ctx, store, appointment(row["id"], "booked", moved))
    assert shown["appointment_starts_at"] == moved
    assert uow.events(AppointmentStatusChanged)[0].from_status == "booked"


async def test_only_the_receiver_keeps_the_appointment_and_a_stranger_finds_nothing(ctx, store, clock):
    row = await accepted(ctx, store)
    when = clock.now + timedelta(days=1)
    with pytest.raises(BookedByTheReceiver) as refused:
        await run(
            change_referral_appointment, ctx, store, appointment(row["id"], "booked", when, agency=HOME)
        )
    assert refused.value.status_code == 403
    with pytest.raises(handlers.ReferralNotFound):
        await run(
            change_referral_appointment, ctx, store, appointment(row["id"], "booked", when, agency="agency-x")
        )
    assert store.loop.referrals[row["id"]].get("appointment_status") is None


async def test_moves_the_appointment_cannot_make_and_bad_times_are_refused(ctx, store, clock):
    await program(ctx, store, "pantry", RECEIVER)
    requested, _ = await referred(ctx, store)
    with pytest.raises(NotWorkedOn):  # not accepted yet
        await run(change_referral_appointment, ctx, store, appointment(requested["id"], "booked", clock.now))
    await run(
        handlers.change_referral_status,
        ctx,
        store,
        change(RECEIVER, requested["id"], "accepted", by_role="provider"),
    )
    rid = requested["id"]
    with pytest.raises(IllegalAppointmentMove) as illegal:
        await run(change_referral_appointment, ctx, store, appointment(rid, "fulfilled"))
    assert illegal.value.body() == {"detail": "an appointment not booked cannot become fulfilled"}
    for starts_at in (None, clock.now - timedelta(minutes=1), clock.now + timedelta(days=366)):
        with pytest.raises(Invalid) as bad:
            await run(change_referral_appointment, ctx, store, appointment(rid, "booked", starts_at))
        assert [p["loc"] for p in bad.value.body()["detail"]] == [["body", "starts_at"]]
    await run(
        change_referral_appointment, ctx, store, appointment(rid, "booked", clock.now + timedelta(days=1))
    )
    with pytest.raises(Invalid):  # attendance keeps the booked time
        await run(change_referral_appointment, ctx, store, appointment(rid, "fulfilled", clock.now))
    with pytest.raises(NotYet):  # not before its time
        await run(change_referral_appointment, ctx, store, appointment(rid, "noshow"))
    clock.advance(days=1)
    await run(change_referral_appointment, ctx, store, appointment(rid, "fulfilled"))
    with pytest.raises(IllegalAppointmentMove):  # it happened: nothing to move
        await run(
            change_referral_appointment, ctx, store, appointment(rid, "booked", clock.now + timedelta(days=2))
        )


async def test_a_referral_withdrawn_or_failed_calls_off_its_booked_appointment_and_a_completed_one_keeps_it(
    ctx, store, clock
):
    when = clock.now + timedelta(days=3)
    for to_status, by, fields, left in (
        ("cancelled", HOME, {"reason": "client-declined"}, "cancelled"),
        ("failed", RECEIVER, {"reason": "unable-to-contact"}, "cancelled"),
        ("completed", RECEIVER, {"outcome": DELIVERED}, "booked"),
    ):
        row = await accepted(ctx, store)
        await run(change_referral_appointment, ctx, store, appointment(row["id"], "booked", when))
        moved = change(by, row["id"], to_status, **fields)
        _, uow = await run(handlers.change_referral_status, ctx, store, moved)
        assert store.loop.referrals[row["id"]]["appointment_status"] == left, to_status
        called_off = uow.events(AppointmentStatusChanged)
        if left == "cancelled":
            [event] = called_off
            assert (event.from_status, event.status, event.starts_at, event.by_agency_id) == (
                "booked",
                "cancelled",
                when,
                by,
            )
        else:
            assert called_off == []


# --- attendance not recorded ----------------------------------------------------------------------------


async def flagged(ctx, store) -> list[tuple[ReferralOverdue, object]]:
    _, uow = await run_step(handlers.flag_overdue_referrals, ctx, store)
    return [(p.event, p.envelope.id) for p in uow.pending if isinstance(p.event, ReferralOverdue)]


async def test_a_booking_nobody_said_how_it_went_is_overdue_once_and_again_after_a_new_booking(
    ctx, store, clock
):
    row = await accepted(ctx, store)
    rid, first = row["id"], clock.now + timedelta(days=1)
    await run(change_referral_appointment, ctx, store, appointment(rid, "booked", first))
    clock.advance(days=1, hours=23)  # 23 hours after its time: within the day's grace
    assert await flagged(ctx, store) == []
    clock.advance(hours=1)
    [(overdue, event_id)] = await flagged(ctx, store)
    grace = ctx.deadlines.attendance_grace
    assert (overdue.deadline, overdue.referral_id, overdue.receiving_agency_id) == (
        "attendance",
        rid,
        RECEIVER,
    )
    assert (overdue.due_at, event_id) == (first + grace, overdue_event_id(rid, "attendance", first + grace))
    assert (overdue.patient_id, overdue.agency_id) == (row["patient_id"], HOME)
    assert await flagged(ctx, store) == []  # once for this booking

    second = clock.now + timedelta(days=2)  # the provider books it again: the flag is for the new time
    await run(change_referral_appointment, ctx, store, appointment(rid, "booked", second))
    clock.advance(days=3, hours=1)
    [(again, again_id)] = await flagged(ctx, store)
    assert again.due_at == second + grace and again_id != event_id

    third = clock.now + timedelta(hours=1)
    await run(change_referral_appointment, ctx, store, appointment(rid, "booked", third))
    clock.advance(hours=2)
    await run(change_referral_appointment, ctx, store, appointment(rid, "fulfilled"))
    clock.advance(days=2)
    assert await flagged(ctx, store) == []  # said: nothing overdue


async def test_a_referral_ended_or_a_cancelled_appointment_is_never_overdue_for_attendance(ctx, store, clock):
    when = clock.now + timedelta(hours=2)
    failed = await accepted(ctx, store)
    await run(change_referral_appointment, ctx, store, appointment(failed["id"], "booked", when))
    ended = change(RECEIVER, failed["id"], "failed", reason="unable-to-contact")
    await run(handlers.change_referral_status, ctx, store, ended)
    off = await accepted(ctx, store)
    await run(change_referral_appointment, ctx, store, appointment(off["id"], "booked", when))
    await run(change_referral_appointment, ctx, store, appointment(off["id"], "cancelled"))
    clock.advance(days=3)
    assert [e.deadline for e, _ in await flagged(ctx, store)] == []


async def test_a_completed_referrals_booked_appointment_is_still_asked_about_and_answered_not_moved(
    ctx, store, clock
):
    when = clock.now + timedelta(hours=2)
    done = await accepted(ctx, store)
    rid = done["id"]
    await run(change_referral_appointment, ctx, store, appointment(rid, "booked", when))
    await run(
        handlers.change_referral_status, ctx, store, change(RECEIVER, rid, "completed", outcome=DELIVERED)
    )
    with pytest.raises(NotWorkedOn):  # done with: no more booking or moving
        await run(
            change_referral_appointment, ctx, store, appointment(rid, "booked", when + timedelta(days=1))
        )
    with pytest.raises(NotYet):
        await run(change_referral_appointment, ctx, store, appointment(rid, "noshow"))
    clock.advance(days=1, hours=3)
    [(overdue, _)] = await flagged(ctx, store)
    assert (overdue.deadline, overdue.referral_id) == ("attendance", rid)
    shown, uow = await run(change_referral_appointment, ctx, store, appointment(rid, "fulfilled"))
    assert (shown["status"], shown["appointment_status"], shown["attendance_overdue"]) == (
        "completed",
        "fulfilled",
        False,
    )
    [came] = uow.events(AppointmentStatusChanged)
    assert (came.from_status, came.status, came.starts_at) == ("booked", "fulfilled", when)
    with pytest.raises(NotWorkedOn):  # answered: a completed referral takes nothing more
        await run(
            change_referral_appointment, ctx, store, appointment(rid, "booked", clock.now + timedelta(days=1))
        )
    assert await flagged(ctx, store) == []

    other = await accepted(ctx, store)  # called off after completion: the program says it will not happen
    await run(
        change_referral_appointment,
        ctx,
        store,
        appointment(other["id"], "booked", clock.now + timedelta(days=2)),
    )
    await run(
        handlers.change_referral_status,
        ctx,
        store,
        change(RECEIVER, other["id"], "completed", outcome=DELIVERED),
    )
    shown, _ = await run(change_referral_appointment, ctx, store, appointment(other["id"], "cancelled"))
    assert shown["appointment_status"] == "cancelled"
    ended = await accepted(ctx, store)  # a referral ended otherwise calls its appointment off: nothing to say
    await run(
        change_referral_appointment,
        ctx,
        store,
        appointment(ended["id"], "booked", clock.now + timedelta(hours=1)),
    )
    failed = change(RECEIVER, ended["id"], "failed", reason="unable-to-contact")
    await run(handlers.change_referral_status, ctx, store, failed)
    clock.advance(hours=2)
    with pytest.raises(NotWorkedOn):
        await run(change_referral_appointment, ctx, store, appointment(ended["id"], "fulfilled"))
