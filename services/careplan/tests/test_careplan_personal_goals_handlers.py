"""A goal the patient set in their own words with the care team, on an in-memory store: it joins the plan's
goals, agreed from the start; its words stay sealed with the contribution, never in the plan or an event."""

import json
import uuid
from datetime import timedelta

from careloop_shared.contracts import PlanUpdated
from careloop_shared.errors import Invalid
from careloop_shared.testing.fakes import run
from careplan.domain.commands import ContributeToPlan, MoveGoal
from careplan.plans import handlers as plan_handlers
from careplan.team import handlers as team_handlers
from careplan.team.sealed import contribution_shown
from services.careplan.tests.test_careplan_handlers import (
    AGENCY,
    ANA,
    ASSESSED_AT,
    MANAGER,
    assess,
    assessment,
    current,
    member_of,
    planned,
    refusal,
)

WORDS = "Walk Mia to school again by spring"


def own_goal(patient_id, member_id, version, *, words=WORDS, need=None, due=None):
    return ContributeToPlan(
        AGENCY, ANA, MANAGER, patient_id, member_id, "personal-goal", version, note=words, need=need, due=due
    )


async def test_a_goal_in_the_patient_s_words_joins_the_plan_agreed_and_its_words_stay_sealed(
    ctx, store, clock
):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    version, uow = await run(team_handlers.contribute, ctx, store, own_goal(patient_id, member["id"], 1))
    assert version == 2
    [announced] = uow.events(PlanUpdated)
    assert announced.reason == "care-team-contribution"
    library, own = [g for g in announced.goals if g.need == "depression"], announced.goals[-1]
    assert len(library) == 1 and len(announced.goals) == 2
    assert (own.need, own.description, own.target, own.lifecycle_status) == (
        "personal",
        "personal-goal",
        "In the patient's own words",
        "accepted",
    )
    assert own.due == clock.now + timedelta(days=90)  # the plan library's default
    assert WORDS not in json.dumps([p.event.model_dump(mode="json") for p in uow.pending])
    assert WORDS not in json.dumps(current(store, patient_id)["document"])
    [row] = store.team.contribution_rows.values()
    assert (row["kind"], row["goal_id"], row["note"]) == ("personal-goal", own.id, None)
    assert row["id"] == own.id and WORDS not in json.dumps(row, default=str)
    shown = await contribution_shown(ctx.keys, AGENCY, patient_id, row)
    assert shown["note"] == WORDS


async def test_a_personal_goal_keeps_its_progress_through_a_later_assessment(ctx, store, clock):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    due = clock.now + timedelta(days=30)
    command = own_goal(patient_id, member["id"], 1, need="food-insecurity", due=due)
    await run(team_handlers.contribute, ctx, store, command)
    [goal] = [
        g for g in current(store, patient_id)["document"]["goals"] if g["description"] == "personal-goal"
    ]
    assert (goal["need"], goal["due"]) == ("food-insecurity", due.isoformat())
    said = MoveGoal(AGENCY, ANA, MANAGER, patient_id, uuid.UUID(goal["id"]), None, "improving", 2)
    assert (await run(plan_handlers.move_goal_by_hand, ctx, store, said))[0] == 3
    later = ASSESSED_AT + timedelta(days=1)
    await assess(
        ctx, store, assessment(patient_id, ("housing-instability",), at=later, instrument="ahc-hrsn")
    )
    after = current(store, patient_id)["document"]["goals"]
    [kept] = [g for g in after if g["id"] == goal["id"]]
    assert (kept["achievement_status"], kept["due"], kept["lifecycle_status"]) == (
        "improving",
        due.isoformat(),
        "accepted",
    )
    assert sorted(g["need"] for g in after) == ["depression", "food-insecurity", "housing-instability"]


async def test_a_personal_goal_due_in_the_past_or_for_an_unknown_need_is_refused_and_nothing_kept(
    ctx, store, clock
):
    patient_id = await planned(ctx, store)
    member = await member_of(ctx, store, patient_id)
    for command, field in (
        (own_goal(patient_id, member["id"], 1, due=clock.now - timedelta(days=1)), "due"),
        (own_goal(patient_id, member["id"], 1, due=clock.now + timedelta(days=3651)), "due"),
        (own_goal(patient_id, member["id"], 1, need="space-travel"), "need"),
    ):
        status, body = await refusal(Invalid, team_handlers.contribute, ctx, store, command)
        assert status == 422 and [p["loc"] for p in body["detail"]] == [["body", field]], (field, body)
    assert store.team.contribution_rows == {}
    assert store.plans.plans[patient_id]["personal_goals"] == []


def reworded(patient_id, member_id, goal_id, version, words):
    return ContributeToPlan(
        AGENCY, ANA, MANAGER, patient_id, member_id, "goal-reworded", version, note=words, goal_id=goal_id
    )


async def test_a_personal_goal_is_put_in_new_words_kept_sealed_with_no_new_version(ctx, store):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    await run(team_handlers.contribute, ctx, store, own_goal(patient_id, member["id"], 1))
    goal = current(store, patient_id)["document"]["goals"][-1]
    goal_id = uuid.UUID(goal["id"])
    before = current(store, patient_id)["document"]
    anew = "Walk Mia to school twice a week"
    version, uow = await run(
        team_handlers.contribute, ctx, store, reworded(patient_id, member["id"], goal_id, 2, anew)
    )
    assert version == 2 and uow.pending == []  # the plan has only the goal's code: nothing to announce
    assert current(store, patient_id)["document"] == before
    rows = await store.team.contributions(AGENCY, patient_id, 10, 0, ["personal-goal", "goal-reworded"])
    assert [(r["kind"], r["goal_id"]) for r in rows] == [
        ("personal-goal", goal_id),
        ("goal-reworded", goal_id),
    ]
    assert rows[-1]["note"] is None and anew not in json.dumps(dict(rows[-1]), default=str)
    assert (await contribution_shown(ctx.keys, AGENCY, patient_id, rows[-1]))["note"] == anew


async def test_only_a_goal_in_their_own_words_is_reworded(ctx, store):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    library_goal = uuid.UUID(current(store, patient_id)["document"]["goals"][0]["id"])
    for goal_id, refused, status in (
        (library_goal, team_handlers.NotInTheirWords, 409),
        (uuid.uuid4(), team_handlers.GoalNotFound, 404),
    ):
        command = reworded(patient_id, member["id"], goal_id, 1, "Sleep through the night")
        answered, body = await refusal(refused, team_handlers.contribute, ctx, store, command)
        assert answered == status, body
    assert store.team.contribution_rows == {}
