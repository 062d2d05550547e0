import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from careloop_shared.rules import InvalidRulesFile, load_rules
from careplan.domain.necessity import DEFAULT_CRITERIA, NecessityCriteria
from careplan.domain.plan import Intervention, PlanDocument
from careplan.domain.planning import (
    _IDS,
    DEFAULT_LIBRARY,
    PlanInputs,
    PlanLibrary,
    carry_over,
    draft_plan,
    stable_id,
)
from careplan.domain.versions import apply_goal_progress, apply_referral_status

LIBRARY = load_rules(PlanLibrary, DEFAULT_LIBRARY)
CRITERIA = load_rules(NecessityCriteria, DEFAULT_CRITERIA)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Documents drafted by the code before the plan had a typed model: the JSON must stay exactly this.
GOLDEN = json.loads((Path(__file__).parent / "golden" / "plan-documents.json").read_text())


def plan(needs=(), risk="moderate", **kw):
    inputs = PlanInputs(
        patient_id=kw.pop("patient_id", uuid.uuid4()), needs=list(needs), risk_level=risk, **kw
    )
    return draft_plan(LIBRARY, inputs, now=NOW)


def with_intervention_status(document: PlanDocument, index: int, status: str) -> PlanDocument:
    interventions = list(document.interventions)
    interventions[index] = interventions[index].model_copy(update={"status": status})
    return document.model_copy(update={"interventions": interventions})


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
    assert [g.need for g in drafted.goals] == [need]
    assert [i.program_category for i in drafted.interventions if i.needs_referral] == categories
    assert drafted.stored()["goals"][0]["due"] > NOW.isoformat()
    assert drafted.library_version == LIBRARY.version


@pytest.mark.parametrize(("risk", "days"), [("low", 90), ("moderate", 30), ("high", 7), ("urgent", 1)])
def test_follow_up_cadence_follows_risk(risk, days):
    assert plan(["food-insecurity"], risk).stored()["follow_up"] == {
        "every_days": days,
        "priority": risk,
        "channel": "phone",
    }


def test_urgent_flag_adds_an_urgent_safety_intervention_first_and_the_closest_follow_up():
    drafted = plan(["depression"], "moderate", urgent_flags=["suicidal-ideation"])
    first = drafted.interventions[0]
    assert (first.kind, first.service_code, first.priority) == (
        "clinical",
        "urgent-safety-evaluation",
        "stat",
    )
    assert drafted.risk_level == "urgent"
    assert drafted.follow_up.every_days == 1
    assert all(i.priority != "routine" for i in drafted.interventions)


def test_a_language_other_than_the_agencys_adds_interpreter_support_and_translated_materials():
    drafted = plan(["depression"], preferred_language="es")
    assert "interpreter-services" in [i.program_category for i in drafted.interventions]
    education = next(i for i in drafted.interventions if i.kind == "education")
    assert (education.language, education.education_materials) == ("es", ["edu-depression-es"])
    assert all(i.language == "es" for i in drafted.interventions)


def test_the_agencys_own_language_needs_no_interpreter_and_unknown_languages_fall_back_for_materials():
    assert "interpreter-services" not in [
        i.program_category for i in plan(["depression"], preferred_language="en").interventions
    ]
    drafted = plan(["depression"], preferred_language="so")
    education = next(i for i in drafted.interventions if i.kind == "education")
    assert education.education_materials == ["edu-depression-en"]
    assert "interpreter-services" in [i.program_category for i in drafted.interventions]


def test_do_not_contact_is_respected_by_follow_up():
    assert plan(["depression"], contact_preference="do-not-contact").follow_up.channel == "in-person-only"
    assert plan(["depression"], contact_preference="text").follow_up.channel == "text"


def test_the_follow_up_channel_for_a_contact_preference_is_read_from_the_library():
    library = LIBRARY.model_copy(update={"contact_preference_follow_up": {"text": "letter"}})
    inputs = PlanInputs(uuid.uuid4(), ["depression"], "low", contact_preference="text")
    assert draft_plan(library, inputs, now=NOW).follow_up.channel == "letter"
    dnc = PlanInputs(uuid.uuid4(), ["depression"], "low", contact_preference="do-not-contact")
    assert draft_plan(library, dnc, now=NOW).follow_up.channel == "do-not-contact"


def test_ids_are_stable_across_revisions_and_progress_is_carried_over():
    patient = uuid.uuid4()
    first = plan(["depression"], "low", patient_id=patient)
    first = with_intervention_status(first, 0, "in-progress")
    first = apply_goal_progress(first, first.goals[0].id, "improving")
    revised = carry_over(first, plan(["depression", "food-insecurity"], "high", patient_id=patient))
    assert revised.interventions[0].id == first.interventions[0].id
    assert revised.interventions[0].status == "in-progress"
    assert revised.goals[0].achievement_status == "improving"
    assert revised.goals[0].due == first.goals[0].due
    assert [g.need for g in revised.goals] == ["depression", "food-insecurity"]


@pytest.mark.parametrize(
    "parts",
    [(uuid.uuid4(), "depression", "goal"), (uuid.uuid4(), "food-insecurity", "referral", 0), ("x", "ü", 12)],
)
def test_a_stable_id_is_the_uuid5_of_its_parts_as_it_always_was(parts):
    assert stable_id(*parts) == uuid.uuid5(_IDS, "/".join(map(str, parts)))
    assert stable_id(*parts).version == 5


def test_agreed_goals_are_accepted_and_approved_services_become_clinical_interventions():
    patient = uuid.uuid4()
    goal_id = plan(["depression"], patient_id=patient).goals[0].id
    drafted = plan(
        ["depression"], patient_id=patient, agreed_goals=[goal_id], services=["telehealth-check-ins"]
    )
    assert drafted.goals[0].lifecycle_status == "accepted"
    assert ("clinical", "telehealth-check-ins") in [(i.kind, i.service_code) for i in drafted.interventions]


def test_drafted_documents_are_stored_as_the_json_they_always_were():
    patient = uuid.UUID(GOLDEN["patient_id"])
    now = datetime(2026, 11, 2, 9, 30, 15, 250000, tzinfo=UTC)
    first = draft_plan(
        LIBRARY,
        PlanInputs(
            patient,
            ["depression", "food-insecurity", "depression"],
            "moderate",
            ["suicidal-ideation"],
            "es",
            "do-not-contact",
            ["telehealth-check-ins"],
        ),
        now=now,
    )
    goal = first.goals[0].id
    referral = next(i for i in first.interventions if i.kind == "referral").id
    first = apply_goal_progress(apply_referral_status(first, referral, "in-progress"), goal, "improving")
    assert first.stored() == GOLDEN["first"]
    assert json.loads(first.model_dump_json(exclude_unset=True)) == GOLDEN["first"]
    second = carry_over(
        first,
        draft_plan(
            LIBRARY,
            PlanInputs(
                patient,
                ["depression", "financial-insecurity"],
                "high",
                [],
                "so",
                None,
                ["telehealth-check-ins"],
                [goal],
            ),
            now=now + timedelta(days=3),
        ),
    )
    assert second.stored() == GOLDEN["second"]
    assert GOLDEN["second"]["goals"][0]["due"].endswith("+00:00")


def test_safe_channels_and_services_a_provider_delivers_are_drafted_as_stored():
    """A later case: an interpersonal-safety need with the channels the patient marked safe, and
    approved services that a provider delivers."""
    third = draft_plan(
        LIBRARY,
        PlanInputs(
            uuid.UUID(GOLDEN["patient_id"]),
            ["intimate-partner-violence", "housing-instability"],
            "high",
            [],
            "es",
            "text",
            ["telehealth-check-ins", "equipment-loan-closet"],
            [],
            safe_channels=["email", "phone"],
            service_programs=CRITERIA.service_programs(),
        ),
        now=datetime(2026, 11, 30, 14, 5, tzinfo=UTC),
    )
    assert third.stored() == GOLDEN["third"]
    assert third.follow_up.channel == "phone"  # text was preferred, but not marked safe


@pytest.mark.parametrize(
    ("service", "category"),
    [
        ("home-health-visits", "home-health"),
        ("durable-medical-equipment", "medical-equipment"),
        ("specialist-visit", "specialty-care"),
        ("community-health-worker-visits", "community-health-workers"),
        ("telehealth-check-ins", "telehealth"),
        ("equipment-loan-closet", "medical-equipment"),
        ("primary-care-follow-up", "primary-care"),
    ],
)
def test_a_service_a_provider_delivers_needs_a_referral_to_its_program_category(service, category):
    drafted = plan(["depression"], services=[service], service_programs=CRITERIA.service_programs())
    [added] = [i for i in drafted.interventions if i.service_code == service]
    assert (added.kind, added.need, added.needs_referral, added.program_category) == (
        "clinical",
        "clinical-service",
        True,
        category,
    )


def test_a_service_the_care_team_delivers_itself_needs_no_referral():
    criteria = CRITERIA.model_copy(
        update={
            "services": {
                **CRITERIA.services,
                "telehealth-check-ins": CRITERIA.services["telehealth-check-ins"].model_copy(
                    update={"delivered_by_provider": False, "program_category": None}
                ),
            }
        }
    )
    drafted = plan(
        ["depression"], services=["telehealth-check-ins"], service_programs=criteria.service_programs()
    )
    [added] = [i for i in drafted.interventions if i.service_code == "telehealth-check-ins"]
    assert (added.needs_referral, added.program_category) == (False, None)


def test_a_provider_service_without_a_program_category_stops_the_service_at_start(tmp_path):
    criteria = json.loads(DEFAULT_CRITERIA.read_text())
    del criteria["services"]["telehealth-check-ins"]["program_category"]
    path = tmp_path / "necessity-criteria.json"
    path.write_text(json.dumps(criteria))
    with pytest.raises(InvalidRulesFile, match="program_category"):
        load_rules(NecessityCriteria, path)


@pytest.mark.parametrize(
    ("language", "expected"),
    [("es", "edu-safety-planning-es"), ("en", "edu-safety-planning-en"), ("so", "edu-safety-planning-en")],
)
def test_education_topics_are_given_in_the_patients_language_when_written_in_it(language, expected):
    drafted = plan(["intimate-partner-violence"], preferred_language=language)
    [education] = [i for i in drafted.interventions if i.kind == "education"]
    assert education.education_materials == [expected]


def test_a_stored_document_reads_back_as_exactly_the_json_it_was_even_an_older_shape():
    for document in (GOLDEN["first"], GOLDEN["second"], GOLDEN["third"]):
        assert PlanDocument.model_validate(document).stored() == document
    older = {
        "library_version": "plan-library-2026.10.1",
        "risk_level": "low",
        "goals": [
            {
                "id": str(uuid.uuid4()),
                "need": "depression",
                "description": "depression-symptoms-reduced",
                "target": "PHQ-9 total below 10",
                "due": "2026-04-01T09:00:00+00:00",
            }
        ],
        "interventions": [
            {
                "id": str(uuid.uuid4()),
                "need": "depression",
                "kind": "referral",
                "program_category": "behavioral-health",
                "needs_referral": True,
            }
        ],
        "follow_up": {"every_days": 90, "priority": "low"},
    }
    read = PlanDocument.model_validate(older)
    assert read.stored() == older
    assert (read.goals[0].lifecycle_status, read.interventions[0].status) == ("active", "not-started")
    progressed = apply_referral_status(read, read.interventions[0].id, "accepted")
    assert progressed.stored()["interventions"] == [{**older["interventions"][0], "status": "scheduled"}]


def test_an_intervention_needs_what_every_version_of_the_document_had():
    with pytest.raises(ValueError, match="needs_referral"):
        Intervention.model_validate({"id": str(uuid.uuid4()), "need": "n", "kind": "clinical"})


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda lib: lib.pop("interpersonal_safety"), "interpersonal_safety"),
        (lambda lib: lib.update(education_languages=["es"]), "agency_language"),
        (
            lambda lib: lib["needs"]["depression"]["interventions"][1].update(materials={"en": ["x"]}),
            "materials",
        ),
    ],
)
def test_a_library_without_contact_safety_or_education_languages_stops_the_service_at_start(
    tmp_path, change, why
):
    library = json.loads(DEFAULT_LIBRARY.read_text())
    change(library)
    path = tmp_path / "plan-library.json"
    path.write_text(json.dumps(library))
    with pytest.raises(InvalidRulesFile, match=why):
        load_rules(PlanLibrary, path)


def test_a_library_without_a_cadence_for_every_risk_stops_the_service_at_start(tmp_path):
    library = json.loads(DEFAULT_LIBRARY.read_text())
    del library["follow_up_days_by_risk"]["urgent"]
    path = tmp_path / "plan-library.json"
    path.write_text(json.dumps(library))
    with pytest.raises(InvalidRulesFile, match="urgent"):
        load_rules(PlanLibrary, path)


@pytest.mark.parametrize("days", [0, -7, 3651])
def test_a_library_cadence_the_plan_event_could_not_carry_stops_the_service_at_start(tmp_path, days):
    library = json.loads(DEFAULT_LIBRARY.read_text())
    library["follow_up_days_by_risk"]["low"] = days
    path = tmp_path / "plan-library.json"
    path.write_text(json.dumps(library))
    with pytest.raises(InvalidRulesFile, match="at most 3650 days"):
        load_rules(PlanLibrary, path)


@pytest.mark.parametrize("days", [-1, 3651, 1e9])
def test_a_library_goal_due_past_ten_years_or_in_the_past_stops_the_service_at_start(tmp_path, days):
    library = json.loads(DEFAULT_LIBRARY.read_text())
    library["needs"]["depression"]["goal"]["due_days"] = days
    path = tmp_path / "plan-library.json"
    path.write_text(json.dumps(library))
    with pytest.raises(InvalidRulesFile, match="due_days"):
        load_rules(PlanLibrary, path)
