import uuid
from datetime import UTC, datetime

from careplan.domain.planning import PlanLibrary, draft_plan

LIBRARY = PlanLibrary.load()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_each_need_gets_a_goal_and_its_library_interventions():
    plan = draft_plan(
        LIBRARY,
        patient_id=uuid.uuid4(),
        needs=["depression", "food-insecurity"],
        risk_level="moderate",
        now=NOW,
    )
    assert [g["need"] for g in plan["goals"]] == ["depression", "food-insecurity"]
    assert [(i["need"], i["program_category"]) for i in plan["interventions"] if i["needs_referral"]] == [
        ("depression", "behavioral-health"),
        ("food-insecurity", "food-assistance"),
    ]
    assert plan["library_version"] == LIBRARY.version


def test_follow_up_cadence_follows_risk():
    cadence = {
        risk: draft_plan(LIBRARY, patient_id=uuid.uuid4(), needs=[], risk_level=risk, now=NOW)["follow_up"][
            "every_days"
        ]
        for risk in ("urgent", "high", "moderate", "low")
    }
    assert cadence == {"urgent": 1, "high": 7, "moderate": 30, "low": 90}


def test_intervention_ids_are_stable_across_revisions():
    patient = uuid.uuid4()
    first = draft_plan(LIBRARY, patient_id=patient, needs=["depression"], risk_level="low", now=NOW)
    again = draft_plan(LIBRARY, patient_id=patient, needs=["depression"], risk_level="high", now=NOW)
    assert [i["id"] for i in first["interventions"]] == [i["id"] for i in again["interventions"]]


def test_unknown_need_uses_the_library_default():
    plan = draft_plan(
        LIBRARY, patient_id=uuid.uuid4(), needs=["utility-insecurity"], risk_level="low", now=NOW
    )
    assert plan["interventions"][0]["program_category"] == "case-management"
