"""A to-do a person adds about a patient for themselves, on the fake store: on the task list for them with
its coded purpose, announced, and closed like any task; refused for a stranger's or an erased patient."""

import uuid
from datetime import timedelta

import pytest

from careloop_shared.contracts import CareManagerAssigned, TaskOpened, TaskStatusChanged
from careloop_shared.errors import Invalid
from careloop_shared.testing.fakes import FakeUnitOfWork, received, run, run_step
from followup.caseload import handlers as caseload
from followup.domain.commands import ChangeTaskStatus, MakeToDo
from followup.domain.erasure import NoContactWithErased, NoWorkForErased
from followup.tasks import handlers as tasks
from services.followup.tests.test_followup_tasks_handlers import AGENCY, hear, registered


def to_do(patient, due_at, *, purpose="paperwork", priority="high", agency=AGENCY):
    return MakeToDo(agency, patient, "cm-ana", "care-manager", purpose, priority, due_at)


async def test_a_to_do_is_the_callers_task_announced_with_its_purpose_and_done_like_any_other(
    ctx, store, clock
):
    patient = uuid.uuid4()
    await hear(ctx, store, registered(patient))
    due = clock.now + timedelta(days=2)
    row, uow = await run(tasks.make_to_do, ctx, store, to_do(patient, due))
    assert (row["kind"], row["purpose"], row["priority"], row["status"], row["due_at"]) == (
        "to-do",
        "paperwork",
        "high",
        "open",
        due,
    )
    assert (row["assignee_id"], row["assignee_role"], row["for_role"], row["escalate_at"]) == (
        "cm-ana",
        "care-manager",
        "care-manager",
        None,
    )
    [pending] = uow.pending
    opened = pending.event
    assert isinstance(opened, TaskOpened)
    assert (opened.task_id, opened.kind, opened.purpose, opened.assignee_id) == (
        row["id"],
        "to-do",
        "paperwork",
        "cm-ana",
    )
    assert (opened.cause.event_id, opened.cause.event_type) == (pending.envelope.id, TaskOpened.type)
    # Two alike are two to-dos; the clock never escalates one.
    again, _ = await run(tasks.make_to_do, ctx, store, to_do(patient, due))
    assert again["id"] != row["id"]
    clock.advance(days=30)
    _, escalated = await run_step(tasks.escalate_overdue_tasks, ctx, store)
    assert escalated.pending == []
    done = ChangeTaskStatus(AGENCY, row["id"], "cm-ana", "care-manager", "done", "completed")
    moved, uow = await run(tasks.change_task_status, ctx, store, done)
    assert moved["status"] == "done" and [e.to_status for e in uow.events(TaskStatusChanged)] == ["done"]


async def test_a_to_do_for_a_stranger_an_erased_patient_or_out_of_the_rules_is_refused(ctx, store, clock):
    patient = uuid.uuid4()
    await hear(ctx, store, registered(patient))
    soon = clock.now + timedelta(days=1)
    with pytest.raises(tasks.PatientNotFound):
        await run(tasks.make_to_do, ctx, store, to_do(patient, soon, agency="agency-b"))
    with pytest.raises(tasks.PatientNotFound):
        await run(tasks.make_to_do, ctx, store, to_do(uuid.uuid4(), soon))
    with pytest.raises(Invalid) as bad:
        late = clock.now + timedelta(days=366)
        await run(tasks.make_to_do, ctx, store, to_do(patient, late, purpose="gossip", priority="stat"))
    assert [p["loc"] for p in bad.value.body()["detail"]] == [
        ["body", "purpose"],
        ["body", "priority"],
        ["body", "due_at"],
    ]
    with pytest.raises(Invalid):
        await run(tasks.make_to_do, ctx, store, to_do(patient, clock.now))
    await store.erase_patient(patient, AGENCY, clock.now)
    with pytest.raises(NoWorkForErased) as erased:
        await run(tasks.make_to_do, ctx, store, to_do(patient, soon))
    assert erased.value.status_code == 410
    assert store.tasks.tasks == {}


async def test_new_work_is_for_the_agencys_patients_not_erased_and_says_which_refusal(ctx, store, clock):
    patient = uuid.uuid4()
    await hear(ctx, store, registered(patient))
    uow = FakeUnitOfWork(store)
    await tasks.check_new_work(uow, AGENCY, patient, NoWorkForErased)  # one of ours: nothing said
    for agency, someone in (("agency-b", patient), (AGENCY, uuid.uuid4())):
        with pytest.raises(tasks.PatientNotFound):
            await tasks.check_new_work(uow, agency, someone, NoWorkForErased)
    await store.erase_patient(patient, AGENCY, clock.now)
    for refusal in (NoWorkForErased, NoContactWithErased):
        with pytest.raises(refusal) as erased:
            await tasks.check_new_work(uow, AGENCY, patient, refusal)
        assert erased.value.status_code == 410


async def test_a_supervisor_adds_a_to_do_for_the_patients_care_manager_who_keeps_it_as_the_caseload_moves(
    ctx, store, clock
):
    patient, nobody_s = uuid.uuid4(), uuid.uuid4()
    await hear(ctx, store, registered(patient))
    due = clock.now + timedelta(days=2)
    asked = MakeToDo(
        AGENCY, patient, "sv-sam", "supervisor", "call-patient", "urgent", due, for_care_manager=True
    )
    row, uow = await run(tasks.make_to_do, ctx, store, asked)
    assert (row["assignee_id"], row["assignee_role"], row["for_role"]) == (
        "cm-ana",
        "care-manager",
        "care-manager",
    )
    assert (row["opened_by"], row["opened_by_role"]) == ("sv-sam", "supervisor")
    [opened] = uow.events(TaskOpened)
    assert (opened.assignee_id, opened.actor_id, opened.actor_role) == ("cm-ana", "sv-sam", "supervisor")
    # The patient moves to another care manager: the to-do goes with them, as the care manager's tasks do.
    moved = CareManagerAssigned(
        patient_id=patient,
        agency_id=AGENCY,
        care_manager_id="cm-bo",
        previous_care_manager_id="cm-ana",
        assigned_at=clock.now,
        reason="caseload-balance",
    )
    await run(caseload.when_care_manager_assigned_move_caseload, ctx, store, received(moved))
    assert store.tasks.tasks[row["id"]]["assignee_id"] == "cm-bo"
    # A patient nobody is responsible for yet: the to-do is refused, and nothing is kept.
    await hear(ctx, store, registered(nobody_s, care_manager=None))
    alone = MakeToDo(
        AGENCY, nobody_s, "sv-sam", "supervisor", "paperwork", "routine", due, for_care_manager=True
    )
    with pytest.raises(tasks.NoCareManager) as refused:
        await run(tasks.make_to_do, ctx, store, alone)
    assert refused.value.status_code == 409
    assert [t for t in store.tasks.tasks.values() if t["patient_id"] == nobody_s] == []
