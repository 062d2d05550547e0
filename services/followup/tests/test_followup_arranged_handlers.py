"""Contacts a care manager arranges with the patient, and calls off, on an in-memory store."""

import uuid
from datetime import timedelta, timezone

import pytest

from careloop_shared.contracts import (
    FollowUpCadence,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpScheduled,
    PlanUpdated,
    RiskLevel,
    TaskOpened,
    TaskStatusChanged,
)
from careloop_shared.testing.fakes import FakeUnitOfWork, received, run, run_step
from followup import handlers
from followup.contacts import handlers as contacts
from followup.domain.arranged import NotArranged
from followup.domain.commands import ArrangeContact, CancelContact, ChangeArrangement, RecordOutcome
from followup.domain.erasure import NoContactWithErased
from followup.domain.follow_up import ARRANGED_CONTACT, InvalidInput, NotOutstanding
from followup.domain.schedule import event_id
from followup.tasks.handlers import PatientNotFound

AGENCY = "agency-a"
CM = ("cm-ana", "care-manager")


def arrange(patient, when, *, channel="phone", purpose="plan-review", agency=AGENCY):
    return ArrangeContact(agency, patient, *CM, when, channel, purpose)


def cancel(follow_up_id, reason="patient-request", *, agency=AGENCY):
    return CancelContact(agency, follow_up_id, *CM, reason)


async def with_plan(ctx, store, *, channel="phone", risk="high", version=1, patient=None):
    patient = patient or uuid.uuid4()
    plan = PlanUpdated(
        patient_id=patient,
        agency_id=AGENCY,
        plan_id=uuid.UUID(int=patient.int ^ 1),
        version=version,
        status="active",
        risk_level=RiskLevel(risk),
        goals=[],
        interventions=[],
        follow_up=FollowUpCadence(every_days=0.0, priority=RiskLevel(risk), channel=channel),
    )
    await run(handlers.when_plan_updated_schedule_follow_up, ctx, store, received(plan))
    return patient


async def registered(store, clock):
    patient = uuid.uuid4()
    row = {"patient_id": patient, "agency_id": AGENCY, "care_manager_id": "cm-ana", "assigned_at": clock.now}
    assert await store.caseload.learn_care_manager(row)
    return patient


async def test_an_arranged_contact_is_a_follow_up_of_its_own_at_the_plan_s_priority(ctx, store, clock):
    patient = await with_plan(ctx, store, channel="phone", risk="high")
    when = clock.now + timedelta(days=2)
    shown, uow = await run(contacts.arrange_contact, ctx, store, arrange(patient, when))
    row = store.follow_ups[shown["id"]]
    assert (row["reason"], row["purpose"], row["channel"], row["priority"], row["status"]) == (
        ARRANGED_CONTACT,
        "plan-review",
        "phone",
        "high",
        "scheduled",
    )
    assert (row["due_at"], row["overdue_at"]) == (when, when + ctx.rules.grace("high"))
    assert (row["every_days"], row["plan_id"], row["referral_id"]) == (None, None, None)
    assert shown["assignee_id"] is None  # followup heard of no care manager for this patient
    [event] = uow.events(FollowUpScheduled)
    assert (event.follow_up_id, event.reason, event.purpose, event.channel, event.due_at) == (
        row["id"],
        ARRANGED_CONTACT,
        "plan-review",
        "phone",
        when,
    )
    assert (event.actor_id, event.actor_role, event.rescheduled) == ("cm-ana", "care-manager", False)
    assert uow.pending[0].envelope.id == event_id("scheduled", row["id"], 1)


async def test_before_any_plan_a_contact_takes_any_channel_at_the_default_priority(ctx, store, clock):
    patient = await registered(store, clock)
    when = (clock.now + timedelta(hours=3)).astimezone(timezone(timedelta(hours=-5)))
    shown, uow = await run(contacts.arrange_contact, ctx, store, arrange(patient, when, channel="text"))
    assert (shown["channel"], shown["priority"], shown["assignee_id"]) == ("text", "moderate", "cm-ana")
    [event] = uow.events(FollowUpScheduled)
    assert event.due_at == when and event.due_at.utcoffset() == timedelta(0)  # announced in UTC


@pytest.mark.parametrize(
    ("channel", "allowed"), [("phone", True), ("in-person-only", True), ("text", False), ("email", False)]
)
async def test_only_the_plan_s_channel_or_in_person_may_reach_the_patient(
    ctx, store, clock, channel, allowed
):
    patient = await with_plan(ctx, store, channel="phone")
    command = arrange(patient, clock.now + timedelta(days=1), channel=channel)
    if allowed:
        shown, _ = await run(contacts.arrange_contact, ctx, store, command)
        assert shown["channel"] == channel
        return
    with pytest.raises(InvalidInput) as refused:
        await run(contacts.arrange_contact, ctx, store, command)
    [problem] = refused.value.body()["detail"]
    assert (problem["loc"], problem["msg"]) == (
        ["body", "channel"],
        "must be one of in-person-only, phone for this patient",
    )
    assert [f["reason"] for f in store.follow_ups.values()] == ["plan-cadence"]


async def test_a_contact_at_an_unusable_time_or_for_an_unknown_purpose_is_refused(ctx, store, clock):
    patient = await with_plan(ctx, store)
    for when, purpose, problems in (
        (clock.now, "check-in", [(["body", "due_at"], "must be in the future")]),
        (clock.now + timedelta(days=366), "check-in", [(["body", "due_at"], "must be within 365 days")]),
        (clock.now + timedelta(days=1), "lunch", [(["body", "purpose"], "unknown purpose code")]),
    ):
        with pytest.raises(InvalidInput) as refused:
            await run(contacts.arrange_contact, ctx, store, arrange(patient, when, purpose=purpose))
        assert [(p["loc"], p["msg"]) for p in refused.value.body()["detail"]] == problems
    assert [f["reason"] for f in store.follow_ups.values()] == ["plan-cadence"]


async def test_another_agency_s_patient_or_an_unknown_one_is_not_found(ctx, store, clock):
    patient = await with_plan(ctx, store)
    when = clock.now + timedelta(days=1)
    for command in (arrange(patient, when, agency="agency-stranger"), arrange(uuid.uuid4(), when)):
        with pytest.raises(PatientNotFound) as refused:
            await run(contacts.arrange_contact, ctx, store, command)
        assert (refused.value.status_code, refused.value.body()) == (404, {"detail": "patient not found"})
    assert len(store.follow_ups) == 1


async def test_no_contact_is_arranged_with_an_erased_patient(ctx, store, clock):
    patient = await with_plan(ctx, store)
    await store.erase_patient(patient, AGENCY, clock.now)
    with pytest.raises(NoContactWithErased) as refused:
        await run(contacts.arrange_contact, ctx, store, arrange(patient, clock.now + timedelta(days=1)))
    assert refused.value.status_code == 410
    assert len(store.follow_ups) == 1


async def test_an_arranged_contact_falls_due_opens_a_task_and_does_not_recur(ctx, store, clock):
    patient = await with_plan(ctx, store, risk="low")  # the cadence contact is 90 days away
    shown, _ = await run(
        contacts.arrange_contact, ctx, store, arrange(patient, clock.now + timedelta(hours=1))
    )
    clock.advance(hours=1)
    _, fired = await run_step(handlers.fire_due_and_overdue_follow_ups, ctx, store)
    [due] = fired.events(FollowUpDue)
    assert (due.follow_up_id, due.reason, due.channel) == (shown["id"], ARRANGED_CONTACT, "phone")
    [task] = fired.events(TaskOpened)
    assert (task.kind, task.cause.follow_up_id) == ("follow-up", shown["id"])

    outcome = RecordOutcome(AGENCY, shown["id"], *CM, reached=True, next_step="continue-plan")
    result, uow = await run(handlers.record_outcome, ctx, store, outcome)
    assert (result["follow_up"]["status"], result["next_follow_up_id"]) == ("completed", None)
    assert len(uow.events(FollowUpCompleted)) == 1 and uow.events(FollowUpScheduled) == []
    assert [t.to_status for t in uow.events(TaskStatusChanged)] == ["done"]
    assert sorted(f["reason"] for f in store.follow_ups.values()) == [ARRANGED_CONTACT, "plan-cadence"]


async def test_a_contact_called_off_before_its_time_never_falls_due(ctx, store, clock):
    patient = await with_plan(ctx, store, risk="low")
    shown, _ = await run(
        contacts.arrange_contact, ctx, store, arrange(patient, clock.now + timedelta(hours=1))
    )
    row, uow = await run(contacts.cancel_contact, ctx, store, cancel(shown["id"]))
    assert row["status"] == "cancelled"
    [event] = uow.events(FollowUpCancelled)
    assert (event.follow_up_id, event.reason, event.cancelled_at) == (
        shown["id"],
        "patient-request",
        clock.now,
    )
    assert (event.actor_id, event.actor_role) == CM
    assert uow.pending[0].envelope.id == event_id("cancelled", shown["id"])
    clock.advance(hours=2)
    _, fired = await run_step(handlers.fire_due_and_overdue_follow_ups, ctx, store)
    assert fired.events(FollowUpDue) == []


async def test_a_due_contact_called_off_closes_its_task(ctx, store, clock):
    patient = await with_plan(ctx, store, risk="low")
    shown, _ = await run(
        contacts.arrange_contact, ctx, store, arrange(patient, clock.now + timedelta(hours=1))
    )
    clock.advance(hours=1)
    await run_step(handlers.fire_due_and_overdue_follow_ups, ctx, store)
    [task] = store.tasks.tasks.values()
    _, uow = await run(contacts.cancel_contact, ctx, store, cancel(shown["id"], "no-longer-needed"))
    assert [(t.task_id, t.to_status) for t in uow.events(TaskStatusChanged)] == [(task["id"], "cancelled")]
    assert store.tasks.tasks[task["id"]]["status"] == "cancelled"


async def test_only_an_open_arranged_contact_is_called_off_for_a_known_reason(ctx, store, clock):
    patient = await with_plan(ctx, store)
    [cadence] = store.follow_ups.values()
    shown, _ = await run(
        contacts.arrange_contact, ctx, store, arrange(patient, clock.now + timedelta(days=1))
    )
    with pytest.raises(InvalidInput):
        await run(contacts.cancel_contact, ctx, store, cancel(shown["id"], "bored"))
    with pytest.raises(NotArranged) as refused:
        await run(contacts.cancel_contact, ctx, store, cancel(cadence["id"]))
    assert refused.value.status_code == 409
    with pytest.raises(handlers.FollowUpNotFound):
        await run(contacts.cancel_contact, ctx, store, cancel(shown["id"], agency="agency-stranger"))
    await run(contacts.cancel_contact, ctx, store, cancel(shown["id"]))
    with pytest.raises(NotOutstanding) as again:
        await run(contacts.cancel_contact, ctx, store, cancel(shown["id"]))
    assert again.value.body() == {"detail": "follow-up is cancelled"}
    assert store.follow_ups[cadence["id"]]["status"] == "scheduled"


async def test_a_plan_s_new_channel_moves_an_arranged_contact_only_when_it_no_longer_allows_it(
    ctx, store, clock
):
    patient = await with_plan(ctx, store, channel="phone")
    when = clock.now + timedelta(days=3)
    visit, _ = await run(
        contacts.arrange_contact, ctx, store, arrange(patient, when, channel="in-person-only")
    )
    call, _ = await run(contacts.arrange_contact, ctx, store, arrange(patient, when, channel="phone"))
    # The patient now marks only text safe: the call may not go ahead by phone; the visit stays a visit.
    await with_plan(ctx, store, channel="text", version=2, patient=patient)
    assert store.follow_ups[visit["id"]]["channel"] == "in-person-only"
    assert store.follow_ups[call["id"]]["channel"] == "text"


def rearrange(follow_up_id, *, channel=None, purpose=None, agency=AGENCY):
    return ChangeArrangement(agency, follow_up_id, *CM, channel, purpose)


async def test_an_arranged_contact_is_reached_another_way_or_for_another_purpose_at_the_same_time(
    ctx, store, clock
):
    patient = await with_plan(ctx, store, channel="phone")
    when = clock.now + timedelta(days=1)
    shown, _ = await run(contacts.arrange_contact, ctx, store, arrange(patient, when))
    changed = rearrange(shown["id"], channel="in-person-only", purpose="home-visit")
    row, uow = await run(contacts.change_arrangement, ctx, store, changed)
    assert (row["channel"], row["purpose"], row["due_at"], row["status"]) == (
        "in-person-only",
        "home-visit",
        shown["due_at"],
        "scheduled",
    )
    [event] = uow.events(FollowUpScheduled)
    assert (event.follow_up_id, event.channel, event.purpose, event.due_at, event.rescheduled) == (
        shown["id"],
        "in-person-only",
        "home-visit",
        shown["due_at"],
        True,
    )
    assert (event.actor_id, event.actor_role) == CM
    same, quiet = await run(
        contacts.change_arrangement, ctx, store, rearrange(shown["id"], purpose="home-visit")
    )
    assert same["purpose"] == "home-visit" and quiet.pending == []  # nothing changed: nothing announced
    clock.advance(days=1)
    _, fired = await run_step(handlers.fire_due_and_overdue_follow_ups, ctx, store)
    assert [(e.follow_up_id, e.channel) for e in fired.events(FollowUpDue)] == [
        (shown["id"], "in-person-only")
    ]


async def test_only_an_open_arranged_contact_changes_to_a_way_its_plan_allows_and_a_known_purpose(
    ctx, store, clock
):
    patient = await with_plan(ctx, store, channel="phone")
    [cadence] = store.follow_ups.values()
    shown, _ = await run(
        contacts.arrange_contact, ctx, store, arrange(patient, clock.now + timedelta(days=1))
    )
    with pytest.raises(InvalidInput) as bad:  # text is not the plan's way, nor in person
        await run(
            contacts.change_arrangement, ctx, store, rearrange(shown["id"], channel="text", purpose="x")
        )
    assert [p["loc"] for p in bad.value.body()["detail"]] == [["body", "purpose"], ["body", "channel"]]
    with pytest.raises(NotArranged) as refused:
        await run(contacts.change_arrangement, ctx, store, rearrange(cadence["id"], purpose="check-in"))
    assert refused.value.status_code == 409
    with pytest.raises(handlers.FollowUpNotFound):
        await run(
            contacts.change_arrangement, ctx, store, rearrange(shown["id"], purpose="x", agency="agency-b")
        )
    await run(contacts.cancel_contact, ctx, store, cancel(shown["id"]))
    with pytest.raises(NotOutstanding):
        await run(contacts.change_arrangement, ctx, store, rearrange(shown["id"], purpose="check-in"))
    assert store.follow_ups[shown["id"]]["purpose"] == "plan-review"


async def test_a_follow_up_is_looked_up_locked_in_the_caller_s_agency_only(ctx, store, clock):
    patient = await with_plan(ctx, store)
    [cadence] = store.follow_ups.values()
    uow = FakeUnitOfWork(store)
    assert (await handlers.locked_follow_up(uow, AGENCY, cadence["id"]))["patient_id"] == patient
    for agency, follow_up_id in (("agency-b", cadence["id"]), (AGENCY, uuid.uuid4())):
        with pytest.raises(handlers.FollowUpNotFound):
            await handlers.locked_follow_up(uow, agency, follow_up_id)
