"""careplan's FHIR mappers, pure: every resource validates as FHIR (``fhir.resources``, R4B: the
nearest to R4 it ships), versions chain by ``replaces``, needs are coded only where the Gravity
categories give a code, references resolve among what one patient's plan makes (or are intake's
``Patient`` and ``Condition``), and no member's name or contact detail is ever sent."""

import uuid
from datetime import UTC, datetime, timedelta

from fhir.resources.R4B import get_fhir_model_class

from careloop_shared.fhir import SDOH_CATEGORY
from careplan.domain.planning import PlanInputs, draft_plan
from careplan.domain.versions import apply_goal_progress, complete_intervention
from careplan.fhir import resources
from careplan.fhir.codes import SERVICE

PATIENT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
PLAN_ID = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HRSN_ID, PHQ_ID = uuid.uuid4(), uuid.uuid4()
ASSESSMENTS = {
    "social-needs": {
        "instrument": "ahc-hrsn",
        "assessment_id": str(HRSN_ID),
        "needs": [{"code": "food-insecurity"}, {"code": "housing-instability"}],
        "risk_level": "high",
        "urgent_flags": [],
        "assessed_at": AT.isoformat(),
    },
    "depression-screening": {
        "instrument": "phq-9",
        "assessment_id": str(PHQ_ID),
        "needs": [{"code": "depression", "severity": "moderate"}],
        "risk_level": "moderate",
        "urgent_flags": [],
        "assessed_at": (AT + timedelta(hours=1)).isoformat(),
    },
}


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def versions(ctx) -> list[dict]:
    """Three versions: food and housing; then depression too, with a flag and a service; then the
    food goal achieved and housing resolved (dropped), the plan active."""
    first = draft_plan(
        ctx.library, PlanInputs(PATIENT_ID, ["food-insecurity", "housing-instability"], "high"), now=AT
    )
    second = draft_plan(
        ctx.library,
        PlanInputs(
            PATIENT_ID,
            ["food-insecurity", "housing-instability", "depression"],
            "high",
            urgent_flags=["suicidal-ideation"],
            preferred_language="es",
            services=["specialist-visit"],
            service_programs=ctx.criteria.service_programs(),
        ),
        now=AT,
    )
    third = draft_plan(ctx.library, PlanInputs(PATIENT_ID, ["food-insecurity", "depression"], "high"), now=AT)
    food = next(g for g in third.goals if g.need == "food-insecurity")
    third = apply_goal_progress(third, food.id, "achieved") or third
    third = complete_intervention(third, third.interventions[0].id)
    documents = [(first, "draft"), (second, "draft"), (third, "active")]
    return [
        {
            "plan_id": PLAN_ID,
            "patient_id": PATIENT_ID,
            "version": n,
            "status": status,
            "document": document.stored(),
            "changed_by_subject": "cm-ana" if n == 3 else None,
            "created_at": AT + timedelta(days=n),
        }
        for n, (document, status) in enumerate(documents, start=1)
    ]


def made_of(ctx) -> list[dict]:
    """What the FHIR routes make of that plan: its versions, its goals, its team, a service request."""
    rows = versions(ctx)
    latest = rows[-1]["version"]
    conditions = resources.conditions_of(ASSESSMENTS)
    plans = [resources.care_plan(r, latest=latest, conditions=conditions) for r in rows]
    last_held: dict[str, tuple[dict, int]] = {}
    for r in rows:
        for g in r["document"]["goals"]:
            last_held[g["id"]] = (g, r["version"])
    goals = [
        resources.goal(g, patient_id=PATIENT_ID, in_current=v == latest, conditions=conditions)
        for g, v in last_held.values()
    ]
    team = resources.care_team(
        {"plan_id": PLAN_ID, "patient_id": PATIENT_ID, "status": "active"}, MEMBERS, "agency-a"
    )
    return [*plans, *goals, team]


MEMBERS = [
    {
        "id": uuid.uuid4(),
        "name": "Rosa Quispe",
        "relationship": "family",
        "role": "primary-support",
        "contact": "+1 555 0142",
        "status": "active",
        "created_at": AT,
        "updated_at": AT,
    },
    {
        "id": uuid.uuid4(),
        "name": "Itzel Quenteh",
        "relationship": "patient",
        "role": "decision-maker",
        "contact": None,
        "status": "inactive",
        "created_at": AT,
        "updated_at": AT + timedelta(days=3),
    },
]


def request_row(**changes) -> dict:
    return {
        "id": uuid.uuid4(),
        "patient_id": PATIENT_ID,
        "plan_id": PLAN_ID,
        "service_code": "home-health-visits",
        "met": True,
        "failed_criteria": [],
        "alternatives": [],
        "criteria_version": "test",
        "chosen_alternative": None,
        "chosen_at": None,
        "created_at": AT,
        "requested_by_subject": "cm-ana",
        "requested_by_role": "care-manager",
        "chosen_by_subject": None,
        "chosen_by_role": None,
        **changes,
    }


def test_every_resource_made_of_a_plan_validates_as_fhir(ctx):
    made = [valid(r) for r in made_of(ctx)]
    assert [r["resourceType"] for r in made].count("CarePlan") == 3
    assert {r["resourceType"] for r in made} == {"CarePlan", "Goal", "CareTeam"}
    assert all(len(r["id"]) <= 64 for r in made)
    for code in ctx.criteria.services:
        valid(resources.service_request(request_row(service_code=code), ctx.criteria.services[code]))
    valid(resources.service_request(request_row(service_code="gone"), None))


def test_each_version_replaces_the_one_before_and_only_the_current_one_is_in_force(ctx):
    plans = [r for r in made_of(ctx) if r["resourceType"] == "CarePlan"]
    assert [p["id"] for p in plans] == [f"{PLAN_ID}-v{n}" for n in (1, 2, 3)]
    assert [p.get("replaces") for p in plans] == [
        None,
        [{"reference": f"CarePlan/{PLAN_ID}-v1"}],
        [{"reference": f"CarePlan/{PLAN_ID}-v2"}],
    ]
    assert [(p["status"], p["intent"]) for p in plans] == [
        ("revoked", "proposal"),
        ("revoked", "proposal"),
        ("active", "plan"),
    ]
    assert {p["identifier"][0]["value"] for p in plans} == {str(PLAN_ID)}
    assert plans[2]["author"] == {
        "type": "Practitioner",
        "identifier": {"system": "urn:careloop:staff", "value": "cm-ana"},
    }
    assert resources.parse_care_plan_id(plans[1]["id"]) == (PLAN_ID, 2)
    assert resources.parse_care_plan_id("not-a-plan-v1") is None


def test_only_the_current_version_addresses_intakes_conditions_every_version_says_its_needs(ctx):
    plans = [r for r in made_of(ctx) if r["resourceType"] == "CarePlan"]
    assert "addresses" not in plans[0] and "addresses" not in plans[1]
    assert plans[2]["addresses"] == [
        {"reference": f"Condition/{HRSN_ID}-food-insecurity"},
        {"reference": f"Condition/{PHQ_ID}-depression"},
    ]
    assert plans[0]["description"] == "Needs: Food insecurity; Housing instability"
    sdoh = [c["coding"][0]["code"] for c in plans[1]["category"][1:]]
    assert sdoh == ["food-insecurity", "housing-instability"]  # depression has no Gravity category
    reasons = {
        a["detail"]["reasonCode"][0]["text"]: a["detail"]["reasonCode"][0] for a in plans[1]["activity"]
    }
    assert reasons["Food insecurity"]["coding"] == [{"system": SDOH_CATEGORY, "code": "food-insecurity"}]
    assert "coding" not in reasons["Depression"] and "coding" not in reasons["Suicidal ideation"]
    assert reasons["Language access"]["coding"][0]["code"] == "language-access"


def test_activities_carry_the_interventions_status_service_and_goal(ctx):
    plans = [r for r in made_of(ctx) if r["resourceType"] == "CarePlan"]
    second = plans[1]["activity"]
    service = [
        a["detail"]
        for a in second
        if {"system": SERVICE, "code": "specialist-visit"} in a["detail"]["code"]["coding"]
    ]
    assert [d["status"] for d in service] == ["not-started"]
    referrals = [a["detail"] for a in second if a["detail"].get("kind") == "ServiceRequest"]
    assert referrals and all(d["code"]["coding"][0]["code"] == "referral" for d in referrals)
    assert plans[2]["activity"][0]["detail"]["status"] == "completed"
    goal_ids = {g["reference"] for g in plans[1]["goal"]}
    assert {g["reference"] for a in second for g in a["detail"].get("goal", [])} <= goal_ids


def test_goals_stand_as_their_latest_version_says_and_a_dropped_open_goal_is_cancelled(ctx):
    goals = {g["description"]["text"]: g for g in made_of(ctx) if g["resourceType"] == "Goal"}
    assert set(goals) == {"Reliable food access", "Stable housing", "Depression symptoms reduced"}
    food, housing = goals["Reliable food access"], goals["Stable housing"]
    assert food["lifecycleStatus"] == "completed"
    assert food["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert food["category"] == [{"coding": [{"system": SDOH_CATEGORY, "code": "food-insecurity"}]}]
    assert food["target"] == [
        {"measure": {"text": "No food insecurity on rescreen"}, "dueDate": "2027-01-01"}
    ]
    assert food["addresses"] == [{"reference": f"Condition/{HRSN_ID}-food-insecurity"}]
    assert (housing["lifecycleStatus"], "addresses" in housing) == ("cancelled", False)
    assert housing["statusReason"] == "no longer in the current care plan"
    assert goals["Depression symptoms reduced"]["lifecycleStatus"] == "active"


def test_every_reference_resolves_among_the_plans_resources_or_names_intakes(ctx):
    made = made_of(ctx)
    known = {f"{r['resourceType']}/{r['id']}" for r in made} | {f"Patient/{PATIENT_ID}"}
    intakes = {f"Condition/{HRSN_ID}-{n}" for n in ("food-insecurity", "housing-instability")}
    intakes |= {f"Condition/{PHQ_ID}-depression"}
    for r in made:
        refs = [r.get("subject"), *r.get("replaces", []), *r.get("goal", []), *r.get("careTeam", [])]
        refs += [*r.get("addresses", []), *(p.get("member") for p in r.get("participant", []))]
        refs += [g for a in r.get("activity", []) for g in a["detail"].get("goal", [])]
        assert {x["reference"] for x in refs if x} <= known | intakes, r["id"]


def test_a_care_team_says_roles_never_names_or_contact_details(ctx):
    [team] = [r for r in made_of(ctx) if r["resourceType"] == "CareTeam"]
    assert (team["id"], team["status"]) == (str(PLAN_ID), "active")
    family, patient = team["participant"]
    assert [c["coding"][0]["code"] for c in family["role"]] == ["family", "primary-support"]
    assert "member" not in family and "end" not in family["period"]
    assert patient["member"] == {"reference": f"Patient/{PATIENT_ID}"}
    assert patient["period"]["end"] == (AT + timedelta(days=3)).isoformat()
    text = str(team)
    assert not any(m["name"] in text or (m["contact"] or "\0") in text for m in MEMBERS)
    draft = resources.care_team({"plan_id": PLAN_ID, "patient_id": PATIENT_ID, "status": "draft"}, [], "a")
    assert (valid(draft)["status"], "participant" in draft) == ("proposed", False)


def test_a_service_request_is_active_when_met_and_revoked_with_its_alternatives_when_not(ctx):
    spec = ctx.criteria.services["home-health-visits"]
    met = valid(resources.service_request(request_row(), spec))
    assert (met["status"], met["intent"], "note" in met) == ("active", "order", False)
    assert met["code"] == {"coding": [{"system": SERVICE, "code": "home-health-visits"}], "text": spec.title}
    assert [c["coding"][0]["code"] for c in met["category"]] == [
        "housing-instability",
        "inadequate-housing",
        "home-health",
    ]
    refused = request_row(
        met=False,
        failed_criteria=["risk-at-least-high"],
        alternatives=["telehealth-check-ins"],
        chosen_alternative="telehealth-check-ins",
        chosen_at=AT,
        chosen_by_subject="cm-bo",
    )
    not_met = valid(resources.service_request(refused, spec))
    assert not_met["status"] == "revoked"
    [note] = not_met["note"]
    assert note["text"] == (
        "Necessity criteria not met: risk-at-least-high; alternatives proposed: telehealth-check-ins;"
        " chosen: telehealth-check-ins"
    )
    assert note["authorReference"]["identifier"]["value"] == "cm-bo"
    equipment = resources.service_request(
        request_row(service_code="durable-medical-equipment"),
        ctx.criteria.services["durable-medical-equipment"],
    )
    assert [c["coding"][0]["code"] for c in equipment["category"]] == ["medical-equipment"]
