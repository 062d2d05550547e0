"""A need the patient or their family raised with the care team, on an in-memory store: it joins the plan as
an assessed need would, and stays through later assessments."""

from datetime import timedelta

from careloop_shared.contracts import PlanUpdated
from careloop_shared.testing.fakes import run
from careplan.domain.commands import ContributeToPlan
from careplan.plans.revision import StaleVersion
from careplan.team import handlers as team_handlers
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


def stated(patient_id, member_id, need, version):
    return ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member_id, "stated-need", version, need=need)


async def test_a_stated_need_brings_the_library_s_goal_and_interventions_into_a_new_version(ctx, store):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    version, uow = await run(
        team_handlers.contribute, ctx, store, stated(patient_id, member["id"], "transportation-insecurity", 1)
    )
    assert version == 2
    [announced] = uow.events(PlanUpdated)
    assert (announced.reason, announced.actor_id, announced.actor_role) == (
        "care-team-contribution",
        ANA,
        MANAGER,
    )
    assert [g.need for g in announced.goals] == ["depression", "transportation-insecurity"]
    transport = [i for i in announced.interventions if i.need == "transportation-insecurity"]
    assert [(i.kind, i.program_category, i.needs_referral) for i in transport] == [
        ("referral", "transportation", True)
    ]
    assert store.plans.plans[patient_id]["stated_needs"] == ["transportation-insecurity"]
    [row] = store.team.contribution_rows.values()
    assert (row["kind"], row["need"], row["recorded_by_subject"]) == (
        "stated-need",
        "transportation-insecurity",
        ANA,
    )
    [shown] = await store.team.contributions(AGENCY, patient_id, 10, 0)
    assert shown["need"] == "transportation-insecurity"


async def test_a_stated_need_stays_through_a_later_assessment_and_is_never_doubled(ctx, store):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    await run(team_handlers.contribute, ctx, store, stated(patient_id, member["id"], "food-insecurity", 1))
    # A later screening finds food insecurity too, and a housing need: one food goal, kept where it was.
    later = ASSESSED_AT + timedelta(days=1)
    await assess(
        ctx,
        store,
        assessment(patient_id, ("food-insecurity", "housing-instability"), at=later, instrument="ahc-hrsn"),
    )
    goals = [g["need"] for g in current(store, patient_id)["document"]["goals"]]
    assert sorted(goals) == ["depression", "food-insecurity", "housing-instability"]
    # Stating it again changes nothing: no new version.
    version, uow = await run(
        team_handlers.contribute, ctx, store, stated(patient_id, member["id"], "food-insecurity", 3)
    )
    assert version == 3 and uow.events(PlanUpdated) == []
    assert store.plans.plans[patient_id]["stated_needs"] == ["food-insecurity"]


async def test_a_need_the_library_does_not_name_or_a_stale_version_is_refused(ctx, store):
    patient_id = await planned(ctx, store)
    member = await member_of(ctx, store, patient_id)
    unknown = stated(patient_id, member["id"], "space-travel", 1)
    status, body = await refusal(team_handlers.UnknownNeed, team_handlers.contribute, ctx, store, unknown)
    assert status == 422
    assert [(p["loc"], p["msg"]) for p in body["detail"]] == [
        (["body", "need"], "not a need the plan library names")
    ]
    stale = stated(patient_id, member["id"], "food-insecurity", 5)
    status, _ = await refusal(StaleVersion, team_handlers.contribute, ctx, store, stale)
    assert status == 409
    assert store.team.contribution_rows == {}
    assert store.plans.plans[patient_id]["stated_needs"] == []


def withdrawn(patient_id, member_id, need, version):
    return ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member_id, "need-withdrawn", version, need=need)


async def test_a_stated_need_withdrawn_takes_its_goal_and_interventions_out_unless_a_screening_found_it(
    ctx, store
):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    for need, version in (("transportation-insecurity", 1), ("food-insecurity", 2)):
        await run(team_handlers.contribute, ctx, store, stated(patient_id, member["id"], need, version))
    later = ASSESSED_AT + timedelta(days=1)  # a screening finds food insecurity as well
    await assess(ctx, store, assessment(patient_id, ("food-insecurity",), at=later, instrument="ahc-hrsn"))
    at = current(store, patient_id)["version"]
    version, uow = await run(
        team_handlers.contribute,
        ctx,
        store,
        withdrawn(patient_id, member["id"], "transportation-insecurity", at),
    )
    assert version == at + 1
    [announced] = uow.events(PlanUpdated)
    assert announced.reason == "care-team-contribution"
    assert sorted(g.need for g in announced.goals) == ["depression", "food-insecurity"]
    assert all(i.need != "transportation-insecurity" for i in announced.interventions)
    assert store.plans.plans[patient_id]["stated_needs"] == ["food-insecurity"]
    # Withdrawn as stated, food insecurity stays: the screening found it.
    version, _ = await run(
        team_handlers.contribute, ctx, store, withdrawn(patient_id, member["id"], "food-insecurity", version)
    )
    assert store.plans.plans[patient_id]["stated_needs"] == []
    assert sorted(g["need"] for g in current(store, patient_id)["document"]["goals"]) == [
        "depression",
        "food-insecurity",
    ]
    kinds = [r["kind"] for r in store.team.contribution_rows.values()]
    assert kinds == ["stated-need", "stated-need", "need-withdrawn", "need-withdrawn"]


async def test_a_need_nobody_raised_or_already_withdrawn_is_refused_and_nothing_is_kept(ctx, store):
    patient_id = await planned(ctx, store, needs=("depression",))
    member = await member_of(ctx, store, patient_id)
    await run(team_handlers.contribute, ctx, store, stated(patient_id, member["id"], "food-insecurity", 1))
    await run(team_handlers.contribute, ctx, store, withdrawn(patient_id, member["id"], "food-insecurity", 2))
    for need in ("food-insecurity", "depression"):  # withdrawn already; found by a screening, never stated
        status, body = await refusal(
            team_handlers.NeedNotStated,
            team_handlers.contribute,
            ctx,
            store,
            withdrawn(patient_id, member["id"], need, 3),
        )
        assert (status, body) == (
            409,
            {"detail": "that need is not one the care team raised for this plan; nothing to withdraw"},
        ), need
    assert len(store.team.contribution_rows) == 2 and current(store, patient_id)["version"] == 3
