import uuid
from datetime import UTC, datetime

import pytest

from careplan.domain.planning import PlanInputs, PlanLibrary, carry_over, draft_plan

LIBRARY = PlanLibrary.load()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def plan(needs=(), risk="moderate", **kw):
    inputs = PlanInputs(
        patient_id=kw.pop("patient_id", uuid.uuid4()),
        needs=[{"code": n} for n in needs],
        risk_level=risk,
        **kw,
    )
    return draft_plan(LIBRARY, inputs, now=NOW)


@pytest.mark.parametrize(
    ("need", "categories"),
    [
        ("depression", ["behavioral-health"]),
        ("food-insecurity", ["food-assistance"]),
        ("housing-instability", ["housing-assistance"]),
        ("inadequate-housing", ["housing-repair"]),
        ("transportation-insecurity", ["transportation"]),
        ("utility-insecurity", ["utility-assistance"]),
        ("intimate-partner-violence", ["domestic-violence-services"]),
        ("financial-insecurity", ["case-management"]),  # not in the library: the default
    ],
)
def test_each_need_gets_a_goal_and_its_library_referrals(need, categories):
    drafted = plan([need])
    assert [g["need"] for g in drafted["goals"]] == [need]
    assert [i["program_category"] for i in drafted["interventions"] if i["needs_referral"]] == categories
    assert drafted["goals"][0]["due"] > NOW.isoformat()
    assert drafted["library_version"] == LIBRARY.version


@pytest.mark.parametrize(("risk", "days"), [("low", 90), ("moderate", 30), ("high", 7), ("urgent", 1)])
def test_follow_up_cadence_follows_risk(risk, days):
    assert plan(["food-insecurity"], risk)["follow_up"] == {
        "every_days": days,
        "priority": risk,
        "channel": "phone",
    }


def test_urgent_flag_adds_an_urgent_safety_intervention_first_and_the_closest_follow_up():
    drafted = plan(["depression"], "moderate", urgent_flags=["suicidal-ideation"])
    first = drafted["interventions"][0]
    assert (first["kind"], first["service_code"], first["priority"]) == (
        "clinical",
        "urgent-safety-evaluation",
        "stat",
    )
    assert drafted["risk_level"] == "urgent"
    assert drafted["follow_up"]["every_days"] == 1
    assert all(i["priority"] != "routine" for i in drafted["interventions"])


def test_a_language_other_than_the_agencys_adds_interpreter_support_and_translated_materials():
    drafted = plan(["depression"], preferred_language="es")
    assert "interpreter-services" in [i["program_category"] for i in drafted["interventions"]]
    education = next(i for i in drafted["interventions"] if i["kind"] == "education")
    assert (education["language"], education["education_materials"]) == ("es", ["edu-depression-es"])
    assert all(i["language"] == "es" for i in drafted["interventions"])


def test_the_agencys_own_language_needs_no_interpreter_and_unknown_languages_fall_back_for_materials():
    assert "interpreter-services" not in [
        i["program_category"] for i in plan(["depression"], preferred_language="en")["interventions"]
    ]
    drafted = plan(["depression"], preferred_language="so")
    education = next(i for i in drafted["interventions"] if i["kind"] == "education")
    assert education["education_materials"] == ["edu-depression-en"]
    assert "interpreter-services" in [i["program_category"] for i in drafted["interventions"]]


def test_do_not_contact_is_respected_by_follow_up():
    assert (
        plan(["depression"], contact_preference="do-not-contact")["follow_up"]["channel"] == "in-person-only"
    )
    assert plan(["depression"], contact_preference="text")["follow_up"]["channel"] == "text"


def test_ids_are_stable_across_revisions_and_progress_is_carried_over():
    patient = uuid.uuid4()
    first = plan(["depression"], "low", patient_id=patient)
    first["interventions"][0]["status"] = "in-progress"
    first["goals"][0]["achievement_status"] = "improving"
    revised = carry_over(first, plan(["depression", "food-insecurity"], "high", patient_id=patient))
    assert revised["interventions"][0]["id"] == first["interventions"][0]["id"]
    assert revised["interventions"][0]["status"] == "in-progress"
    assert revised["goals"][0]["achievement_status"] == "improving"
    assert revised["goals"][0]["due"] == first["goals"][0]["due"]
    assert [g["need"] for g in revised["goals"]] == ["depression", "food-insecurity"]


def test_agreed_goals_are_accepted_and_approved_services_become_clinical_interventions():
    patient = uuid.uuid4()
    goal_id = plan(["depression"], patient_id=patient)["goals"][0]["id"]
    drafted = plan(
        ["depression"], patient_id=patient, agreed_goals=[goal_id], services=["telehealth-check-ins"]
    )
    assert drafted["goals"][0]["lifecycle_status"] == "accepted"
    assert ("clinical", "telehealth-check-ins") in [
        (i["kind"], i["service_code"]) for i in drafted["interventions"]
    ]
