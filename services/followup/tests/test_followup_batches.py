"""followup's consumer over its real database: who is responsible for each patient, consumed as one
batch, costs as many statements for forty patients as for twenty; the newest assignment wins, and a
patient's open care tasks go to the care manager it names (in the same statement as the others').
Assessments resolve every patient's tasks of two kinds in one statement; referrals resolve theirs and
remember that they did (a cause may come late) in the same statement."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from careloop_shared import db
from careloop_shared.contracts import CareManagerAssigned, PatientRegistered
from careloop_shared.testing.batches import (
    apply_batch,
    batches_of_growing_size,
    by_patient,
    explain_new_sessions,
    notices,
    pages_read,
    plans_run,
    service_pool,
    without_statistics,
)
from careloop_shared.testing.intake_events import REGISTERED_AT, depression_found, registered
from followup import main
from followup.consumers import HANDLERS
from followup.domain.task_rules import CARE_MANAGER
from followup.store import SET_CHANNELS, FollowupStore, _set_channels
from followup.tasks.store import TASKS_ABOUT, tasks_about_arguments

pytestmark = pytest.mark.integration

AT = REGISTERED_AT


def _registered(patient: uuid.UUID, care_manager: str | None = "cm-ana") -> PatientRegistered:
    return registered(patient, care_manager_id=care_manager)


def _assigned(patient: uuid.UUID, care_manager: str, at: datetime) -> CareManagerAssigned:
    return CareManagerAssigned(
        patient_id=patient,
        agency_id="agency-a",
        care_manager_id=care_manager,
        reason="reassignment",
        assigned_at=at,
    )


async def _open_task(pool, patient: uuid.UUID, assignee: str | None) -> uuid.UUID:
    task = uuid.uuid4()
    await pool.execute(
        "INSERT INTO tasks (id, kind, cause_key, patient_id, agency_id, subject, cause_event_id,"
        " cause_event_type, cause_at, priority, priority_rank, status, due_at, for_role, assignee_role,"
        " assignee_id, created_at, updated_at)"
        " VALUES ($1, 'check-in', $6, $2, 'agency-a', 'patient', $1, 'test', $3, 'routine', 3, 'open',"
        " $3, $4, $4, $5, $3, $3)",
        task,
        patient,
        AT,
        CARE_MANAGER,
        assignee,
        str(task),
    )
    return task


async def _task(pool, patient: uuid.UUID, kind: str, subject: str) -> uuid.UUID:
    """An open task of ``kind`` about ``subject``, caused an hour before ``AT``."""
    task = await _open_task(pool, patient, "cm-ana")
    await pool.execute(
        "UPDATE tasks SET kind = $2, subject = $3, cause_at = $4 WHERE id = $1",
        task,
        kind,
        subject,
        AT - timedelta(hours=1),
    )
    return task


async def _care_managers(pool, patients: list[uuid.UUID]) -> list[str | None]:
    return [row and row[0] for row in await by_patient(pool, "patients", "care_manager_id", patients)]


async def test_caseload_changes_share_statements_and_the_newest_assignment_wins(database_factory, ctx):
    pool = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    try:
        grown = await batches_of_growing_size(pool, "followup", HANDLERS, FollowupStore, ctx, _registered)
        for patients, _ in grown.values():
            assert await _care_managers(pool, patients) == ["cm-ana"] * len(patients)
        assert len(grown[40][1]) == len(grown[20][1]), grown[40][1]

        # A task waiting for a care manager, another held by the old one, one for a patient whose
        # reassignment comes late (older than the one known): in one batch with a registration.
        waiting, moved, late, fresh = (uuid.uuid4() for _ in range(4))
        known = [
            _registered(waiting, None),
            _registered(moved),
            _assigned(late, "cm-bo", AT + timedelta(hours=2)),
        ]
        await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, [_registered(late), *known])
        tasks = [
            await _open_task(pool, p, a) for p, a in ((waiting, None), (moved, "cm-ana"), (late, "cm-bo"))
        ]
        batch = [
            _assigned(waiting, "cm-cy", AT + timedelta(hours=1)),
            _assigned(moved, "cm-cy", AT + timedelta(hours=1)),
            _assigned(late, "cm-cy", AT + timedelta(hours=1)),
            _registered(fresh),
            _assigned(fresh, "cm-di", AT + timedelta(hours=1)),
        ]
        await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, batch)
        assert await _care_managers(pool, [waiting, moved, late, fresh]) == [
            "cm-cy",
            "cm-cy",
            "cm-bo",
            "cm-di",
        ]
        assignees = await pool.fetch("SELECT id, assignee_id FROM tasks WHERE id = ANY($1::uuid[])", tasks)
        assert {r["id"]: r["assignee_id"] for r in assignees} == dict(
            zip(tasks, ["cm-cy", "cm-cy", "cm-bo"], strict=True)
        )
    finally:
        await pool.close()


async def test_registrations_and_reassignments_that_alternate_in_a_batch_go_to_their_handlers_together(
    database_factory, ctx
):
    """A poll hands a batch partition after partition: here each patient's event is in its own topic's
    partition, registrations and reassignments alternating; each handler still gets all of its own."""
    pool = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    try:
        sent = {}
        for pairs in (5, 10, 20):  # the first has asyncpg learn the types it sends
            registering = [uuid.uuid4() for _ in range(pairs)]
            reassigned = [uuid.uuid4() for _ in range(pairs)]
            batch = [
                e
                for new, moved in zip(registering, reassigned, strict=True)
                for e in (_registered(new), _assigned(moved, "cm-bo", AT + timedelta(hours=1)))
            ]
            sent[pairs] = await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, batch)
            assert (
                await _care_managers(pool, registering + reassigned) == ["cm-ana"] * pairs + ["cm-bo"] * pairs
            )
        # The inbox, then for each handler the care-manager upsert and the move of open tasks.
        assert len(sent[20]) == len(sent[10]) == 5, sent[20]
    finally:
        await pool.close()


async def test_assessments_resolve_their_patients_tasks_of_every_kind_in_one_statement(database_factory, ctx):
    """A PHQ-2 resolves the patient's task to do a PHQ-2 and their task to be reassessed: both kinds, for
    every patient of the batch, looked up (and locked) in one statement."""
    pool = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    try:
        sent = {}
        for n in (2, 20, 40):  # the first has asyncpg learn the types it sends
            patients = [uuid.uuid4() for _ in range(n)]
            await apply_batch(
                pool, "followup", HANDLERS, FollowupStore, ctx, [_registered(p) for p in patients]
            )
            tasks = [
                await _task(pool, p, k, s)
                for p in patients[:2]
                for k, s in (("do-instrument", "phq-2"), ("reassess", ""))
            ]
            other = await _task(pool, patients[0], "do-instrument", "gad-2")
            assessed = [depression_found(p) for p in patients]
            sent[n] = await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, assessed)

            closed = await pool.fetch(
                "SELECT id, status, resolved_by_event_type FROM tasks WHERE id = ANY($1::uuid[])",
                [*tasks, other],
            )
            assert {r["id"]: (r["status"], r["resolved_by_event_type"]) for r in closed} == {
                **dict.fromkeys(tasks, ("done", depression_found(patients[0]).type)),
                other: ("open", None),
            }
            # Both kinds are caused by events heard in order (assessments, and followup's own requests),
            # so no cause can come after the assessment that resolves it: nothing is kept for one.
            assert await _remembered(pool, patients) == []
        resolving = [q for q in sent[40] if "FROM tasks t" in q]
        assert len(resolving) == 1 and "FROM unnest" in resolving[0], sent[40]
        assert not any("task_resolutions" in q for q in sent[40]), sent[40]
        assert len(sent[40]) == len(sent[20]), sent[40]
    finally:
        await pool.close()


async def test_referrals_resolve_and_remember_in_one_statement_what_a_late_cause_would_open(
    database_factory, ctx
):
    """A referral made for an intervention resolves the patient's task to recruit a provider for it, and
    is kept: the network gap that causes such a task comes on another topic, so it can be heard after the
    referral. Every patient of the batch, looked up and kept in one statement."""
    from .test_followup_tasks_handlers import made

    pool = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    try:
        sent = {}
        for n in (2, 20, 40, 80):  # the first two have asyncpg learn the types it sends
            patients = [uuid.uuid4() for _ in range(n)]
            await apply_batch(
                pool, "followup", HANDLERS, FollowupStore, ctx, [_registered(p) for p in patients]
            )
            interventions = [uuid.uuid4() for _ in patients]
            task = await _task(pool, patients[0], "recruit-provider", str(interventions[0]))
            referrals = [made(p, intervention_id=i) for p, i in zip(patients, interventions, strict=True)]
            sent[n] = await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, referrals)

            row = await pool.fetchrow("SELECT status, resolved_by_event_type FROM tasks WHERE id = $1", task)
            assert (row["status"], row["resolved_by_event_type"]) == ("done", referrals[0].type)
            assert await _remembered(pool, patients) == sorted(
                (p, "recruit-provider", str(i)) for p, i in zip(patients, interventions, strict=True)
            )
        resolving = [q for q in sent[80] if "INSERT INTO task_resolutions" in q]
        assert len(resolving) == 1 and "FROM unnest" in resolving[0] and "FROM tasks t" in resolving[0], sent[
            80
        ]
        assert len(sent[80]) == len(sent[40]), sent[80]
    finally:
        await pool.close()


async def _remembered(pool, patients: list[uuid.UUID]) -> list[tuple[uuid.UUID, str, str]]:
    rows = await pool.fetch(
        "SELECT patient_id, kind, subject FROM task_resolutions WHERE patient_id = ANY($1::uuid[])", patients
    )
    return sorted((r["patient_id"], r["kind"], r["subject"]) for r in rows)


async def test_the_task_look_up_reads_a_few_pages_an_ask_in_a_big_table_without_statistics(database_factory):
    """The look-up every resolving event makes probes each ask's tasks by index, whatever the planner
    knows: here 10,000 open tasks arrive in a table never analyzed (a fresh platform's first minutes), and
    20 asks still read a few pages each (written as a join, the look-up read every open task)."""
    pool = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    try:
        await without_statistics(pool, "tasks")
        patients = [uuid.uuid4() for _ in range(10_000)]
        await pool.execute(
            "INSERT INTO tasks (id, kind, cause_key, patient_id, agency_id, subject, cause_event_id,"
            " cause_event_type, cause_at, priority, priority_rank, status, due_at, for_role,"
            " assignee_role, created_at, updated_at)"
            " SELECT gen_random_uuid(), 'do-instrument', p::text, p, 'agency-a', 'phq-9',"
            " gen_random_uuid(), 'test', $2, 'high', 2, 'open', $2, 'care-manager', 'care-manager',"
            " $2, $2 FROM unnest($1::uuid[]) AS p",
            patients,
            AT,
        )
        await without_statistics(pool, "tasks")  # still, with the rows in
        asks = [(p, ("do-instrument",), "phq-9", None, None) for p in patients[:20]]
        async with pool.acquire() as conn, conn.transaction():
            pages, found = await pages_read(conn, TASKS_ABOUT, *tasks_about_arguments(asks))
        assert found == 20 and pages <= 6 * len(asks), pages
    finally:
        await pool.close()


_FOLLOW_UPS = (
    "WITH f AS (INSERT INTO follow_ups (id, patient_id, agency_id, reason, priority, due_at, status,"
    " created_at, updated_at, overdue_at) SELECT gen_random_uuid(), gen_random_uuid(), 'agency-a',"
    " 'plan-cadence', 'routine', $1, 'scheduled', $1, $1, $1 FROM generate_series(1, $2) RETURNING id)"
    " SELECT array_agg(id) FROM f"
)


async def test_a_batch_of_channels_is_planned_for_its_rows_whatever_the_table_held_before(
    database_factory, infra
):
    """A batch's channel update gives each named follow-up its own channel and time (one whose channel
    stays what it was is not touched), and reads the given rows once, however small the table was when
    the session's first calls came. The session here is where a fresh platform's was: its first calls
    (more than the five after which PostgreSQL may keep one plan for every call) came while the table
    held 300 follow-ups never analyzed; then 10,000 more, and a batch of 500. Planned then for no rows in
    particular, the update ran the given rows again for each follow-up (500 passes over 500 rows)."""
    setup = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    name = await setup.fetchval("SELECT current_database()")
    await setup.close()
    await explain_new_sessions(infra.admin_url(name))
    pool = await db.create_pool(f"{infra.pg_url}/{name}", min_size=1, max_size=1)
    try:
        await pool.fetchval(_FOLLOW_UPS, AT, 300)
        async with pool.acquire() as conn:
            absent = [uuid.uuid4() for _ in range(5)]
            for _ in range(7):
                await _set_channels(conn, [((f,), "sms", AT) for f in absent])
            ids = await conn.fetchval(_FOLLOW_UPS, AT, 10_000)
            chosen = ids[::20]  # 500 of them
            channels = [("sms", "phone", None)[i % 3] for i in range(len(chosen))]
            times = [AT + timedelta(minutes=1 + i) for i in range(len(chosen))]
            with notices(conn) as got:
                await _set_channels(
                    conn, [((f,), c, t) for f, c, t in zip(chosen, channels, times, strict=True)]
                )
        [nodes] = plans_run(got, "UPDATE follow_ups")
        given = [n for n in nodes if n["Node Type"] == "Function Scan"]
        assert given and all(n["Actual Loops"] == 1 for n in given), nodes[0]
        assert sum(n.get("Rows Removed by Join Filter", 0) for n in nodes) <= len(chosen), nodes[0]
        rows = await pool.fetch("SELECT id, channel, updated_at FROM follow_ups WHERE updated_at <> $1", AT)
        assert {r["id"]: (r["channel"], r["updated_at"]) for r in rows} == {
            f: (c, t) for f, c, t in zip(chosen, channels, times, strict=True) if c is not None
        }
    finally:
        await pool.close()


async def test_plans_are_saved_without_being_read_first_and_a_late_version_changes_nothing(
    database_factory, ctx
):
    """A batch of plans saves them in one statement that also tells which were newer than the plan kept
    (the patient's row locked either way): no look-up before it. A version already applied, sent again
    under another event id, schedules nothing and changes nothing."""
    from .test_followup_consumers import plan

    pool = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    try:
        sent = {}
        for n in (2, 20, 40):  # the first has asyncpg learn the types it sends
            patients = [uuid.uuid4() for _ in range(n)]
            registered_ = [_registered(p) for p in patients]
            await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, registered_)
            plans = [plan(p, every_days=14) for p in patients]
            sent[n] = await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, plans)
        assert not [q for q in sent[40] if q.startswith("SELECT * FROM patient_plans")], sent[40]
        # A first plan finds no check-in to give its channel to: no channel update.
        assert not [q for q in sent[40] if q == SET_CHANNELS], sent[40]
        assert len([q for q in sent[40] if "INSERT INTO patient_plans" in q]) == 1
        assert len(sent[40]) == len(sent[20]), sent[40]
        scheduled = await pool.fetchval(
            "SELECT count(*) FROM follow_ups WHERE patient_id = ANY($1::uuid[])", patients
        )
        assert scheduled == 40
        late = [plan(p, every_days=3, version=1) for p in patients[:5]]  # version 1 again, new event ids
        await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, late)
        kept = await pool.fetch(
            "SELECT every_days FROM follow_ups WHERE patient_id = ANY($1::uuid[])", patients[:5]
        )
        assert [r["every_days"] for r in kept] == [14.0] * 5
        saved = await pool.fetch(
            "SELECT every_days FROM patient_plans WHERE patient_id = ANY($1::uuid[])", patients[:5]
        )
        assert [r["every_days"] for r in saved] == [14.0] * 5
    finally:
        await pool.close()


async def test_a_plan_gives_its_channel_to_the_check_ins_still_open_in_one_update_only_when_one_differs(
    database_factory, ctx
):
    """A check-in scheduled before the plan was known has no channel; the plan's channel reaches it, in
    one update for the batch. A batch whose patients have nothing open to change sends no update."""
    from .test_followup_consumers import plan, referral

    def with_channel(patient: uuid.UUID, channel: str):
        event = plan(patient, every_days=14)
        return event.model_copy(update={"follow_up": event.follow_up.model_copy(update={"channel": channel})})

    pool = await service_pool(database_factory, "followup", Path(main.__file__).parent / "migrations")
    try:
        referred, fresh = [uuid.uuid4() for _ in range(3)], [uuid.uuid4() for _ in range(3)]
        await apply_batch(
            pool, "followup", HANDLERS, FollowupStore, ctx, [_registered(p) for p in referred + fresh]
        )
        await apply_batch(
            pool, "followup", HANDLERS, FollowupStore, ctx, [referral(p, uuid.uuid4()) for p in referred]
        )
        sent = await apply_batch(
            pool,
            "followup",
            HANDLERS,
            FollowupStore,
            ctx,
            [with_channel(p, "text") for p in referred + fresh],
        )
        assert len([q for q in sent if q == SET_CHANNELS]) == 1, sent
        rows = await pool.fetch(
            "SELECT patient_id, reason, channel FROM follow_ups WHERE patient_id = ANY($1::uuid[])",
            referred + fresh,
        )
        assert sorted((r["reason"], r["channel"]) for r in rows) == sorted(
            [("referral-check-in", "text")] * 3 + [("plan-cadence", "text")] * 6
        )
        later = [uuid.uuid4() for _ in range(3)]
        await apply_batch(pool, "followup", HANDLERS, FollowupStore, ctx, [_registered(p) for p in later])
        sent = await apply_batch(
            pool, "followup", HANDLERS, FollowupStore, ctx, [with_channel(p, "text") for p in later]
        )
        assert not [q for q in sent if q == SET_CHANNELS], sent
    finally:
        await pool.close()
