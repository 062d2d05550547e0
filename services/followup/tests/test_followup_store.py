"""The store's answers, the same from the in-memory fake and from PostgreSQL: keys and ON CONFLICT,
claims of each due point once, the open cadence, cancellation filters, orderings, agency scoping.

Each test runs on both; the PostgreSQL run is an integration test in a transaction rolled back after.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from followup import store as followup_store
from followup.domain.scheduling import new_follow_up

T = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def row(rules, *, status="scheduled", due_at=T, **fields):
    values = {
        "patient_id": uuid.uuid4(),
        "agency_id": "agency-a",
        "reason": "plan-cadence",
        "priority": "high",
        "due_at": due_at,
        **fields,
    }
    return {**new_follow_up(rules, T - timedelta(days=1), **values), "status": status}


async def insert(store, rules, **fields):
    new = row(rules, **fields)
    assert await store.insert_follow_up(new)
    return new


async def test_one_open_cadence_per_patient_and_one_check_in_per_referral_and_reason(any_store, rules):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    first = await insert(any_store, rules, patient_id=patient)
    assert not await any_store.insert_follow_up(first)  # the same follow-up again
    assert not await any_store.insert_follow_up(row(rules, patient_id=patient))
    await any_store.update_follow_up(first["id"], {"status": "completed"}, T)
    assert await any_store.insert_follow_up(row(rules, patient_id=patient))

    check_in = {"reason": "referral-check-in", "referral_id": referral}
    await insert(any_store, rules, patient_id=patient, **check_in)
    assert not await any_store.insert_follow_up(row(rules, patient_id=patient, **check_in))
    assert await any_store.insert_follow_up(
        row(rules, patient_id=patient, reason="referral-outcome-check-in", referral_id=referral)
    )


async def test_the_open_cadence_is_the_one_scheduled_due_or_overdue(any_store, rules):
    patient = uuid.uuid4()
    assert await any_store.open_cadence(patient) is None
    await insert(any_store, rules, patient_id=patient, reason="referral-check-in", referral_id=uuid.uuid4())
    assert await any_store.open_cadence(patient) is None
    cadence = await insert(any_store, rules, patient_id=patient, status="overdue")
    assert (await any_store.open_cadence(patient))["id"] == cadence["id"]
    await any_store.update_follow_up(cadence["id"], {"status": "cancelled"}, T)
    assert await any_store.open_cadence(patient) is None


async def test_a_patients_open_follow_ups_are_those_of_every_reason_scheduled_due_or_overdue(
    any_store, rules
):
    patient, other = uuid.uuid4(), uuid.uuid4()
    assert await any_store.open_follow_ups(patient) == []
    cadence = await insert(any_store, rules, patient_id=patient, status="due")
    check_in = await insert(any_store, rules, patient_id=patient, reason="referral-check-in",
                            referral_id=uuid.uuid4(), status="overdue")  # fmt: skip
    await insert(any_store, rules, patient_id=patient, reason="referral-outcome-check-in",
                 referral_id=uuid.uuid4(), status="completed")  # fmt: skip
    await insert(any_store, rules, patient_id=other)
    found = await any_store.open_follow_ups(patient)
    assert [f["id"] for f in found] == sorted([cadence["id"], check_in["id"]])
    assert {f["id"]: f["reason"] for f in found} == {
        cadence["id"]: "plan-cadence",
        check_in["id"]: "referral-check-in",
    }


async def test_an_update_changes_only_what_it_names_and_when(any_store, rules):
    follow_up = await insert(any_store, rules)
    updated = await any_store.update_follow_up(follow_up["id"], {"priority": "urgent", "due_point": 2}, T)
    # As shown: with whose it is (nobody's yet: followup has not heard of the patient's care manager).
    assert dict(updated) == {
        **follow_up,
        "priority": "urgent",
        "due_point": 2,
        "updated_at": T,
        "assignee_id": None,
    }


async def test_a_plans_channel_reaches_the_follow_ups_named_only(any_store, rules):
    patient, other = uuid.uuid4(), uuid.uuid4()
    scheduled = await insert(any_store, rules, patient_id=patient)
    overdue = await insert(any_store, rules, patient_id=patient, reason="referral-check-in",
                           referral_id=uuid.uuid4(), status="overdue")  # fmt: skip
    done = await insert(any_store, rules, patient_id=patient, reason="referral-outcome-check-in",
                        referral_id=uuid.uuid4(), status="completed")  # fmt: skip
    elsewhere = await insert(any_store, rules, patient_id=other)
    later = T + timedelta(hours=1)
    await any_store.set_channel([scheduled["id"], overdue["id"]], "sms", later)
    every = (scheduled, overdue, done, elsewhere)
    shown = [await any_store.get_follow_up("agency-a", f["id"]) for f in every]
    seen = {f["id"]: (f["channel"], f["updated_at"]) for f in shown}
    assert seen == {
        scheduled["id"]: ("sms", later),
        overdue["id"]: ("sms", later),
        done["id"]: (None, done["updated_at"]),
        elsewhere["id"]: (None, elsewhere["updated_at"]),
    }
    await any_store.set_channel(
        [scheduled["id"]], "sms", later + timedelta(hours=1)
    )  # unchanged: not touched
    assert (await any_store.get_follow_up("agency-a", scheduled["id"]))["updated_at"] == later


@pytest.mark.integration
async def test_many_patients_channels_in_one_call_a_follow_up_twice_the_later_last(postgres_store, rules):
    first, second = uuid.uuid4(), uuid.uuid4()
    a = await insert(postgres_store, rules, patient_id=first)
    b = await insert(postgres_store, rules, patient_id=second)
    later = T + timedelta(hours=1)
    changes = [
        ((a["id"],), "sms", later),
        ((b["id"],), "phone", later),
        ((a["id"],), None, later + timedelta(hours=1)),
    ]
    await followup_store._set_channels(postgres_store.db, changes)
    got_a = await postgres_store.get_follow_up("agency-a", a["id"])
    assert (got_a["channel"], got_a["updated_at"]) == (None, later + timedelta(hours=1))
    assert (await postgres_store.get_follow_up("agency-a", b["id"]))["channel"] == "phone"


async def test_cancel_open_cancels_only_the_open_follow_ups_its_filters_name(any_store, rules):
    patient, referral = uuid.uuid4(), uuid.uuid4()
    waiting = await insert(
        any_store, rules, patient_id=patient, reason="referral-check-in", referral_id=referral
    )
    due = await insert(any_store, rules, patient_id=patient, status="due", reason="referral-check-in")
    other_reason = await insert(
        any_store, rules, patient_id=patient, reason="referral-outcome-check-in", referral_id=referral
    )
    done = await insert(any_store, rules, patient_id=patient, status="completed", reason="referral-check-in")
    elsewhere = await insert(any_store, rules, reason="referral-check-in", referral_id=uuid.uuid4())

    async def statuses():
        return [
            (await any_store.get_follow_up("agency-a", f["id"]))["status"]
            for f in (waiting, due, other_reason, done, elsewhere)
        ]

    at = T + timedelta(hours=1)
    waiting_only = ("scheduled",)
    kept = await any_store.cancel_open(
        at, referral_id=referral, reason="referral-check-in", statuses=waiting_only
    )
    assert [c["id"] for c in kept] == [waiting["id"]]
    assert await statuses() == ["cancelled", "due", "scheduled", "completed", "scheduled"]
    assert [
        c["id"] for c in await any_store.cancel_open(at, patient_id=patient, reason="referral-check-in")
    ] == [due["id"]]
    assert await statuses() == ["cancelled", "cancelled", "scheduled", "completed", "scheduled"]
    assert (await any_store.get_follow_up("agency-a", due["id"]))["updated_at"] == at


async def test_a_due_point_is_claimed_once_earliest_first_and_only_when_due(any_store, rules):
    later = await insert(any_store, rules, due_at=T + timedelta(minutes=2))
    earlier = await insert(any_store, rules, due_at=T + timedelta(minutes=1))
    not_yet = await insert(any_store, rules, due_at=T + timedelta(days=1))
    now = T + timedelta(minutes=5)
    [first] = await any_store.claim_due(now, 1)
    assert (first["id"], first["status"], first["updated_at"]) == (earlier["id"], "due", now)
    assert [r["id"] for r in await any_store.claim_due(now, 10)] == [later["id"]]
    assert await any_store.claim_due(now, 10) == []
    assert (await any_store.get_follow_up("agency-a", not_yet["id"]))["status"] == "scheduled"


async def test_a_due_follow_up_is_claimed_overdue_once_when_its_grace_period_passed(any_store, rules):
    follow_up = await insert(any_store, rules, status="due", priority="urgent")
    waiting = await insert(any_store, rules, due_at=T - timedelta(days=9))  # not due yet: never overdue
    assert await any_store.claim_overdue(follow_up["overdue_at"] - timedelta(seconds=1), 10) == []
    now = follow_up["overdue_at"] + timedelta(hours=3)
    [late] = await any_store.claim_overdue(now, 10)
    assert (late["id"], late["status"], late["overdue_since"]) == (
        follow_up["id"],
        "overdue",
        follow_up["overdue_at"],
    )
    assert await any_store.claim_overdue(now + timedelta(days=9), 10) == []
    assert (await any_store.get_follow_up("agency-a", waiting["id"]))["status"] == "scheduled"


async def test_reads_are_scoped_to_the_agency_filtered_ordered_and_paged(any_store, rules):
    agency, patient = f"agency-{uuid.uuid4().hex[:6]}", uuid.uuid4()
    rows = [
        await insert(
            any_store,
            rules,
            agency_id=agency,
            patient_id=patient,
            reason="referral-check-in",
            due_at=T + timedelta(days=d),
        )
        for d in (3, 1, 2)
    ]
    await insert(any_store, rules, agency_id=agency, status="due")
    assert await any_store.get_follow_up("agency-stranger", rows[0]["id"]) is None
    assert await any_store.list_follow_ups("agency-stranger", patient, None, 10, 0) == []
    listed = await any_store.list_follow_ups(agency, patient, "scheduled", 2, 1)
    assert [r["id"] for r in listed] == [rows[2]["id"], rows[0]["id"]]
    assert len(await any_store.list_follow_ups(agency, None, None, 10, 0)) == 4
    assert await any_store.list_follow_ups(agency, patient, "due", 10, 0) == []


async def test_the_work_queue_lists_due_and_overdue_most_urgent_priority_first_then_longest_waiting(
    any_store, rules
):
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    expected = []
    for priority, minutes, status in (
        ("low", 50, "due"),
        ("urgent", 10, "overdue"),
        ("high", 40, "due"),
        ("urgent", 30, "due"),
        ("moderate", 20, "overdue"),
    ):
        f = await insert(
            any_store,
            rules,
            agency_id=agency,
            priority=priority,
            status=status,
            due_at=T - timedelta(minutes=minutes),
        )
        expected.append(f["id"])
    await insert(any_store, rules, agency_id=agency, priority="urgent")  # scheduled: not on the queue
    queue = [r["id"] for r in await any_store.work_queue(agency, 10, 0)]
    assert queue == [expected[i] for i in (3, 1, 2, 4, 0)]
    assert [r["id"] for r in await any_store.work_queue(agency, 2, 1)] == queue[1:3]
    assert await any_store.work_queue("agency-stranger", 10, 0) == []


async def test_the_plan_heard_of_last_replaces_the_one_before(any_store):
    patient = uuid.uuid4()
    plan = {
        "patient_id": patient,
        "agency_id": "agency-a",
        "plan_id": uuid.uuid4(),
        "version": 1,
        "status": "active",
        "risk_level": "high",
        "priority": "high",
        "every_days": 7.0,
        "goal_ids": [uuid.uuid4()],
        "open_needs": ["food-insecurity"],
        "channel": "in-person-only",
        "updated_at": T,
    }
    assert await any_store.get_plan(patient) is None
    assert await any_store.save_plan(plan) is True
    revised = {**plan, "version": 2, "status": "revoked", "goal_ids": [], "open_needs": []}
    revised["updated_at"] = T + timedelta(days=1)
    assert await any_store.save_plan(revised) is True
    assert dict(await any_store.get_plan(patient)) == revised
    # The same version again (a redelivery under another event id) or an older one changes nothing.
    for late in ({**revised, "status": "active"}, {**plan, "risk_level": "urgent"}):
        assert await any_store.save_plan(late) is False
    assert dict(await any_store.get_plan(patient)) == revised
    # Another plan replaces it, whatever its version.
    other = {**plan, "plan_id": uuid.uuid4(), "updated_at": T + timedelta(days=2)}
    assert await any_store.save_plan(other) is True
    assert dict(await any_store.get_plan(patient)) == other


async def test_a_patient_belongs_to_the_agency_of_their_plan_or_follow_ups(any_store, rules):
    followed = (await insert(any_store, rules, agency_id="agency-b"))["patient_id"]
    await insert(any_store, rules, patient_id=followed, agency_id="agency-b", reason="referral-check-in")
    planned = uuid.uuid4()
    await any_store.save_plan(
        {
            "patient_id": planned,
            "agency_id": "agency-a",
            "plan_id": uuid.uuid4(),
            "version": 1,
            "status": "active",
            "risk_level": "low",
            "priority": "low",
            "every_days": 90.0,
            "goal_ids": [],
            "updated_at": T,
        }
    )
    found = [await any_store.agency_of_patient(p) for p in (planned, followed, uuid.uuid4())]
    assert found == ["agency-a", "agency-b", None]


async def test_outcomes_and_reschedules_are_kept_once_per_attempt_and_due_point(any_store, rules):
    follow_up = await insert(any_store, rules, status="due")
    for attempt in (2, 1):
        await any_store.insert_outcome(
            {
                "follow_up_id": follow_up["id"],
                "attempt": attempt,
                "reached": attempt == 2,
                "goal_progress": [{"goal_id": str(uuid.uuid4()), "progress": "improving"}],
                "barriers": ["cost"],
                "next_step": None,
                "note": "a note",
                "recorded_by": "care-manager-1",
                "recorded_by_role": "care-manager",
                "recorded_at": T,
            }
        )
    outcomes = [dict(o) for o in await any_store.list_outcomes(follow_up["id"])]
    assert [(o["attempt"], o["reached"]) for o in outcomes] == [(1, False), (2, True)]
    assert set(outcomes[0]) == {
        "attempt",
        "reached",
        "goal_progress",
        "barriers",
        "next_step",
        "note",
        "note_sealed",
        "recorded_by",
        "recorded_by_role",
        "recorded_at",
    }
    assert (outcomes[0]["recorded_by"], outcomes[0]["recorded_by_role"]) == ("care-manager-1", "care-manager")
    moved = {
        "follow_up_id": follow_up["id"],
        "due_point": 2,
        "reason": "patient-request",
        "from_due_at": T,
        "to_due_at": T + timedelta(days=1),
        "by_subject": "care-manager-1",
        "by_role": "care-manager",
        "at": T,
    }
    await any_store.insert_reschedule(moved)
    with pytest.raises(Exception):  # noqa: B017 - a duplicate key, as asyncpg or the fake says it
        await any_store.insert_reschedule(moved)


async def test_erasure_blanks_a_note_kept_sealed_or_in_the_clear_and_a_note_is_never_kept_both_ways(
    any_store, rules
):
    sealed = {"alg": "A256GCM", "kid": "p/1", "nonce": "bm9uY2U=", "ct": "Y3Q="}
    follow_up = await insert(any_store, rules, status="due")
    base = {
        "follow_up_id": follow_up["id"],
        "reached": True,
        "goal_progress": [],
        "barriers": [],
        "next_step": None,
        "recorded_by": "care-manager-1",
        "recorded_by_role": "care-manager",
        "recorded_at": T,
    }
    await any_store.insert_outcome({**base, "attempt": 1, "note": "kept before sealing", "note_sealed": None})
    await any_store.insert_outcome({**base, "attempt": 2, "note": None, "note_sealed": sealed})
    kept = [(o["note"], o["note_sealed"]) for o in await any_store.list_outcomes(follow_up["id"])]
    assert kept == [("kept before sealing", None), (None, sealed)]

    assert await any_store.erase_patient(follow_up["patient_id"], "agency-a", T) == 2
    blanked = [(o["note"], o["note_sealed"]) for o in await any_store.list_outcomes(follow_up["id"])]
    assert blanked == [(None, None), (None, None)]
    assert await any_store.erase_patient(follow_up["patient_id"], "agency-a", T) == 0

    with pytest.raises(Exception):  # noqa: B017 - the CHECK, as asyncpg or the fake says it
        await any_store.insert_outcome({**base, "attempt": 3, "note": "plain", "note_sealed": sealed})
