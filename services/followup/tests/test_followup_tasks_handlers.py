"""The task list's use cases on the in-memory store: tasks opened, resolved and escalated by events and
by the clock, moved by people; one per kind and cause, whatever arrives twice or out of order."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.contracts import (
    AppointmentStatusChanged,
    FollowUpCadence,
    FollowUpDue,
    NetworkGapDetected,
    PatientAssessed,
    PatientRegistered,
    PlanAlternativesProposed,
    PlanUpdated,
    ReferralMade,
    ReferralOverdue,
    ReferralStatusChanged,
    RiskLevel,
    TaskEscalated,
    TaskOpened,
    TaskStatusChanged,
)
from careloop_shared.testing.fakes import assert_fake_matches, received, run, run_step
from followup import handlers
from followup.caseload import handlers as caseload
from followup.caseload.store import CaseloadStore
from followup.domain.commands import ChangeTaskStatus, RecordOutcome, RescheduleFollowUp
from followup.domain.follow_up import InvalidInput
from followup.domain.scheduling import new_follow_up
from followup.domain.task_facts import facts_of
from followup.domain.tasks import IllegalMove, task_id
from followup.tasks import handlers as tasks
from followup.tasks.store import TaskStore

AGENCY = "agency-a"
T = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def assessed(patient, *, instrument="phq-9", flags=(), recommends=(), at=T, assessment_id=None):
    return PatientAssessed(
        patient_id=patient,
        agency_id=AGENCY,
        assessment_id=assessment_id or uuid.uuid4(),
        instrument=instrument,
        rules_version="screening.v1",
        needs=[],
        risk_level=RiskLevel.urgent if flags else RiskLevel.low,
        urgent_flags=list(flags),
        recommended_instruments=list(recommends),
        assessed_at=at,
    )


def registered(patient, care_manager="cm-ana", at=T - timedelta(days=30)):
    return PatientRegistered(
        patient_id=patient,
        agency_id=AGENCY,
        preferred_language="en",
        registered_at=at,
        care_manager_id=care_manager,
    )


def overdue(patient, referral_id, deadline="response", due_at=T):
    return ReferralOverdue(
        patient_id=patient,
        agency_id=AGENCY,
        referral_id=referral_id,
        receiving_agency_id="agency-food",
        deadline=deadline,
        due_at=due_at,
    )


def changed(patient, referral_id, to_status, at, intervention_id=None):
    return ReferralStatusChanged(
        patient_id=patient,
        agency_id=AGENCY,
        referral_id=referral_id,
        plan_id=uuid.uuid4(),
        intervention_id=intervention_id or uuid.uuid4(),
        from_status="requested",
        to_status=to_status,
        by_agency_id="agency-food",
        by_party="target",
        reason="no-capacity" if to_status == "rejected" else None,
        changed_at=at,
    )


def made(patient, *, intervention_id=None, replaces=None):
    return ReferralMade(
        patient_id=patient,
        agency_id=AGENCY,
        referral_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        intervention_id=intervention_id or uuid.uuid4(),
        need="food-insecurity",
        program_id="food-bank-2",
        receiving_agency_id="agency-food",
        status="requested",
        response_due_at=T + timedelta(days=2),
        replaces_referral_id=replaces,
    )


def plan_updated(patient, *, version=1, status="active", reason=None):
    return PlanUpdated(
        patient_id=patient,
        agency_id=AGENCY,
        plan_id=uuid.UUID(int=patient.int ^ 1),
        version=version,
        status=status,
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=[],
        follow_up=FollowUpCadence(every_days=0, priority=RiskLevel.moderate),
        reason=reason,
    )


def gap(patient, intervention_id):
    return NetworkGapDetected(
        patient_id=patient,
        agency_id=AGENCY,
        plan_id=uuid.uuid4(),
        intervention_id=intervention_id,
        need="food-insecurity",
        program_category="food-assistance",
        postal_area=None,
        language="es",
        detected_at=T,
    )


async def hear(ctx, store, event, *, time=T, event_id=None):
    """One consumed event through the handler the consumer gives it."""
    handler = {
        ReferralMade: handlers.when_referral_made_schedule_check_in,
        ReferralStatusChanged: handlers.when_referral_status_changed,
        PatientRegistered: caseload.when_patient_registered_learn_care_manager,
    }.get(type(event), tasks.when_event_track_tasks)
    _, uow = await run(handler, ctx, store, received(event, time=time, event_id=event_id))
    return uow


def only(store, kind):
    [task] = [t for t in store.tasks.tasks.values() if t["kind"] == kind]
    return task


def test_the_fake_wing_stores_answer_like_the_real_ones(store):
    assert_fake_matches(TaskStore, type(store.tasks))
    assert_fake_matches(CaseloadStore, type(store.caseload))


# --- opened by events ---------------------------------------------------------------------------------


async def test_suicidal_ideation_opens_a_stat_safety_check_for_the_patient_s_care_manager_once(ctx, store):
    patient = uuid.uuid4()
    await hear(ctx, store, registered(patient))
    event = assessed(patient, flags=["suicidal-ideation"])
    uow = await hear(ctx, store, event)
    task = only(store, "safety-check")
    assert (task["priority"], task["status"], task["assignee_id"], task["assignee_role"]) == (
        "stat",
        "open",
        "cm-ana",
        "care-manager",
    )
    assert (task["due_at"], task["escalate_at"]) == (T + timedelta(hours=1), T + timedelta(hours=1))
    [opened] = uow.events(TaskOpened)
    assert (opened.task_id, opened.kind, opened.assignee_id, opened.assignee_role) == (
        task["id"],
        "safety-check",
        "cm-ana",
        None,
    )
    assert (opened.cause.assessment_id, opened.cause.event_type) == (
        event.assessment_id,
        PatientAssessed.type,
    )
    again = await hear(ctx, store, event)  # redelivered under another id: the same cause
    assert again.pending == [] and len(store.tasks.tasks) == 1


async def test_an_assessment_without_urgent_flags_opens_no_safety_check(ctx, store):
    uow = await hear(ctx, store, assessed(uuid.uuid4()))
    assert uow.pending == [] and store.tasks.tasks == {}


async def test_a_recommended_instrument_opens_a_task_closed_by_an_assessment_of_that_instrument(ctx, store):
    patient = uuid.uuid4()
    await hear(ctx, store, assessed(patient, instrument="phq-2", recommends=["phq-9"]))
    task = only(store, "do-instrument")
    assert (task["instrument"], task["priority"], task["assignee_id"]) == ("phq-9", "high", None)
    assert task["assignee_role"] == "care-manager"  # nobody responsible known yet: any care manager's
    other = await hear(ctx, store, assessed(patient, instrument="ahc-hrsn", at=T + timedelta(hours=1)))
    assert other.events(TaskStatusChanged) == [] and task["status"] == "open"
    phq9 = assessed(patient, instrument="phq-9", at=T + timedelta(hours=2))
    uow = await hear(ctx, store, phq9)
    [closed] = uow.events(TaskStatusChanged)
    assert (closed.from_status, closed.to_status, closed.reason, closed.actor_id) == (
        "open",
        "done",
        "resolved",
        None,
    )
    assert (task["status"], task["closed_reason"], task["resolved_by_event_type"]) == (
        "done",
        "resolved",
        PatientAssessed.type,
    )


async def test_an_assessment_keeps_no_resolution_and_an_instrument_s_task_looks_for_none(ctx, store):
    """An assessment's causes come in order on its own topic: what it resolves is not kept, and a task it
    opens is not looked for among resolutions heard before (none could be)."""
    patient = uuid.uuid4()
    await hear(ctx, store, assessed(patient, instrument="phq-9", at=T))
    looked = []
    store.tasks.resolution_for = lambda *ask: looked.append(ask)  # type: ignore[method-assign]
    await hear(
        ctx, store, assessed(patient, instrument="phq-2", recommends=["phq-9"], at=T + timedelta(hours=1))
    )
    assert store.tasks.resolutions == {} and looked == []
    assert only(store, "do-instrument")["status"] == "open"


async def test_a_referral_overdue_opens_one_chase_task_per_referral_and_deadline(ctx, store):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, registered(patient))
    first = await hear(ctx, store, overdue(patient, referral))
    again = await hear(ctx, store, overdue(patient, referral))  # the same deadline under another event id
    assert len(first.events(TaskOpened)) == 1 and again.pending == []
    await hear(ctx, store, overdue(patient, referral, "outcome", due_at=T + timedelta(days=14)))
    chases = sorted(store.tasks.tasks.values(), key=lambda t: t["due_at"])
    assert [(t["kind"], t["referral_id"], t["due_at"]) for t in chases] == [
        ("chase-referral", referral, T + timedelta(days=1)),
        ("chase-referral", referral, T + timedelta(days=15)),
    ]
    # The provider answers after the response deadline, before the outcome one: only the first is resolved.
    uow = await hear(ctx, store, changed(patient, referral, "accepted", T + timedelta(days=3)))
    assert [(e.task_id, e.reason) for e in uow.events(TaskStatusChanged)] == [(chases[0]["id"], "resolved")]
    assert [t["status"] for t in chases] == ["done", "open"]


async def test_an_answer_heard_before_the_overdue_leaves_the_chase_task_closed_and_unannounced(ctx, store):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, changed(patient, referral, "accepted", T + timedelta(hours=2)))
    uow = await hear(ctx, store, overdue(patient, referral))
    assert uow.events(TaskOpened) == []
    task = only(store, "chase-referral")
    assert (task["status"], task["closed_reason"], task["resolved_by_event_type"]) == (
        "done",
        "resolved",
        ReferralStatusChanged.type,
    )
    assert (await hear(ctx, store, overdue(patient, referral))).pending == []


async def test_a_rejected_referral_opens_a_re_refer_task_closed_by_the_referral_replacing_it(ctx, store):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    uow = await hear(ctx, store, changed(patient, referral, "rejected", T))
    [opened] = uow.events(TaskOpened)
    assert (opened.kind, opened.cause.referral_id) == ("re-refer", referral)
    assert (await hear(ctx, store, made(patient))).events(TaskStatusChanged) == []  # another referral
    uow = await hear(ctx, store, made(patient, replaces=referral))
    assert [e.to_status for e in uow.events(TaskStatusChanged)] == ["done"]


async def test_a_re_route_heard_before_the_rejection_leaves_no_re_refer_task_open(ctx, store):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, made(patient, replaces=referral), time=T - timedelta(minutes=5))  # another clock
    uow = await hear(ctx, store, changed(patient, referral, "failed", T))
    assert uow.events(TaskOpened) == [] and only(store, "re-refer")["status"] == "done"


async def test_a_later_status_change_resolves_a_re_refer_task(ctx, store):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, changed(patient, referral, "rejected", T))
    await hear(ctx, store, changed(patient, referral, "entered-in-error", T + timedelta(hours=1)))
    assert only(store, "re-refer")["status"] == "done"


def appointment(patient, referral_id, status, starts_at, at):
    return AppointmentStatusChanged(
        patient_id=patient,
        agency_id=AGENCY,
        referral_id=referral_id,
        from_status="booked" if status != "booked" else None,
        status=status,
        starts_at=starts_at,
        by_agency_id="agency-food",
        changed_at=at,
        actor_id="pr-kai",
        actor_role="provider",
    )


async def test_a_missed_appointment_opens_a_task_for_the_care_manager_closed_when_it_is_booked_again(
    ctx, store
):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, registered(patient))
    first = T - timedelta(hours=2)
    assert (
        await hear(ctx, store, appointment(patient, referral, "booked", first, T - timedelta(days=1)))
    ).events(TaskOpened) == []
    uow = await hear(ctx, store, appointment(patient, referral, "noshow", first, T))
    [opened] = uow.events(TaskOpened)
    assert (opened.kind, opened.priority, opened.assignee_id, opened.cause.referral_id) == (
        "missed-appointment",
        "high",
        "cm-ana",
        referral,
    )
    assert opened.due_at == T + timedelta(days=1)
    again = T + timedelta(days=3)
    uow = await hear(ctx, store, appointment(patient, referral, "booked", again, T + timedelta(hours=4)))
    assert [e.to_status for e in uow.events(TaskStatusChanged)] == ["done"]
    # Missing the one booked again is a new task; a fulfilled or cancelled appointment opens none.
    uow = await hear(ctx, store, appointment(patient, referral, "noshow", again, again + timedelta(hours=1)))
    assert [e.kind for e in uow.events(TaskOpened)] == ["missed-appointment"]
    for status in ("fulfilled", "cancelled"):
        quiet = await hear(ctx, store, appointment(patient, uuid.uuid4(), status, first, T))
        assert quiet.events(TaskOpened) == []


async def test_an_appointment_nobody_recorded_asks_the_care_manager_until_the_provider_says_how_it_went(
    ctx, store
):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, registered(patient))
    starts = T - timedelta(days=1)
    uow = await hear(ctx, store, overdue(patient, referral, "attendance", due_at=T))
    [opened] = uow.events(TaskOpened)  # not a chase: the referral itself is on time
    assert (opened.kind, opened.priority, opened.assignee_id, opened.cause.referral_id) == (
        "confirm-attendance",
        "routine",
        "cm-ana",
        referral,
    )
    assert opened.due_at == T + timedelta(days=1)
    # The provider says the patient did not come: this task is done, and the missed one opens.
    uow = await hear(ctx, store, appointment(patient, referral, "noshow", starts, T + timedelta(hours=3)))
    assert [e.to_status for e in uow.events(TaskStatusChanged)] == ["done"]
    assert [e.kind for e in uow.events(TaskOpened)] == ["missed-appointment"]
    # Booked again and again not recorded: a new question for the new booking.
    later = T + timedelta(days=4)
    await hear(ctx, store, appointment(patient, referral, "booked", later, T + timedelta(hours=5)))
    uow = await hear(ctx, store, overdue(patient, referral, "attendance", due_at=later + timedelta(days=1)))
    assert [e.kind for e in uow.events(TaskOpened)] == ["confirm-attendance"]
    assert {t["kind"] for t in store.tasks.tasks.values()} == {"confirm-attendance", "missed-appointment"}


async def test_a_referral_completed_with_its_appointment_unanswered_leaves_the_question_open(ctx, store):
    """Completing the referral says nothing of the appointment still booked; the program's answer does."""
    patient, referral = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, registered(patient))
    await hear(ctx, store, overdue(patient, referral, "attendance", due_at=T))
    completed = changed(patient, referral, "completed", T + timedelta(hours=1))
    uow = await hear(ctx, store, completed)
    assert uow.events(TaskStatusChanged) == []
    assert only(store, "confirm-attendance")["status"] == "open"
    came = appointment(patient, referral, "fulfilled", T - timedelta(days=1), T + timedelta(hours=2))
    uow = await hear(ctx, store, came)
    assert [e.to_status for e in uow.events(TaskStatusChanged)] == ["done"]


async def test_attendance_recorded_before_its_overdue_is_heard_leaves_the_question_closed(ctx, store):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    came = appointment(patient, referral, "fulfilled", T - timedelta(days=1), T + timedelta(minutes=5))
    await hear(ctx, store, came)  # its topic is heard first
    uow = await hear(ctx, store, overdue(patient, referral, "attendance", due_at=T))
    assert uow.events(TaskOpened) == []
    assert only(store, "confirm-attendance")["status"] == "done"


async def test_proposed_alternatives_open_a_discussion_closed_when_an_alternative_is_chosen(
    ctx, store, clock
):
    patient = uuid.uuid4()
    proposed = PlanAlternativesProposed(
        patient_id=patient,
        agency_id=AGENCY,
        plan_id=uuid.uuid4(),
        service_request_id=uuid.uuid4(),
        service_code="home-health-aide",
        failed_criteria=["risk-level"],
        alternatives=["meal-delivery"],
    )
    await hear(ctx, store, proposed)
    assert only(store, "discuss-alternatives")["status"] == "open"
    revise = handlers.when_plan_updated_schedule_follow_up
    later = T + timedelta(hours=1)
    await run(
        revise,
        ctx,
        store,
        received(plan_updated(patient, reason="assessment"), time=later),
    )
    assert only(store, "discuss-alternatives")["status"] == "open"
    chosen = plan_updated(patient, version=2, reason="alternative-chosen")
    _, uow = await run(revise, ctx, store, received(chosen, time=later))
    assert [e.reason for e in uow.events(TaskStatusChanged)] == ["resolved"]


async def test_a_network_gap_opens_a_recruit_task_for_admins_closed_by_a_referral_for_it(ctx, store):
    patient, intervention = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, registered(patient))
    uow = await hear(ctx, store, gap(patient, intervention))
    [opened] = uow.events(TaskOpened)
    assert (opened.kind, opened.assignee_id, opened.assignee_role, opened.cause.intervention_id) == (
        "recruit-provider",
        None,
        "admin",
        intervention,
    )
    await hear(ctx, store, made(patient), time=T + timedelta(days=1))
    assert only(store, "recruit-provider")["status"] == "open"
    await hear(ctx, store, made(patient, intervention_id=intervention), time=T - timedelta(days=1))  # before
    assert only(store, "recruit-provider")["status"] == "open"
    await hear(ctx, store, made(patient, intervention_id=intervention), time=T + timedelta(days=2))
    assert only(store, "recruit-provider")["status"] == "done"


# --- followup's own events, in the same unit of work ---------------------------------------------------


async def due_follow_up(ctx, store, patient, **fields):
    row = new_follow_up(
        ctx.rules,
        T - timedelta(days=7),
        **{
            "patient_id": patient,
            "agency_id": AGENCY,
            "reason": "plan-cadence",
            "plan_id": uuid.uuid4(),
            "priority": "urgent",
            "due_at": ctx.clock() - timedelta(minutes=1),
            "every_days": 1.0,
            "cadence_anchor_at": T - timedelta(days=1),
            "channel": "in-person-only",
            **fields,
        },
    )
    assert await store.insert_follow_up(row)
    return row


async def step(ctx, store):
    return await run_step(handlers.fire_due_and_overdue_follow_ups, ctx, store)


async def test_a_follow_up_falling_due_opens_its_task_for_the_care_manager_and_its_outcome_closes_it(
    ctx, store, clock
):
    patient = uuid.uuid4()
    await hear(ctx, store, registered(patient))
    follow_up = await due_follow_up(ctx, store, patient)
    _, uow = await step(ctx, store)
    [due] = uow.events(FollowUpDue)
    assert (due.assignee_id, due.channel) == ("cm-ana", "in-person-only")
    task = only(store, "follow-up")
    assert (task["follow_up_id"], task["priority"], task["assignee_id"]) == (
        follow_up["id"],
        "urgent",
        "cm-ana",
    )
    assert task["due_at"] == follow_up["overdue_at"]  # due when its grace period ends
    assert task["cause_event_id"] == uow.pending[0].envelope.id
    command = RecordOutcome(AGENCY, follow_up["id"], "cm-ana", "care-manager", reached=False)
    _, done = await run(handlers.record_outcome, ctx, store, command)
    [closed] = done.events(TaskStatusChanged)
    assert (closed.to_status, closed.reason, closed.actor_id) == ("done", "resolved", "cm-ana")
    assert (task["closed_by"], task["closed_by_role"]) == ("cm-ana", "care-manager")
    clock.advance(hours=ctx.rules.not_reached.retry_after_hours_by_priority["urgent"])
    _, retried = await step(ctx, store)  # the next attempt is due: a task of its own
    assert [e.kind for e in retried.events(TaskOpened)] == ["follow-up"]
    assert len(store.tasks.tasks) == 2


async def test_an_overdue_follow_up_sends_its_task_to_the_supervisor_once(ctx, store, clock):
    patient = uuid.uuid4()
    await due_follow_up(ctx, store, patient)
    await step(ctx, store)
    clock.advance(hours=5)
    _, uow = await step(ctx, store)
    [escalated] = uow.events(TaskEscalated)
    task = only(store, "follow-up")
    # The supervisor is told; the task stays on its care manager's list, marked escalated.
    assert (escalated.to_role, task["assignee_role"], task["escalated_at"]) == (
        "supervisor",
        "care-manager",
        clock.now,
    )
    _, later = await run_step(tasks.escalate_overdue_tasks, ctx, store)
    assert later.pending == []


async def test_a_rescheduled_follow_up_closes_its_task(ctx, store, clock):
    follow_up = await due_follow_up(ctx, store, uuid.uuid4())
    await step(ctx, store)
    move = RescheduleFollowUp(
        AGENCY, follow_up["id"], "cm-ana", "care-manager", "patient-request", clock.now + timedelta(days=1)
    )
    _, uow = await run(handlers.reschedule_follow_up, ctx, store, move)
    assert [e.to_status for e in uow.events(TaskStatusChanged)] == ["done"]


async def test_a_plan_that_ends_cancels_the_tasks_of_its_due_follow_ups(ctx, store, clock):
    patient = uuid.uuid4()
    await due_follow_up(ctx, store, patient)
    await step(ctx, store)
    ended = plan_updated(patient, status="revoked")
    _, uow = await run(handlers.when_plan_updated_schedule_follow_up, ctx, store, received(ended))
    assert [(e.to_status, e.reason) for e in uow.events(TaskStatusChanged)] == [("cancelled", "resolved")]


async def test_a_reassessment_request_opens_a_task_closed_only_by_a_later_assessment(ctx, store, clock):
    patient = uuid.uuid4()
    follow_up = await due_follow_up(ctx, store, patient)
    store.follow_ups[follow_up["id"]]["attempt"] = ctx.rules.not_reached.max_attempts
    await step(ctx, store)
    command = RecordOutcome(AGENCY, follow_up["id"], "cm-ana", "care-manager", reached=False)
    await run(handlers.record_outcome, ctx, store, command)
    task = only(store, "reassess")
    assert (task["status"], task["follow_up_id"], task["cause_at"]) == ("open", follow_up["id"], clock.now)
    await hear(ctx, store, assessed(patient, at=clock.now - timedelta(hours=1)))  # read late, made before
    assert task["status"] == "open"
    await hear(ctx, store, assessed(patient, at=clock.now + timedelta(hours=1)))
    assert task["status"] == "done"


async def test_own_events_are_tracked_without_remembering_what_they_resolve(ctx, store, clock):
    follow_up = await due_follow_up(ctx, store, uuid.uuid4())
    _, uow = await step(ctx, store)
    await run(lambda c, u, _: tasks.track_own(c, u, uow.pending[:1]), ctx, store, None)
    assert len(store.tasks.tasks) == 1  # the same due point: the same task
    await run(lambda c, u, _: tasks.close_tasks_of_cancelled_follow_ups(c, u, [follow_up]), ctx, store, None)
    assert only(store, "follow-up")["status"] == "cancelled" and store.tasks.resolutions == {}


async def test_tracking_an_event_directly_is_what_the_consumer_does(ctx, store):
    patient = uuid.uuid4()
    message = received(gap(patient, uuid.uuid4()))
    facts = facts_of(message.event, message.envelope.id, message.envelope.time)
    await run(lambda c, u, _: tasks.track_tasks(c, u, facts, caused_by=message), ctx, store, None)
    assert only(store, "recruit-provider")["cause_event_id"] == message.envelope.id


# --- escalation by the clock --------------------------------------------------------------------------


async def test_an_open_task_past_its_escalation_time_goes_to_the_supervisor_once(ctx, store, clock):
    patient = uuid.uuid4()
    await hear(ctx, store, registered(patient))
    await hear(ctx, store, assessed(patient, flags=["suicidal-ideation"], at=clock.now))
    await hear(ctx, store, assessed(patient, instrument="phq-2", recommends=["phq-9"], at=clock.now))
    clock.advance(minutes=59)
    _, early = await run_step(tasks.escalate_overdue_tasks, ctx, store)
    assert early.pending == []
    clock.advance(minutes=1)
    more, uow = await run_step(tasks.escalate_overdue_tasks, ctx, store)
    [escalated] = uow.events(TaskEscalated)
    safety = only(store, "safety-check")
    assert (more, escalated.task_id, escalated.kind, escalated.to_role) == (
        False,
        safety["id"],
        "safety-check",
        "supervisor",
    )
    assert (safety["assignee_id"], safety["assignee_role"], safety["for_role"]) == (
        None,
        "supervisor",
        "care-manager",
    )
    _, again = await run_step(tasks.escalate_overdue_tasks, ctx, store)
    assert again.pending == []


async def test_a_closed_task_is_never_escalated(ctx, store, clock):
    patient = uuid.uuid4()
    await hear(ctx, store, assessed(patient, flags=["suicidal-ideation"], at=clock.now))
    safety = only(store, "safety-check")
    await run(
        tasks.change_task_status,
        ctx,
        store,
        ChangeTaskStatus(AGENCY, safety["id"], "cm-ana", "care-manager", "done"),
    )
    clock.advance(hours=2)
    _, uow = await run_step(tasks.escalate_overdue_tasks, ctx, store)
    assert uow.pending == []


# --- people move tasks --------------------------------------------------------------------------------


async def safety_task(ctx, store, care_manager="cm-ana"):
    patient = uuid.uuid4()
    if care_manager:
        await hear(ctx, store, registered(patient, care_manager))
    await hear(ctx, store, assessed(patient, flags=["suicidal-ideation"], at=ctx.clock()))
    return only(store, "safety-check")


async def test_a_care_manager_starts_then_finishes_their_task_and_closing_stores_who(ctx, store, clock):
    task = await safety_task(ctx, store)
    move = ChangeTaskStatus(AGENCY, task["id"], "cm-ana", "care-manager", "in-progress")
    row, uow = await run(tasks.change_task_status, ctx, store, move)
    [started] = uow.events(TaskStatusChanged)
    assert (row["status"], started.from_status, started.actor_id, started.actor_role) == (
        "in-progress",
        "open",
        "cm-ana",
        "care-manager",
    )
    clock.advance(minutes=10)
    done = ChangeTaskStatus(AGENCY, task["id"], "cm-ana", "care-manager", "done", "completed")
    row, uow = await run(tasks.change_task_status, ctx, store, done)
    assert (
        row["status"],
        row["closed_by"],
        row["closed_by_role"],
        row["closed_reason"],
        row["closed_at"],
    ) == (
        "done",
        "cm-ana",
        "care-manager",
        "completed",
        clock.now,
    )
    assert [e.reason for e in uow.events(TaskStatusChanged)] == ["completed"]


@pytest.mark.parametrize(
    ("first", "then"), [("done", "in-progress"), ("cancelled", "done"), ("in-progress", "in-progress")]
)
async def test_a_move_not_allowed_from_where_the_task_is_is_refused(ctx, store, first, then):
    task = await safety_task(ctx, store)
    await run(
        tasks.change_task_status,
        ctx,
        store,
        ChangeTaskStatus(AGENCY, task["id"], "cm-ana", "care-manager", first),
    )
    with pytest.raises(IllegalMove) as refused:
        await run(
            tasks.change_task_status,
            ctx,
            store,
            ChangeTaskStatus(AGENCY, task["id"], "cm-ana", "care-manager", then),
        )
    assert refused.value.status_code == 409
    assert refused.value.body() == {"detail": f"task is {first}; it cannot move to {then}"}


async def test_an_unknown_reason_is_refused_by_position_never_by_value(ctx, store):
    task = await safety_task(ctx, store)
    with pytest.raises(InvalidInput) as refused:
        await run(
            tasks.change_task_status,
            ctx,
            store,
            ChangeTaskStatus(AGENCY, task["id"], "cm-ana", "care-manager", "done", "zelda"),
        )
    assert refused.value.status_code == 422 and "zelda" not in str(refused.value.body())
    assert task["status"] == "open"


async def test_another_care_manager_s_task_or_agency_s_is_not_found_but_a_supervisor_may_move_it(ctx, store):
    task = await safety_task(ctx, store)
    for agency, who, role in (
        (AGENCY, "cm-bo", "care-manager"),
        ("agency-b", "sv-sam", "supervisor"),
        (AGENCY, "ad-al", "admin"),
    ):
        with pytest.raises(tasks.TaskNotFound) as refused:
            await run(
                tasks.change_task_status, ctx, store, ChangeTaskStatus(agency, task["id"], who, role, "done")
            )
        assert refused.value.body() == {"detail": "task not found"}
    row, _ = await run(
        tasks.change_task_status,
        ctx,
        store,
        ChangeTaskStatus(AGENCY, task["id"], "sv-sam", "supervisor", "cancelled", "duplicate"),
    )
    assert (row["status"], row["closed_by"]) == ("cancelled", "sv-sam")


async def test_starting_an_unassigned_task_of_one_s_role_takes_it(ctx, store):
    task = await safety_task(ctx, store, care_manager=None)
    assert task["assignee_id"] is None
    row, _ = await run(
        tasks.change_task_status,
        ctx,
        store,
        ChangeTaskStatus(AGENCY, task["id"], "cm-bo", "care-manager", "in-progress"),
    )
    assert (row["assignee_id"], row["assignee_role"]) == ("cm-bo", "care-manager")
    assert task_id("safety-check", row["cause_key"]) == row["id"]
