import copy
import uuid
from datetime import UTC, datetime

import pytest

from careplan.domain.necessity import NecessityCriteria, UnknownService, decide
from careplan.domain.planning import PlanInputs, PlanLibrary, draft_plan
from careplan.domain.versions import (
    IllegalPlanTransition,
    apply_goal_progress,
    apply_referral_status,
    change_status,
    diff,
    plan_status_after_progress,
)

LIBRARY = PlanLibrary.load()
CRITERIA = NecessityCriteria.load()


def plan(needs=("depression",), risk="high"):
    return draft_plan(
        LIBRARY,
        PlanInputs(uuid.uuid4(), [{"code": n} for n in needs], risk),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_diff_shows_added_changed_and_removed_goals_and_interventions():
    old = plan(["depression", "food-insecurity"])
    new = copy.deepcopy(old)
    new["goals"] = [g for g in new["goals"] if g["need"] != "food-insecurity"]
    new["interventions"] = [i for i in new["interventions"] if i["need"] != "food-insecurity"]
    new["interventions"][0]["status"] = "in-progress"
    new["interventions"].append({"id": "x", "need": "n", "kind": "clinical"})
    changes = diff(old, new)
    assert [g["need"] for g in changes["goals"]["removed"]] == ["food-insecurity"]
    assert changes["interventions"]["added"] == [{"id": "x", "need": "n", "kind": "clinical"}]
    assert changes["interventions"]["changed"] == [
        {
            "id": old["interventions"][0]["id"],
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
        assert change_status({}, current, new) == new
    else:
        with pytest.raises(IllegalPlanTransition):
            change_status({}, current, new)


def test_referral_progress_moves_the_intervention_and_unknown_ones_change_nothing():
    doc = plan()
    referral = next(i for i in doc["interventions"] if i["needs_referral"])
    assert (
        next(
            i
            for i in apply_referral_status(doc, referral["id"], "in-progress")["interventions"]
            if i["id"] == referral["id"]
        )["status"]
        == "in-progress"
    )
    assert (
        apply_referral_status(doc, referral["id"], "requested")["interventions"][0]["status"] == "scheduled"
    )
    assert apply_referral_status(doc, str(uuid.uuid4()), "completed") is None


def test_goal_achieved_completes_it_and_a_plan_with_every_goal_completed_is_completed():
    doc = plan()
    goal = doc["goals"][0]
    improving = apply_goal_progress(doc, goal["id"], "improving")
    assert improving["goals"][0]["achievement_status"] == "improving"
    assert plan_status_after_progress(improving, "active") == "active"
    achieved = apply_goal_progress(doc, goal["id"], "achieved")
    assert achieved["goals"][0]["lifecycle_status"] == "completed"
    assert plan_status_after_progress(achieved, "active") == "completed"


def test_necessity_met_when_every_criterion_holds():
    doc = plan(["depression"], "high")
    next(i for i in doc["interventions"] if i["kind"] == "referral")["status"] = "in-progress"
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
    doc["interventions"].append(
        {"id": "e", "kind": "clinical", "service_code": "durable-medical-equipment", "status": "in-progress"}
    )
    assert decide(CRITERIA, "durable-medical-equipment", doc).failed_criteria == [
        "no-active-equipment-request"
    ]


def test_unknown_service_is_refused():
    with pytest.raises(UnknownService):
        decide(CRITERIA, "space-travel", plan())
