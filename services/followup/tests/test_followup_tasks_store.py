"""The task list's and the caseloads' tables, the same from the in-memory fake and from PostgreSQL: one
task per kind and cause, resolutions by time, escalation once, visibility, ordering, newest assignment,
and the caseload counts. The PostgreSQL run is an integration test in a transaction rolled back after."""

import uuid
from datetime import UTC, datetime, timedelta

from followup.domain.scheduling import new_follow_up

T = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def task(**fields):
    kind = fields.pop("kind", "chase-referral")
    return {
        "id": uuid.uuid4(),
        "kind": kind,
        "cause_key": str(uuid.uuid4()),
        "patient_id": uuid.uuid4(),
        "agency_id": "agency-a",
        "subject": "s",
        "cause_event_id": uuid.uuid4(),
        "cause_event_type": "careloop.referral.referral_overdue.v1",
        "cause_at": T,
        "referral_id": None,
        "follow_up_id": None,
        "assessment_id": None,
        "intervention_id": None,
        "instrument": None,
        "priority": "high",
        "priority_rank": 2,
        "status": "open",
        "due_at": T + timedelta(days=1),
        "escalate_at": T + timedelta(days=2),
        "for_role": "care-manager",
        "assignee_id": "cm-ana",
        "assignee_role": "care-manager",
        "created_at": T,
        "updated_at": T,
        **fields,
    }


async def test_one_task_per_kind_and_cause(any_store):
    first = task()
    assert await any_store.tasks.insert_task(first)
    assert not await any_store.tasks.insert_task({**first, "id": uuid.uuid4()})
    assert await any_store.tasks.insert_task({**first, "id": uuid.uuid4(), "kind": "re-refer"})
    got = await any_store.tasks.get_task("agency-a", first["id"])
    assert (got["status"], got["closed_by"]) == ("open", None)
    assert await any_store.tasks.get_task("agency-b", first["id"]) is None


async def test_a_resolution_counts_from_its_time_on_and_never_for_its_own_cause(any_store):
    patient, cause = uuid.uuid4(), uuid.uuid4()
    before = {
        "patient_id": patient,
        "agency_id": "agency-a",
        "kind": "chase-referral",
        "subject": "r1",
        "event_id": uuid.uuid4(),
        "event_type": "x",
        "resolved_at": T - timedelta(hours=1),
        "any_time": False,
    }
    await any_store.tasks.resolve([before])
    await any_store.tasks.resolve([before])  # again: one row
    assert await any_store.tasks.resolution_for(patient, "chase-referral", "r1", T, cause) is None
    itself = {**before, "event_id": cause, "resolved_at": T + timedelta(hours=1)}
    await any_store.tasks.resolve([itself])
    assert await any_store.tasks.resolution_for(patient, "chase-referral", "r1", T, cause) is None
    anytime = {**before, "event_id": uuid.uuid4(), "any_time": True}
    await any_store.tasks.resolve([anytime])
    found = await any_store.tasks.resolution_for(patient, "chase-referral", "r1", T, cause)
    assert (found["event_id"], found["event_type"]) == (anytime["event_id"], "x")
    assert await any_store.tasks.resolution_for(patient, "chase-referral", "r2", T, cause) is None


async def test_active_about_finds_the_open_tasks_caused_until_a_time_except_one_cause(any_store):
    patient = uuid.uuid4()
    early, late = task(patient_id=patient), task(patient_id=patient, cause_at=T + timedelta(hours=2))
    done = task(patient_id=patient, status="done")
    for t in (early, late, done, task(patient_id=patient, subject="other")):
        await any_store.tasks.insert_task(t)

    async def ids(**kw):
        return {r["id"] for r in await any_store.tasks.active_about(patient, ["chase-referral"], "s", **kw)}

    assert await ids() == {early["id"], late["id"]}
    assert await ids(caused_until=T + timedelta(hours=1)) == {early["id"]}
    assert await ids(except_cause=early["cause_event_id"]) == {late["id"]}


async def test_resolve_finds_each_kinds_tasks_and_remembers_the_resolutions_when_asked(any_store):
    patient = uuid.uuid4()
    chase, later = task(patient_id=patient), task(patient_id=patient, cause_at=T + timedelta(hours=2))
    re_refer = task(patient_id=patient, kind="re-refer")
    anytime = task(patient_id=patient, kind="re-refer", cause_at=T + timedelta(hours=3))
    anytime["created_at"] = T + timedelta(hours=3)  # oldest first
    for t in (chase, later, re_refer, anytime, task(patient_id=patient, subject="other")):
        await any_store.tasks.insert_task(t)
    event = uuid.uuid4()
    resolutions = [
        {"patient_id": patient, "agency_id": "agency-a", "kind": kind, "subject": "s", "event_id": event}
        | {"event_type": "x", "resolved_at": T + timedelta(hours=1), "any_time": any_time}
        for kind, any_time in (("chase-referral", False), ("re-refer", True))
    ]

    found = await any_store.tasks.resolve(resolutions, remember=False)
    assert [[r["id"] for r in rows] for rows in found] == [[chase["id"]], [re_refer["id"], anytime["id"]]]
    cause = uuid.uuid4()
    assert await any_store.tasks.resolution_for(patient, "re-refer", "s", T, cause) is None

    again = await any_store.tasks.resolve(resolutions)  # and remembered
    assert [[r["id"] for r in rows] for rows in again] == [[r["id"] for r in rows] for rows in found]
    for kind in ("chase-referral", "re-refer"):
        remembered = await any_store.tasks.resolution_for(patient, kind, "s", T, cause)
        assert remembered["event_id"] == event
    assert await any_store.tasks.resolve([]) == []


async def test_a_task_is_escalated_once_when_its_time_passes_and_only_while_open(any_store):
    due, closed, later = task(), task(status="done"), task(escalate_at=T + timedelta(days=9))
    for t in (due, closed, later):
        await any_store.tasks.insert_task(t)
    now = T + timedelta(days=3)
    claimed = await any_store.tasks.claim_escalations(now, "supervisor", 10)
    assert [(c["id"], c["assignee_id"], c["assignee_role"], c["escalated_at"]) for c in claimed] == [
        (due["id"], None, "supervisor", now)
    ]
    assert await any_store.tasks.claim_escalations(now, "supervisor", 10) == []


async def test_moving_to_a_new_care_manager_takes_only_the_open_care_tasks(any_store):
    patient = uuid.uuid4()
    mine = task(patient_id=patient)
    started = task(patient_id=patient, status="in-progress")
    unassigned = task(patient_id=patient, assignee_id=None)
    escalated = task(patient_id=patient, assignee_id=None, assignee_role="supervisor")
    admin = task(patient_id=patient, assignee_id=None, assignee_role="admin", for_role="admin")
    closed = task(patient_id=patient, status="cancelled")
    for t in (mine, started, unassigned, escalated, admin, closed):
        await any_store.tasks.insert_task(t)
    assert await any_store.tasks.move_to_care_manager(patient, "cm-bo", "care-manager", T) == 3
    assignees = {
        t["id"]: (await any_store.tasks.get_task("agency-a", t["id"]))["assignee_id"]
        for t in (mine, started, unassigned, escalated, admin, closed)
    }
    assert list(assignees.values()) == ["cm-bo", "cm-bo", "cm-bo", None, None, "cm-ana"]


async def test_the_list_shows_what_the_caller_may_see_most_pressing_first(any_store):
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    rows = [
        task(agency_id=agency, priority="routine", priority_rank=3, due_at=T),
        task(agency_id=agency, priority="stat", priority_rank=0, due_at=T + timedelta(hours=2)),
        task(
            agency_id=agency,
            priority="stat",
            priority_rank=0,
            due_at=T + timedelta(hours=1),
            assignee_id=None,
        ),
        task(agency_id=agency, assignee_id="cm-bo", due_at=T + timedelta(days=1, minutes=1)),
        task(
            agency_id=agency,
            assignee_id=None,
            assignee_role="admin",
            for_role="admin",
            due_at=T + timedelta(days=1, minutes=2),
        ),
        task(agency_id=agency, status="done"),
    ]
    for t in rows:
        await any_store.tasks.insert_task(t)

    async def listed(caller="cm-ana", role="care-manager", **kw):
        args = {"sees_all": False, "mine": False, "assignee_id": None, "statuses": None, "patient_id": None}
        found = await any_store.tasks.list_tasks(
            agency, caller=caller, caller_role=role, **{**args, **kw}, limit=50, offset=0
        )
        return [rows.index(next(t for t in rows if t["id"] == r["id"])) for r in found]

    assert await listed() == [2, 1, 5, 0]
    assert await listed(statuses=["open", "in-progress"]) == [2, 1, 0]
    assert await listed(assignee_id="cm-ana") == [1, 5, 0]
    assert await listed(caller="ad-al", role="admin") == [4]
    assert await listed(caller="sv-sam", role="supervisor", sees_all=True) == [2, 1, 5, 3, 4, 0]
    assert await listed(caller="sv-sam", role="supervisor", sees_all=True, mine=True) == []
    assert await listed(patient_id=rows[0]["patient_id"]) == [0]


async def test_the_newest_assignment_wins_and_a_known_care_manager_is_never_forgotten(any_store):
    patient = uuid.uuid4()

    def row(care_manager, at):
        return {
            "patient_id": patient,
            "agency_id": "agency-a",
            "care_manager_id": care_manager,
            "assigned_at": at,
        }

    assert await any_store.caseload.learn_care_manager(row(None, T))
    assert await any_store.caseload.learn_care_manager(row("cm-ana", T))
    assert await any_store.caseload.learn_care_manager(row("cm-bo", T + timedelta(days=2)))
    assert not await any_store.caseload.learn_care_manager(row("cm-cy", T + timedelta(days=1)))
    assert not await any_store.caseload.learn_care_manager(row(None, T + timedelta(days=5)))
    assert await any_store.caseload.care_manager(patient) == "cm-bo"
    assert await any_store.caseload.care_managers([patient, uuid.uuid4()]) == {patient: "cm-bo"}


NO_PLAN_NOR_CONTACT = {"risk_level": None, "open_needs": [], "last_contact": None}


async def test_a_caseload_shows_the_plans_risk_its_open_needs_and_the_last_time_the_patient_was_reached(
    any_store, rules
):
    agency, patient = f"agency-{uuid.uuid4().hex[:6]}", uuid.uuid4()
    await any_store.caseload.learn_care_manager(
        {"patient_id": patient, "agency_id": agency, "care_manager_id": "cm-ana", "assigned_at": T}
    )
    await any_store.save_plan(
        {
            "patient_id": patient,
            "agency_id": agency,
            "plan_id": uuid.uuid4(),
            "version": 1,
            "status": "active",
            "risk_level": "high",
            "priority": "high",
            "every_days": 7.0,
            "goal_ids": [],
            "open_needs": ["food-insecurity", "transportation-insecurity"],
            "channel": None,
            "updated_at": T,
        }
    )
    follow_up = new_follow_up(
        rules, T, patient_id=patient, agency_id=agency, reason="plan-cadence", priority="high", due_at=T
    )
    await any_store.insert_follow_up(follow_up)
    for attempt, reached, at in ((1, False, T + timedelta(days=1)), (2, True, T + timedelta(days=2))):
        await any_store.insert_outcome(
            {
                "follow_up_id": follow_up["id"],
                "attempt": attempt,
                "reached": reached,
                "goal_progress": [],
                "barriers": [],
                "next_step": None,
                "note": None,
                "recorded_by": "cm-ana",
                "recorded_by_role": "care-manager",
                "recorded_at": at,
            }
        )
    [shown] = await any_store.caseload.caseload(agency, "cm-ana", T, ["stat"], "care-manager", 50, 0)
    assert (shown["risk_level"], list(shown["open_needs"]), shown["last_contact"]) == (
        "high",
        ["food-insecurity", "transportation-insecurity"],
        T + timedelta(days=2),
    )


async def test_caseloads_count_open_overdue_and_urgent_care_tasks_and_the_next_follow_up(any_store, rules):
    agency, now = f"agency-{uuid.uuid4().hex[:6]}", T + timedelta(days=3)
    busy, calm, nobody = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for patient, manager in ((busy, "cm-ana"), (calm, "cm-ana"), (nobody, None)):
        row = {"patient_id": patient, "agency_id": agency, "care_manager_id": manager, "assigned_at": T}
        await any_store.caseload.learn_care_manager(row)
    for t in (
        task(patient_id=busy, agency_id=agency, priority="stat", priority_rank=0),  # overdue by now
        task(patient_id=busy, agency_id=agency, due_at=now + timedelta(days=1)),
        task(patient_id=busy, agency_id=agency, for_role="admin", assignee_role="admin"),  # not care work
        task(patient_id=busy, agency_id=agency, status="done", priority="stat"),
        task(
            patient_id=nobody,
            agency_id=agency,
            priority="urgent",
            priority_rank=1,
            due_at=now + timedelta(days=1),
        ),
    ):
        await any_store.tasks.insert_task(t)
    for patient, days, status in ((calm, 5, "scheduled"), (calm, 9, "scheduled"), (busy, -1, "overdue")):
        follow_up = new_follow_up(
            rules,
            T,
            patient_id=patient,
            agency_id=agency,
            reason="referral-check-in",
            referral_id=uuid.uuid4(),
            priority="high",
            due_at=now + timedelta(days=days),
        )
        await any_store.insert_follow_up({**follow_up, "status": status})

    mine = await any_store.caseload.caseload(agency, "cm-ana", now, ["stat", "urgent"], "care-manager", 50, 0)
    assert [dict(r) for r in mine] == [
        {
            "patient_id": busy,
            "assigned_at": T,
            "open_tasks": 2,
            "overdue_tasks": 1,
            "urgent_tasks": 1,
            "next_follow_up_due": now - timedelta(days=1),
            "overdue_follow_ups": 1,
            **NO_PLAN_NOR_CONTACT,
        },
        {
            "patient_id": calm,
            "assigned_at": T,
            "open_tasks": 0,
            "overdue_tasks": 0,
            "urgent_tasks": 0,
            "next_follow_up_due": now + timedelta(days=5),
            "overdue_follow_ups": 0,
            **NO_PLAN_NOR_CONTACT,
        },
    ]
    loads = await any_store.caseload.agency_caseloads(agency, now, ["stat", "urgent"], "care-manager", 50, 0)
    assert [dict(r) for r in loads] == [
        {
            "care_manager_id": "cm-ana",
            "patients": 2,
            "open_tasks": 2,
            "overdue_tasks": 1,
            "urgent_tasks": 1,
            "overdue_follow_ups": 1,
        },
        {
            "care_manager_id": None,
            "patients": 1,
            "open_tasks": 1,
            "overdue_tasks": 0,
            "urgent_tasks": 1,
            "overdue_follow_ups": 0,
        },
    ]
