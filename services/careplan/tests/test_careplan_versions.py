import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared.rules import InvalidRulesFile, load_rules
from careplan.domain.necessity import DEFAULT_CRITERIA, NecessityCriteria, UnknownService, decide
from careplan.domain.plan import Intervention, PlanDocument
from careplan.domain.planning import DEFAULT_LIBRARY, PlanInputs, PlanLibrary, draft_plan
from careplan.domain.versions import (
    ACTIVITY_TRANSITIONS,
    GOAL_TRANSITIONS,
    IllegalPlanTransition,
    apply_goal_progress,
    apply_referral_status,
    change_status,
    diff,
    move_goal,
    plan_status_after_progress,
)

LIBRARY = load_rules(PlanLibrary, DEFAULT_LIBRARY)
CRITERIA = load_rules(NecessityCriteria, DEFAULT_CRITERIA)


def plan(needs=("depression",), risk="high"):
    return draft_plan(
        LIBRARY,
        PlanInputs(uuid.uuid4(), list(needs), risk),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


def with_interventions(document: PlanDocument, interventions: list[Intervention]) -> PlanDocument:
    return document.model_copy(update={"interventions": interventions})


def test_diff_shows_added_changed_and_removed_goals_and_interventions():
    old = plan(["depression", "food-insecurity"])
    added = Intervention(id=uuid.uuid4(), need="n", kind="clinical", needs_referral=False)
    kept = [i for i in old.interventions if i.need != "food-insecurity"]
    new = old.model_copy(
        update={
            "goals": [g for g in old.goals if g.need != "food-insecurity"],
            "interventions": [kept[0].model_copy(update={"status": "in-progress"}), *kept[1:], added],
        }
    )
    changes = diff(old, new)
    assert [g["need"] for g in changes["goals"]["removed"]] == ["food-insecurity"]
    assert changes["interventions"]["added"] == [
        {"id": str(added.id), "need": "n", "kind": "clinical", "needs_referral": False}
    ]
    assert changes["interventions"]["changed"] == [
        {
            "id": str(old.interventions[0].id),
            "fields": {"status": {"from": "not-started", "to": "in-progress"}},
        }
    ]
    assert diff(old, old) == {
        part: {"added": [], "changed": [], "removed": []} for part in ("goals", "interventions")
    }


@pytest.mark.parametrize(
    ("current", "new", "ok"),
    [
        ("draft", "active", True),
        ("active", "on-hold", True),
        ("on-hold", "active", True),
        ("active", "completed", True),
        ("on-hold", "revoked", True),
        ("completed", "active", False),
        ("revoked", "active", False),
        ("active", "draft", False),
    ],
)
def test_plan_status_follows_the_fhir_lifecycle(current, new, ok):
    if ok:
        assert change_status(current, new) == new
    else:
        with pytest.raises(IllegalPlanTransition, match=f"a {current} plan cannot become {new}"):
            change_status(current, new)


def test_referral_progress_moves_the_intervention_and_unknown_ones_change_nothing():
    doc = plan()
    referral = next(i for i in doc.interventions if i.needs_referral)
    assert (
        apply_referral_status(doc, referral.id, "in-progress").intervention(referral.id).status
        == "in-progress"
    )
    assert apply_referral_status(doc, referral.id, "requested").interventions[0].status == "scheduled"
    assert apply_referral_status(doc, uuid.uuid4(), "completed") is None
    # A care manager's override replaces the referral: the intervention still stands.
    assert apply_referral_status(doc, referral.id, "cancelled", "overridden-by-care-manager") is None
    assert (
        apply_referral_status(doc, referral.id, "cancelled", "withdrawn-by-referrer")
        .intervention(referral.id)
        .status
        == "cancelled"
    )


def test_a_referral_completed_without_the_service_stops_the_intervention_as_a_failed_one_does():
    doc = plan()
    referral = next(i for i in doc.interventions if i.needs_referral).id

    def status(to: str, delivered: bool | None) -> str:
        return apply_referral_status(doc, referral, to, delivered=delivered).intervention(referral).status

    assert status("failed", None) == "stopped"
    assert status("completed", False) == "stopped"
    assert status("completed", True) == "completed"
    assert status("completed", None) == "completed"  # an outcome of enrollment alone


def test_goal_achieved_completes_it_and_a_plan_with_every_goal_completed_is_completed():
    doc = plan()
    goal = doc.goals[0]
    improving = apply_goal_progress(doc, goal.id, "improving")
    assert improving.goals[0].achievement_status == "improving"
    assert plan_status_after_progress(improving, "active") == "active"
    achieved = apply_goal_progress(doc, goal.id, "achieved")
    assert achieved.goals[0].lifecycle_status == "completed"
    assert plan_status_after_progress(achieved, "active") == "completed"


def test_necessity_met_when_every_criterion_holds():
    doc = plan(["depression"], "high")
    referral = next(i for i in doc.interventions if i.kind == "referral")
    doc = apply_referral_status(doc, referral.id, "in-progress")
    decision = decide(CRITERIA, "home-health-visits", doc)
    assert (decision.met, decision.failed_criteria, decision.alternatives) == (True, [], [])


def test_necessity_not_met_names_the_failed_criteria_and_proposes_alternatives():
    decision = decide(CRITERIA, "home-health-visits", plan(["food-insecurity"], "moderate"))
    assert not decision.met
    assert decision.failed_criteria == [
        "qualifying-need",
        "risk-at-least-high",
        "community-referral-tried-first",
    ]
    assert decision.alternatives == ["community-health-worker-visits", "telehealth-check-ins"]
    assert decision.criteria_version == CRITERIA.version


def test_a_limit_on_active_services_is_a_criterion():
    doc = plan(["depression"], "moderate")
    equipment = Intervention(
        id=uuid.uuid4(),
        need="clinical-service",
        kind="clinical",
        needs_referral=False,
        service_code="durable-medical-equipment",
        status="in-progress",
    )
    doc = with_interventions(doc, [*doc.interventions, equipment])
    assert decide(CRITERIA, "durable-medical-equipment", doc).failed_criteria == [
        "no-active-equipment-request"
    ]


def test_unknown_service_is_refused():
    with pytest.raises(UnknownService) as refused:
        decide(CRITERIA, "space-travel", plan())
    assert refused.value.body() == {
        "detail": [
            {
                "loc": ["body", "service_code"],
                "type": "unknown_service",
                "msg": "no necessity criteria for it",
            }
        ]
    }


def test_a_criterion_with_no_rule_this_engine_knows_stops_the_service_at_start(tmp_path):
    path = tmp_path / "criteria.json"
    path.write_text(
        '{"version": "x", "services": {"s": {"title": "S", "alternatives": [],'
        ' "criteria": [{"code": "c", "moon_phase": "full"}]}}}'
    )
    with pytest.raises(InvalidRulesFile):
        load_rules(NecessityCriteria, path)


def test_the_moves_a_person_may_make_are_fhirs_and_every_closed_item_may_be_reopened():
    for current, moves in ACTIVITY_TRANSITIONS.items():
        assert current not in moves
    assert {s for s, moves in ACTIVITY_TRANSITIONS.items() if moves == {"in-progress"}} == {
        "completed",
        "stopped",
        "cancelled",
    }
    assert {s for s, moves in GOAL_TRANSITIONS.items() if moves == {"active"}} == {"completed", "cancelled"}
    doc = plan()
    goal = doc.goals[0]
    assert move_goal(doc, goal.id, None, None) is doc  # nothing said: nothing changes
    assert move_goal(doc, goal.id, goal.lifecycle_status, None) is doc
