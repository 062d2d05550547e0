"""followup's use cases on an in-memory store: decisions, stored rows and events; no broker or database."""

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from careloop_shared.contracts import (
    FollowUpCadence,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    Goal,
    PlanUpdated,
    ReassessmentRequested,
    ReferralMade,
    ReferralStatusChanged,
    RiskLevel,
    TaskEscalated,
    TaskOpened,
)
from careloop_shared.patient_keys import open_for
from careloop_shared.rules import InvalidRulesFile
from careloop_shared.testing.fakes import assert_fake_matches, received, run, run_step
from careloop_shared.testing.keys import FakePatientKeys
from followup import handlers
from followup.config import FollowupContext, FollowupSettings
from followup.domain.commands import RecordOutcome, RescheduleFollowUp
from followup.domain.follow_up import InvalidInput, NotOutstanding
from followup.domain.rules import RULES_FILE
from followup.domain.schedule import due_event_id, event_id
from followup.domain.scheduling import new_follow_up
from followup.notes import note_field
from followup.store import FollowupStore

AGENCY = "agency-a"
NOTE = "Quartermaine said her landlord at 12 Elm St changed the locks"


def plan_updated(
    patient,
    *,
    version=1,
    plan_id=None,
    risk="moderate",
    every_days=0.0,
    status="active",
    goals=(),
    channel=None,
):
    return PlanUpdated(
        patient_id=patient,
        agency_id=AGENCY,
        plan_id=plan_id or uuid.UUID(int=patient.int ^ 1),
        version=version,
        status=status,
        risk_level=RiskLevel(risk),
        goals=[
            Goal(
                id=g,
                need="food-insecurity",
                description="d",
                target="t",
                due=datetime(2026, 9, 1, tzinfo=UTC),
            )
            for g in goals
        ],
        interventions=[],
        follow_up=FollowUpCadence(every_days=every_days, priority=RiskLevel(risk), channel=channel),
    )


def referral_made(patient, referral_id, response_due_at, **changes):
    return ReferralMade(
        patient_id=patient,
        agency_id=AGENCY,
        referral_id=referral_id,
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        need="food-insecurity",
        program_id="food-bank-1",
        receiving_agency_id="agency-food",
        status="requested",
        response_due_at=response_due_at,
        **changes,
    )


def status_changed(patient, referral_id, to_status, changed_at):
    return ReferralStatusChanged(
        patient_id=patient,
        agency_id=AGENCY,
        referral_id=referral_id,
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        from_status="in-progress",
        to_status=to_status,
        by_agency_id="agency-food",
        by_party="target",
        changed_at=changed_at,
    )


async def put(ctx, store, *, due_in=timedelta(0), status="scheduled", **fields):
    """A follow-up in the store, as a consumed event and the scheduler would have left it."""
    now = ctx.clock()
    row = new_follow_up(
        ctx.rules,
        now - timedelta(days=7),
        **{
            "patient_id": uuid.uuid4(),
            "agency_id": AGENCY,
            "reason": "plan-cadence",
            "plan_id": uuid.uuid4(),
            "priority": "high",
            "due_at": now + due_in,
            "every_days": 7.0,
            "cadence_anchor_at": now + due_in - timedelta(days=7),
            **fields,
        },
    )
    assert await store.insert_follow_up({**row, "status": status})
    return store.follow_ups[row["id"]]


async def due_now(ctx, store, **fields):
    return await put(ctx, store, due_in=-timedelta(minutes=5), status="due", **fields)


def outcome(follow_up, *, agency=AGENCY, by="cm-ana", role="care-manager", **fields):
    return RecordOutcome(agency, follow_up["id"], by, role, **{"reached": True, **fields})


async def step(ctx, store):
    """One round of the periodic step, as its own transaction: (more may wait, unit of work)."""
    return await run_step(handlers.fire_due_and_overdue_follow_ups, ctx, store)


def test_the_fake_store_answers_like_the_real_one(store):
    assert_fake_matches(FollowupStore, type(store))


def test_an_organisation_s_own_rules_file_configures_the_use_cases(tmp_path, monkeypatch, clock):
    own = json.loads(RULES_FILE.read_text())
    own["not_reached"]["max_attempts"] = 1
    path = tmp_path / "our-follow-up-rules.json"
    path.write_text(json.dumps(own))
    monkeypatch.setenv("FOLLOWUP_RULES_FILE", str(path))
    ctx = FollowupContext.from_settings(FollowupSettings(), clock, keys=FakePatientKeys())
    assert (ctx.rules.not_reached.max_attempts, ctx.clock) == (1, clock)
    own["grace_hours_by_priority"].pop("low")
    path.write_text(json.dumps(own))
    with pytest.raises(InvalidRulesFile, match="grace_hours_by_priority lacks"):
        FollowupContext.from_settings(FollowupSettings(), clock, keys=FakePatientKeys())  # at start


# --- scheduling from consumed events ---------------------------------------------------------------


@pytest.mark.parametrize(("risk", "days"), [("urgent", 1), ("high", 7), ("moderate", 30), ("low", 90)])
async def test_a_new_plan_schedules_a_cadence_follow_up_at_the_default_for_its_risk(
    ctx, store, clock, risk, days
):
    patient, revised_at = uuid.uuid4(), clock.now - timedelta(hours=2)
    message = received(plan_updated(patient, risk=risk), time=revised_at)
    _, uow = await run(handlers.when_plan_updated_schedule_follow_up, ctx, store, message)
    [row] = store.follow_ups.values()
    assert (row["reason"], row["status"], row["priority"]) == ("plan-cadence", "scheduled", risk)
    assert row["due_at"] == revised_at + timedelta(days=days)
    assert row["overdue_at"] == row["due_at"] + ctx.rules.grace(risk)
    assert row["cadence_anchor_at"] == revised_at
    [event] = uow.events(FollowUpScheduled)
    assert (event.follow_up_id, event.due_at, event.rescheduled) == (row["id"], row["due_at"], False)
    assert (event.actor_id, event.actor_role) == (None, None)  # careloop scheduled it on its own
    [sent] = uow.pending
    assert sent.envelope.id == event_id("scheduled", row["id"])
    assert sent.envelope.causation_id == message.envelope.id
    assert store.plans[patient]["every_days"] == days


async def test_a_plan_s_own_cadence_wins_over_the_default(ctx, store, clock):
    patient = uuid.uuid4()
    await run(
        handlers.when_plan_updated_schedule_follow_up,
        ctx,
        store,
        received(plan_updated(patient, risk="low", every_days=14), time=clock.now),
    )
    [row] = store.follow_ups.values()
    assert row["due_at"] == clock.now + timedelta(days=14)


async def test_a_plan_s_goals_not_yet_achieved_are_its_open_needs_for_the_caseload(ctx, store, clock):
    patient = uuid.uuid4()
    message = received(plan_updated(patient, goals=[uuid.uuid4()]), time=clock.now)
    await run(handlers.when_plan_updated_schedule_follow_up, ctx, store, message)
    assert store.plans[patient]["open_needs"] == ["food-insecurity"]


async def test_a_plan_version_already_applied_changes_nothing(ctx, store, clock):
    patient = uuid.uuid4()
    handler = handlers.when_plan_updated_schedule_follow_up
    await run(handler, ctx, store, received(plan_updated(patient, version=2), time=clock.now))
    before = {k: dict(v) for k, v in store.follow_ups.items()}
    for version in (2, 1):  # the same version under another event id, and an older one
        _, uow = await run(handler, ctx, store, received(plan_updated(patient, version=version, risk="high")))
        assert uow.pending == []
    assert store.follow_ups == before
    assert store.plans[patient]["version"] == 2


async def test_a_new_cadence_moves_the_waiting_follow_up_from_its_anchor_and_announces_it(ctx, store, clock):
    patient, started = uuid.uuid4(), clock.now
    handler = handlers.when_plan_updated_schedule_follow_up
    await run(handler, ctx, store, received(plan_updated(patient), time=started))
    clock.advance(days=2)
    _, uow = await run(
        handler, ctx, store, received(plan_updated(patient, version=2, risk="high"), time=clock.now)
    )
    [row] = store.follow_ups.values()
    # The cadence counts from the plan's start, not from the revision.
    assert (row["status"], row["due_at"], row["due_point"]) == ("scheduled", started + timedelta(days=7), 2)
    assert (row["priority"], row["overdue_at"]) == ("high", row["due_at"] + ctx.rules.grace("high"))
    [event] = uow.events(FollowUpScheduled)
    assert (event.follow_up_id, event.due_at, event.priority, event.rescheduled) == (
        row["id"],
        row["due_at"],
        "high",
        True,
    )
    # A fresh id: the inbox applies a revision once.
    assert uow.pending[0].envelope.id != event_id("scheduled", row["id"], 2)


async def test_a_revision_for_another_reason_keeps_the_due_time_and_announces_only_a_new_priority(
    ctx, store, clock
):
    patient = uuid.uuid4()
    handler = handlers.when_plan_updated_schedule_follow_up
    await run(handler, ctx, store, received(plan_updated(patient, every_days=30), time=clock.now))
    [first] = [dict(r) for r in store.follow_ups.values()]
    clock.advance(days=10)
    _, uow = await run(handler, ctx, store, received(plan_updated(patient, version=2, every_days=30)))
    assert uow.pending == []
    _, uow = await run(
        handler, ctx, store, received(plan_updated(patient, version=3, every_days=30, risk="urgent"))
    )
    [row] = store.follow_ups.values()
    assert (row["due_at"], row["due_point"], row["priority"]) == (first["due_at"], 1, "urgent")
    assert row["overdue_at"] == first["due_at"] + ctx.rules.grace("urgent")
    assert [e.priority for e in uow.events(FollowUpScheduled)] == ["urgent"]


async def test_a_revision_leaves_a_follow_up_already_due_where_it_is_without_a_word(ctx, store, clock):
    patient = uuid.uuid4()
    handler = handlers.when_plan_updated_schedule_follow_up
    await run(handler, ctx, store, received(plan_updated(patient), time=clock.now - timedelta(days=31)))
    await step(ctx, store)
    [before] = [dict(r) for r in store.follow_ups.values()]
    _, uow = await run(handler, ctx, store, received(plan_updated(patient, version=2, risk="urgent")))
    [row] = store.follow_ups.values()
    assert (row["status"], row["due_at"], row["overdue_at"]) == (
        "due",
        before["due_at"],
        before["overdue_at"],
    )
    assert (row["priority"], row["every_days"]) == ("urgent", 1)
    assert uow.pending == []


async def test_a_plan_that_ends_cancels_its_open_cadence_follow_up(ctx, store, clock):
    patient = uuid.uuid4()
    handler = handlers.when_plan_updated_schedule_follow_up
    await run(handler, ctx, store, received(plan_updated(patient), time=clock.now))
    _, uow = await run(handler, ctx, store, received(plan_updated(patient, version=2, status="revoked")))
    assert [r["status"] for r in store.follow_ups.values()] == ["cancelled"]
    assert uow.pending == []


async def test_a_referral_gets_a_check_in_after_its_response_deadline_at_the_plan_s_priority(
    ctx, store, clock
):
    patient, referral_id, deadline = uuid.uuid4(), uuid.uuid4(), clock.now + timedelta(days=3)
    await run(
        handlers.when_plan_updated_schedule_follow_up,
        ctx,
        store,
        received(plan_updated(patient, risk="urgent")),
    )
    message = received(referral_made(patient, referral_id, deadline))
    _, uow = await run(handlers.when_referral_made_schedule_check_in, ctx, store, message)
    [row] = [r for r in store.follow_ups.values() if r["reason"] == "referral-check-in"]
    assert (row["referral_id"], row["priority"]) == (referral_id, "urgent")
    assert row["due_at"] == ctx.rules.referral_check_in_due(deadline) > deadline
    [event] = uow.events(FollowUpScheduled)
    assert (event.follow_up_id, uow.pending[0].envelope.causation_id) == (row["id"], message.envelope.id)


async def test_a_referral_without_a_known_plan_is_checked_in_at_the_default_priority(ctx, store, clock):
    await run(
        handlers.when_referral_made_schedule_check_in,
        ctx,
        store,
        received(referral_made(uuid.uuid4(), uuid.uuid4(), clock.now)),
    )
    [row] = store.follow_ups.values()
    assert row["priority"] == ctx.rules.referral_check_in.default_priority


async def test_the_same_referral_heard_twice_is_checked_in_once(ctx, store, clock):
    event = referral_made(uuid.uuid4(), uuid.uuid4(), clock.now)
    await run(handlers.when_referral_made_schedule_check_in, ctx, store, received(event))
    _, again = await run(handlers.when_referral_made_schedule_check_in, ctx, store, received(event))
    assert len(store.follow_ups) == 1 and again.pending == []


async def test_a_re_routed_referral_replaces_the_check_in_of_the_one_it_replaces(ctx, store, clock):
    patient, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    handler = handlers.when_referral_made_schedule_check_in
    await run(handler, ctx, store, received(referral_made(patient, first, clock.now)))
    await run(
        handler, ctx, store, received(referral_made(patient, second, clock.now, replaces_referral_id=first))
    )
    assert {r["referral_id"]: r["status"] for r in store.follow_ups.values()} == {
        first: "cancelled",
        second: "scheduled",
    }


async def test_a_completed_referral_drops_its_waiting_check_in_and_gets_one_on_the_service(ctx, store, clock):
    patient, referral_id, completed_at = uuid.uuid4(), uuid.uuid4(), clock.now + timedelta(days=1)
    await run(
        handlers.when_referral_made_schedule_check_in,
        ctx,
        store,
        received(referral_made(patient, referral_id, clock.now + timedelta(days=3))),
    )
    _, uow = await run(
        handlers.when_referral_status_changed,
        ctx,
        store,
        received(status_changed(patient, referral_id, "completed", completed_at)),
    )
    rows = {r["reason"]: r for r in store.follow_ups.values()}
    assert rows["referral-check-in"]["status"] == "cancelled"
    service = rows["referral-outcome-check-in"]
    assert (service["status"], service["due_at"]) == (
        "scheduled",
        ctx.rules.service_check_in_due(completed_at),
    )
    assert [e.follow_up_id for e in uow.events(FollowUpScheduled)] == [service["id"]]


async def test_an_answered_referral_keeps_a_check_in_already_due_and_schedules_nothing(ctx, store, clock):
    referral_id = uuid.uuid4()
    check_in = await due_now(ctx, store, reason="referral-check-in", referral_id=referral_id, every_days=None)
    _, uow = await run(
        handlers.when_referral_status_changed,
        ctx,
        store,
        received(status_changed(check_in["patient_id"], referral_id, "rejected", clock.now)),
    )
    assert [r["status"] for r in store.follow_ups.values()] == ["due"]
    assert uow.events(FollowUpScheduled) == []
    # The rejection is the care manager's to act on: a re-refer task (see the tasks' tests).
    assert [e.kind for e in uow.events(TaskOpened)] == ["re-refer"]


async def test_follow_ups_reach_the_patient_the_way_the_plan_says(ctx, store, clock):
    patient = uuid.uuid4()
    handler = handlers.when_plan_updated_schedule_follow_up
    _, uow = await run(handler, ctx, store, received(plan_updated(patient, channel="in-person-only")))
    [cadence] = store.follow_ups.values()
    assert cadence["channel"] == "in-person-only"
    assert [e.channel for e in uow.events(FollowUpScheduled)] == ["in-person-only"]
    await run(
        handlers.when_referral_made_schedule_check_in,
        ctx,
        store,
        received(referral_made(patient, uuid.uuid4(), clock.now + timedelta(days=2))),
    )
    assert {f["channel"] for f in store.follow_ups.values()} == {"in-person-only"}
    # The plan changes the channel: a waiting follow-up is announced again, and every open one follows.
    _, uow = await run(handler, ctx, store, received(plan_updated(patient, version=2, channel="text")))
    assert [(e.follow_up_id, e.channel) for e in uow.events(FollowUpScheduled)] == [(cadence["id"], "text")]
    assert {f["channel"] for f in store.follow_ups.values()} == {"text"}
    _, uow = await run(handler, ctx, store, received(plan_updated(patient, version=3)))
    assert {f["channel"] for f in store.follow_ups.values()} == {None}  # the patient's preference, or phone
    clock.advance(days=40)
    _, fired = await step(ctx, store)
    assert {e.channel for e in fired.events(FollowUpDue)} == {None}


# --- the periodic step -----------------------------------------------------------------------------


async def test_a_follow_up_falls_due_once_per_due_point(ctx, store, clock):
    follow_up = await put(ctx, store, due_in=timedelta(hours=1))
    for _ in range(2):
        _, uow = await step(ctx, store)
        assert uow.pending == []
    clock.advance(hours=1)
    more, uow = await step(ctx, store)
    [event] = uow.events(FollowUpDue)
    assert (event.follow_up_id, event.due_at, more) == (follow_up["id"], follow_up["due_at"], False)
    assert uow.pending[0].envelope.id == due_event_id(follow_up["id"], follow_up["due_at"], 1)
    assert store.follow_ups[follow_up["id"]]["status"] == "due"
    _, again = await step(ctx, store)
    assert again.pending == []


async def test_overdue_fires_once_when_the_grace_period_for_its_priority_passes(ctx, store, clock):
    follow_up = await put(ctx, store, priority="urgent")
    await step(ctx, store)
    clock.advance(seconds=ctx.rules.grace("urgent").total_seconds() - 1)
    _, inside = await step(ctx, store)
    assert inside.pending == []
    clock.advance(seconds=1)
    _, uow = await step(ctx, store)
    [event] = uow.events(FollowUpOverdue)
    assert (event.follow_up_id, event.overdue_since) == (follow_up["id"], follow_up["overdue_at"])
    assert uow.pending[0].envelope.id == event_id("overdue", follow_up["id"], 1)
    clock.advance(days=3)
    _, later = await step(ctx, store)
    assert later.pending == [] and store.follow_ups[follow_up["id"]]["status"] == "overdue"


async def test_a_follow_up_missed_across_due_and_grace_fires_due_then_overdue_in_onestep(ctx, store, clock):
    await put(ctx, store, priority="low", due_in=-timedelta(days=30))
    _, uow = await step(ctx, store)
    assert [type(m.event) for m in uow.pending] == [FollowUpDue, TaskOpened, FollowUpOverdue, TaskEscalated]


async def test_the_step_says_more_may_wait_after_a_full_batch(ctx, store, clock):
    for minutes in (3, 2, 1):
        await put(ctx, store, due_in=-timedelta(minutes=minutes))
    small = replace(ctx, batch_size=2)
    more, uow = await step(small, store)
    assert more is True
    assert [e.due_at for e in uow.events(FollowUpDue)] == [clock.now - timedelta(minutes=m) for m in (3, 2)]
    more, uow = await step(small, store)
    assert (more, len(uow.events(FollowUpDue))) == (False, 1)


# --- outcomes ---------------------------------------------------------------------------------------


async def test_a_reached_outcome_completes_and_schedules_the_next_contact_keeping_the_note_private(
    ctx, store, clock, keys
):
    follow_up = await due_now(ctx, store)
    goal = uuid.uuid4()
    command = outcome(
        follow_up,
        goal_progress=((goal, "improving"),),
        barriers=("transportation",),
        next_step="continue-plan",
        note=NOTE,
    )
    result, uow = await run(handlers.record_outcome, ctx, store, command)
    assert (result["follow_up"]["status"], result["attempt"], result["reassessment"]) == (
        "completed",
        1,
        None,
    )
    assert result["follow_up"]["completed_at"] == clock.now
    nxt = store.follow_ups[result["next_follow_up_id"]]
    assert (nxt["status"], nxt["due_at"], nxt["cadence_anchor_at"]) == (
        "scheduled",
        clock.now + timedelta(days=7),
        clock.now,
    )
    assert (nxt["plan_id"], nxt["priority"]) == (follow_up["plan_id"], follow_up["priority"])

    stored = store.outcomes[(follow_up["id"], 1)]
    assert (stored["note"], stored["recorded_by"], stored["recorded_by_role"], stored["recorded_at"]) == (
        None,  # kept sealed only
        "cm-ana",
        "care-manager",
        clock.now,
    )
    opened = await open_for(
        keys, AGENCY, follow_up["patient_id"], note_field(follow_up["id"]), stored["note_sealed"]
    )
    assert opened == NOTE and "Quartermaine" not in json.dumps(stored["note_sealed"])
    assert stored["goal_progress"] == [{"goal_id": str(goal), "progress": "improving"}]
    [completed] = uow.events(FollowUpCompleted)
    assert (completed.reached, completed.attempt, completed.barriers, completed.next_step) == (
        True,
        1,
        ["transportation"],
        "continue-plan",
    )
    # The person who recorded it completed it and, by it, scheduled the next contact.
    [next_scheduled] = uow.events(FollowUpScheduled)
    for event in (completed, next_scheduled):
        assert (event.actor_id, event.actor_role) == ("cm-ana", "care-manager")
    assert [m.envelope.id for m in uow.pending] == [
        event_id("completed", follow_up["id"], 1),
        event_id("scheduled", nxt["id"]),
    ]
    assert uow.events(ReassessmentRequested) == []
    assert all("Quartermaine" not in m.event.model_dump_json() for m in uow.pending)


async def test_not_reached_with_attempts_left_waits_for_the_next_attempt_at_a_new_due_point(
    ctx, store, clock
):
    follow_up = await due_now(ctx, store, priority="high")
    result, uow = await run(handlers.record_outcome, ctx, store, outcome(follow_up, reached=False))
    row = result["follow_up"]
    assert (row["status"], row["attempt"], row["due_point"], row["overdue_since"]) == (
        "scheduled",
        2,
        2,
        None,
    )
    assert row["due_at"] == clock.now + ctx.rules.retry_delay("high")
    assert row["overdue_at"] == row["due_at"] + ctx.rules.grace("high")
    assert (result["attempt"], result["next_follow_up_id"]) == (1, None)
    [retry] = uow.events(FollowUpScheduled)
    assert (retry.due_at, retry.rescheduled) == (row["due_at"], True)
    assert (retry.actor_id, retry.actor_role) == ("cm-ana", "care-manager")
    assert uow.pending[1].envelope.id == event_id("scheduled", follow_up["id"], 2)

    clock.advance(hours=ctx.rules.not_reached.retry_after_hours_by_priority["high"])
    _, fired = await step(ctx, store)
    assert fired.pending[0].envelope.id == due_event_id(follow_up["id"], row["due_at"], 2)


async def test_not_reached_on_the_last_attempt_completes_and_requests_a_reassessment_once(ctx, store, clock):
    last = ctx.rules.not_reached.max_attempts
    follow_up = await due_now(
        ctx, store, reason="referral-check-in", referral_id=uuid.uuid4(), every_days=None
    )
    store.follow_ups[follow_up["id"]]["attempt"] = last
    command = outcome(follow_up, reached=False, by="sv-sam", role="supervisor")
    result, uow = await run(handlers.record_outcome, ctx, store, command)
    assert (result["follow_up"]["status"], result["reassessment"], result["attempt"]) == (
        "completed",
        "not-reached",
        last,
    )
    [requested] = uow.events(ReassessmentRequested)
    assert (requested.reason, requested.follow_up_id) == ("not-reached", follow_up["id"])
    assert (requested.actor_id, requested.actor_role) == ("sv-sam", "supervisor")
    stored = store.outcomes[(follow_up["id"], last)]
    assert (stored["recorded_by"], stored["recorded_by_role"]) == ("sv-sam", "supervisor")
    assert uow.pending[1].envelope.id == event_id("reassessment", follow_up["id"])
    assert result["next_follow_up_id"] is None  # a check-in does not recur
    with pytest.raises(NotOutstanding, match="follow-up is completed"):
        await run(handlers.record_outcome, ctx, store, outcome(follow_up, reached=False))


async def test_a_worsening_goal_requests_a_reassessment(ctx, store):
    follow_up = await due_now(ctx, store)
    command = outcome(follow_up, goal_progress=((uuid.uuid4(), "improving"), (uuid.uuid4(), "worsening")))
    result, uow = await run(handlers.record_outcome, ctx, store, command)
    assert result["reassessment"] == "worsening"
    assert [e.reason for e in uow.events(ReassessmentRequested)] == ["worsening"]


async def test_an_outcome_for_a_follow_up_not_yet_due_is_refused_and_changes_nothing(ctx, store):
    follow_up = await put(ctx, store, due_in=timedelta(days=2))
    before = dict(follow_up)
    with pytest.raises(NotOutstanding) as refused:
        await run(handlers.record_outcome, ctx, store, outcome(follow_up))
    assert (refused.value.status_code, refused.value.body()) == (409, {"detail": "follow-up is not due yet"})
    assert store.follow_ups[follow_up["id"]] == before and store.outcomes == {}


async def test_outcome_codes_the_rules_do_not_know_are_refused_by_position_never_by_value(ctx, store):
    follow_up = await due_now(ctx, store)
    command = outcome(follow_up, barriers=("quartermaine",), next_step="zelda-calls", note=NOTE)
    with pytest.raises(InvalidInput) as refused:
        await run(handlers.record_outcome, ctx, store, command)
    assert refused.value.status_code == 422
    assert refused.value.body() == {
        "detail": [
            {"loc": ["body", "barriers", 0], "type": "invalid_value", "msg": "unknown barrier code"},
            {"loc": ["body", "next_step"], "type": "invalid_value", "msg": "unknown next step code"},
        ]
    }
    assert not any(word in str(refused.value.body()).lower() for word in ("quartermaine", "zelda"))
    assert store.outcomes == {}


async def test_bad_input_is_refused_before_a_follow_up_that_is_not_due(ctx, store):
    follow_up = await put(ctx, store, due_in=timedelta(days=2))
    with pytest.raises(InvalidInput):
        await run(handlers.record_outcome, ctx, store, outcome(follow_up, next_step="zelda-calls"))


async def test_progress_on_a_goal_the_patient_s_plan_does_not_have_is_refused(ctx, store, clock):
    patient, goal = uuid.uuid4(), uuid.uuid4()
    await run(
        handlers.when_plan_updated_schedule_follow_up,
        ctx,
        store,
        received(plan_updated(patient, goals=[goal]), time=clock.now - timedelta(days=31)),
    )
    await step(ctx, store)
    [follow_up] = store.follow_ups.values()
    with pytest.raises(InvalidInput) as refused:
        await run(
            handlers.record_outcome,
            ctx,
            store,
            outcome(follow_up, goal_progress=((uuid.uuid4(), "improving"),)),
        )
    assert [p["msg"] for p in refused.value.problems] == ["not a goal of the patient's plan"]
    result, _ = await run(
        handlers.record_outcome, ctx, store, outcome(follow_up, goal_progress=((goal, "achieved"),))
    )
    assert result["follow_up"]["status"] == "completed"


async def test_a_contact_under_a_plan_that_ended_does_not_recur(ctx, store, clock):
    follow_up = await due_now(ctx, store)
    store.plans[follow_up["patient_id"]] = {
        "patient_id": follow_up["patient_id"],
        "status": "completed",
        "goal_ids": [],
    }
    result, uow = await run(handlers.record_outcome, ctx, store, outcome(follow_up))
    assert result["next_follow_up_id"] is None
    assert len(store.follow_ups) == 1 and uow.events(FollowUpScheduled) == []


async def test_another_agency_s_follow_up_is_not_found_for_any_command(ctx, store, clock):
    follow_up = await due_now(ctx, store)
    for handler, command in (
        (handlers.record_outcome, outcome(follow_up, agency="agency-stranger")),
        (
            handlers.reschedule_follow_up,
            RescheduleFollowUp(
                "agency-stranger",
                follow_up["id"],
                "cm",
                "care-manager",
                "patient-request",
                clock.now + timedelta(days=1),
            ),
        ),
    ):
        with pytest.raises(handlers.FollowUpNotFound) as refused:
            await run(handler, ctx, store, command)
        assert (refused.value.status_code, refused.value.body()) == (404, {"detail": "follow-up not found"})
    assert store.outcomes == {} and store.reschedules == {}


# --- rescheduling ------------------------------------------------------------------------------------


async def test_a_rescheduled_follow_up_waits_for_its_new_time_and_falls_due_again_once(ctx, store, clock):
    follow_up = await due_now(ctx, store)
    new_due = clock.now + timedelta(hours=2)
    command = RescheduleFollowUp(
        AGENCY, follow_up["id"], "care-manager-1", "care-manager", "patient-request", new_due
    )
    row, uow = await run(handlers.reschedule_follow_up, ctx, store, command)
    assert (row["status"], row["due_at"], row["due_point"], row["overdue_since"]) == (
        "scheduled",
        new_due,
        2,
        None,
    )
    assert row["overdue_at"] == new_due + ctx.rules.grace(follow_up["priority"])
    assert store.reschedules[(follow_up["id"], 2)] == {
        "follow_up_id": follow_up["id"],
        "due_point": 2,
        "reason": "patient-request",
        "from_due_at": follow_up["due_at"],
        "to_due_at": new_due,
        "by_subject": "care-manager-1",
        "by_role": "care-manager",
        "at": clock.now,
    }
    [event] = uow.events(FollowUpScheduled)
    assert (event.due_at, event.rescheduled) == (new_due, True)
    assert (event.actor_id, event.actor_role) == ("care-manager-1", "care-manager")
    assert uow.pending[0].envelope.id == event_id("scheduled", follow_up["id"], 2)

    clock.advance(hours=2)
    _, fired = await step(ctx, store)
    assert [e.due_at for e in fired.events(FollowUpDue)] == [new_due]
    assert fired.pending[0].envelope.id == due_event_id(follow_up["id"], new_due, 2)


async def test_a_reschedule_is_announced_in_utc_whatever_offset_it_was_asked_in(ctx, store, clock):
    follow_up = await due_now(ctx, store)
    asked = (clock.now + timedelta(days=1)).astimezone(timezone(timedelta(hours=-5)))
    _, uow = await run(
        handlers.reschedule_follow_up,
        ctx,
        store,
        RescheduleFollowUp(AGENCY, follow_up["id"], "cm", "care-manager", "patient-request", asked),
    )
    [event] = uow.events(FollowUpScheduled)
    assert event.due_at == asked and event.due_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("reason", "due_in", "locs"),
    [
        ("felt-like-it", timedelta(days=1), [["body", "reason"]]),
        ("patient-request", -timedelta(hours=1), [["body", "due_at"]]),
        ("patient-request", timedelta(days=400), [["body", "due_at"]]),
        ("felt-like-it", timedelta(0), [["body", "reason"], ["body", "due_at"]]),
    ],
)
async def test_a_reschedule_needs_a_known_reason_and_a_time_in_the_coming_year(
    ctx, store, clock, reason, due_in, locs
):
    follow_up = await due_now(ctx, store)
    command = RescheduleFollowUp(AGENCY, follow_up["id"], "cm", "care-manager", reason, clock.now + due_in)
    with pytest.raises(InvalidInput) as refused:
        await run(handlers.reschedule_follow_up, ctx, store, command)
    assert [p["loc"] for p in refused.value.body()["detail"]] == locs
    assert {p["type"] for p in refused.value.body()["detail"]} == {"invalid_value"}
    assert "felt-like-it" not in str(refused.value.body())
    assert store.reschedules == {}


@pytest.mark.parametrize("status", ["completed", "cancelled"])
async def test_a_closed_follow_up_cannot_be_rescheduled(ctx, store, clock, status):
    follow_up = await put(ctx, store, status=status)
    command = RescheduleFollowUp(
        AGENCY, follow_up["id"], "cm", "care-manager", "patient-request", clock.now + timedelta(days=1)
    )
    with pytest.raises(NotOutstanding) as refused:
        await run(handlers.reschedule_follow_up, ctx, store, command)
    assert refused.value.body() == {"detail": f"follow-up is {status}"}
