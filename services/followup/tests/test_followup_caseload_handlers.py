"""Caseloads on the in-memory store: who is responsible for each patient (the newest assignment wins),
and their open work moving with them."""

import uuid
from datetime import UTC, datetime, timedelta

from careloop_shared.contracts import CareManagerAssigned, PatientAssessed, PatientRegistered, RiskLevel
from careloop_shared.testing.fakes import received, run, run_step
from followup import handlers
from followup.caseload import handlers as caseload
from followup.domain.commands import ChangeTaskStatus
from followup.domain.scheduling import new_follow_up
from followup.tasks import handlers as tasks

AGENCY = "agency-a"
T = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def registered(patient, care_manager="cm-ana", at=T):
    return PatientRegistered(
        patient_id=patient,
        agency_id=AGENCY,
        preferred_language="en",
        registered_at=at,
        care_manager_id=care_manager,
    )


def assigned(patient, care_manager, at, previous=None):
    return CareManagerAssigned(
        patient_id=patient,
        agency_id=AGENCY,
        care_manager_id=care_manager,
        previous_care_manager_id=previous,
        reason="reassignment",
        assigned_at=at,
        actor_id="sv-sam",
        actor_role="supervisor",
    )


def urgent(patient, at):
    return PatientAssessed(
        patient_id=patient,
        agency_id=AGENCY,
        assessment_id=uuid.uuid4(),
        instrument="phq-9",
        rules_version="screening.v1",
        needs=[],
        risk_level=RiskLevel.urgent,
        urgent_flags=["suicidal-ideation"],
        assessed_at=at,
    )


async def learn(ctx, store, event):
    handler = (
        caseload.when_patient_registered_learn_care_manager
        if isinstance(event, PatientRegistered)
        else caseload.when_care_manager_assigned_move_caseload
    )
    return (await run(handler, ctx, store, received(event)))[1]


async def test_registration_names_the_care_manager_and_a_reassignment_moves_the_open_tasks(ctx, store, clock):
    patient = uuid.uuid4()
    await learn(ctx, store, registered(patient))
    assert store.caseload.patients[patient]["care_manager_id"] == "cm-ana"
    await run(tasks.when_event_track_tasks, ctx, store, received(urgent(patient, clock.now)))
    phq2 = urgent(patient, clock.now + timedelta(hours=1)).model_copy(
        update={"instrument": "phq-2", "urgent_flags": [], "recommended_instruments": ["phq-9"]}
    )
    await run(tasks.when_event_track_tasks, ctx, store, received(phq2))
    [safety] = [t for t in store.tasks.tasks.values() if t["kind"] == "safety-check"]
    await run(tasks.change_task_status, ctx, store, _done(safety))
    uow = await learn(ctx, store, assigned(patient, "cm-bo", T + timedelta(days=3), previous="cm-ana"))
    assert uow.pending == []  # the reassignment itself is the record; tasks move silently
    open_ones = [t for t in store.tasks.tasks.values() if t["status"] == "open"]
    assert open_ones and {t["assignee_id"] for t in open_ones} == {"cm-bo"}
    assert safety["assignee_id"] == "cm-ana"  # closed work stays with who did it


def _done(task):
    return ChangeTaskStatus(AGENCY, task["id"], "cm-ana", "care-manager", "done")


async def test_a_late_older_assignment_changes_nothing(ctx, store):
    patient = uuid.uuid4()
    await learn(ctx, store, registered(patient))
    await learn(ctx, store, assigned(patient, "cm-cy", T + timedelta(days=5)))
    await learn(ctx, store, assigned(patient, "cm-bo", T + timedelta(days=2)))  # made earlier, heard later
    assert store.caseload.patients[patient]["care_manager_id"] == "cm-cy"
    await learn(ctx, store, registered(patient, "cm-ana"))
    assert store.caseload.patients[patient]["care_manager_id"] == "cm-cy"


async def test_work_opened_before_anyone_was_responsible_goes_to_the_care_manager_when_learned(
    ctx, store, clock
):
    patient = uuid.uuid4()
    await learn(ctx, store, registered(patient, care_manager=None))
    await run(tasks.when_event_track_tasks, ctx, store, received(urgent(patient, clock.now)))
    [task] = store.tasks.tasks.values()
    assert (task["assignee_id"], task["assignee_role"]) == (None, "care-manager")
    await learn(ctx, store, assigned(patient, "cm-ana", T))
    assert task["assignee_id"] == "cm-ana"


async def test_escalated_tasks_stay_with_the_supervisor_when_the_patient_is_reassigned(ctx, store, clock):
    patient = uuid.uuid4()
    await learn(ctx, store, registered(patient))
    await run(tasks.when_event_track_tasks, ctx, store, received(urgent(patient, clock.now)))
    clock.advance(hours=2)
    await run_step(tasks.escalate_overdue_tasks, ctx, store)
    await learn(ctx, store, assigned(patient, "cm-bo", T + timedelta(days=1)))
    [task] = store.tasks.tasks.values()
    assert (task["assignee_id"], task["assignee_role"]) == (None, "supervisor")


async def test_a_due_follow_up_is_announced_for_the_current_care_manager(ctx, store, clock):
    patient = uuid.uuid4()
    await learn(ctx, store, registered(patient))
    await learn(ctx, store, assigned(patient, "cm-bo", T + timedelta(days=1)))
    row = new_follow_up(
        ctx.rules,
        clock.now - timedelta(days=1),
        patient_id=patient,
        agency_id=AGENCY,
        reason="plan-cadence",
        priority="high",
        due_at=clock.now,
        every_days=7.0,
        cadence_anchor_at=clock.now - timedelta(days=7),
    )
    await store.insert_follow_up(row)
    _, uow = await run_step(handlers.fire_due_and_overdue_follow_ups, ctx, store)
    assert uow.pending[0].event.assignee_id == "cm-bo"
    shown = await store.get_follow_up(AGENCY, row["id"])
    assert shown["assignee_id"] == "cm-bo"
