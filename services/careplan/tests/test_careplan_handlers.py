"""careplan's use cases on an in-memory store: decisions, stored rows and events; no broker or database."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.contracts import (
    CareTeamChanged,
    ContactChannel,
    ContactPreference,
    EducationProvided,
    FollowUpCompleted,
    GoalProgress,
    Need,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    PlanAlternativesProposed,
    PlanUpdated,
    ReferralOutcome,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.testing.fakes import assert_fake_matches, received, run
from careplan.domain.commands import (
    AddCareTeamMember,
    ChangeCareTeamMember,
    ChangePlanStatus,
    ChooseAlternative,
    ContributeToPlan,
    MoveGoal,
    MoveIntervention,
    RecordEducation,
    RemoveCareTeamMember,
    RequestService,
)
from careplan.domain.necessity import UnknownService
from careplan.domain.versions import (
    ClosedPlan,
    FollowsItsReferral,
    IllegalItemMove,
    IllegalPlanTransition,
    NotInPlan,
)
from careplan.education import handlers as education_handlers
from careplan.education.store import EducationStore
from careplan.erasure.store import ErasureStore
from careplan.necessity import handlers as necessity_handlers
from careplan.necessity.store import NecessityStore
from careplan.plans import handlers as plan_handlers
from careplan.plans.revision import PlanNotFound, StaleVersion
from careplan.plans.store import PlanStore
from careplan.store import CareplanStore
from careplan.team import handlers as team_handlers
from careplan.team.sealed import contribution_shown
from careplan.team.store import TeamStore

AGENCY = "agency-a"
MANAGER = "care-manager"
ANA = "cm-ana"  # the person: her token's subject
SUPERVISOR, SAM = "supervisor", "sv-sam"
ASSESSED_AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def assessment(
    patient_id: uuid.UUID,
    needs=("depression",),
    risk="moderate",
    instrument="phq-2",
    *,
    agency=AGENCY,
    at=ASSESSED_AT,
    flags=(),
):
    return received(
        PatientAssessed(
            patient_id=patient_id,
            agency_id=agency,
            assessment_id=uuid.uuid4(),
            instrument=instrument,
            rules_version="test",
            needs=[Need(code=n) for n in needs],
            risk_level=RiskLevel(risk),
            urgent_flags=list(flags),
            assessed_at=at,
        ),
        time=at,
    )


async def assess(ctx, store, *events):
    _, uow = await run(plan_handlers.when_patient_assessed_revise_plan, ctx, store, list(events))
    return uow


async def planned(ctx, store, needs=("depression",), risk="moderate", instrument="phq-2") -> uuid.UUID:
    """A new patient with a plan at version 1."""
    patient_id = uuid.uuid4()
    await assess(ctx, store, assessment(patient_id, needs, risk, instrument))
    return patient_id


def current(store, patient_id: uuid.UUID) -> dict:
    """The current version's row: status, document (as stored JSON), reason, changed_by."""
    return store.plans.current(patient_id)


async def member_of(ctx, store, patient_id: uuid.UUID, **fields) -> dict:
    command = AddCareTeamMember(
        **{
            "agency_id": AGENCY,
            "by": ANA,
            "by_role": MANAGER,
            "patient_id": patient_id,
            "name": "Rosalind Okonkwo-Brandt",
            "relationship": "family",
            "role": "primary-support",
            "contact": "+1 555 0142",
            **fields,
        }
    )
    row, _ = await run(team_handlers.add_member, ctx, store, command)
    return row


async def refusal(kind, handler, ctx, store, command) -> tuple[int, dict]:
    """How the caller is answered when the handler refuses (``run`` leaves the store as it was)."""
    with pytest.raises(kind) as refused:
        await run(handler, ctx, store, command)
    return refused.value.status_code, refused.value.body()


@pytest.mark.parametrize(
    ("real", "fake"),
    [
        ("CareplanStore", None),
        ("PlanStore", "plans"),
        ("TeamStore", "team"),
        ("NecessityStore", "necessity"),
        ("EducationStore", "education"),
        ("ErasureStore", "erasure"),
    ],
)
def test_the_fake_stores_answer_like_the_real_ones(store, real, fake):
    real_class = {
        "CareplanStore": CareplanStore,
        "PlanStore": PlanStore,
        "TeamStore": TeamStore,
        "NecessityStore": NecessityStore,
        "EducationStore": EducationStore,
        "ErasureStore": ErasureStore,
    }[real]
    assert_fake_matches(real_class, type(getattr(store, fake) if fake else store))


async def test_whose_patient_it_is_comes_from_the_plan_or_else_from_intakes_events(ctx, store):
    with_plan, registered_only = await planned(ctx, store), uuid.uuid4()
    await store.plans.upsert_patient(registered_only, "agency-b", "en", None, None, ASSESSED_AT)
    assert [await store.agency_of_patient(p) for p in (with_plan, registered_only, uuid.uuid4())] == [
        AGENCY,
        "agency-b",
        None,
    ]


# ---- plans: reactions to events ----------------------------------------------------------------------


async def test_a_first_assessment_opens_an_active_plan_and_announces_version_1(ctx, store):
    patient_id = uuid.uuid4()
    event = assessment(patient_id, ["depression"], "moderate", "phq-2")
    uow = await assess(ctx, store, event)
    [announced] = uow.events(PlanUpdated)
    assert (announced.version, announced.status, announced.reason, announced.changed_by_role) == (
        1,
        "active",
        "assessment:phq-2",
        "system",
    )
    assert announced.based_on_assessment_id == event.event.assessment_id
    assert uow.pending[0].envelope.causation_id == event.envelope.id
    assert (announced.actor_id, announced.actor_role) == (None, None)  # careloop did it on its own
    version = current(store, patient_id)
    assert (version["changed_by"], version["changed_by_subject"]) == ("system", None)
    assert (version["version"], version["status"], version["caused_by_event"]) == (
        1,
        "active",
        event.envelope.id,
    )
    assert [g["need"] for g in version["document"]["goals"]] == ["depression"]
    assert version["document"]["goals"][0]["due"] == (ASSESSED_AT + timedelta(days=90)).isoformat()
    assert store.plans.plans[patient_id]["assessments"] == {
        "depression-screening": {
            "instrument": "phq-2",
            "assessment_id": str(event.event.assessment_id),
            "needs": [{"code": "depression", "severity": None}],
            "risk_level": "moderate",
            "urgent_flags": [],
            "assessed_at": ASSESSED_AT.isoformat(),
        }
    }


async def test_a_batch_revises_each_patients_plan_in_order(ctx, store):
    first, second = uuid.uuid4(), uuid.uuid4()
    uow = await assess(
        ctx,
        store,
        assessment(first, ["food-insecurity"], "moderate", "ahc-hrsn"),
        assessment(second, ["depression"], "moderate", "phq-2"),
        assessment(first, ["depression"], "high", "phq-2", at=ASSESSED_AT + timedelta(minutes=5)),
    )
    assert [(e.patient_id, e.version) for e in uow.events(PlanUpdated)] == [
        (first, 1),
        (second, 1),
        (first, 2),
    ]
    assert sorted(g["need"] for g in current(store, first)["document"]["goals"]) == [
        "depression",
        "food-insecurity",
    ]
    assert current(store, first)["document"]["risk_level"] == "high"


async def test_a_phq9_supersedes_a_phq2_and_an_older_result_arriving_late_changes_nothing(ctx, store):
    patient_id = await planned(ctx, store, ["depression"], "moderate", "phq-2")
    later = ASSESSED_AT + timedelta(hours=1)
    await assess(ctx, store, assessment(patient_id, [], "low", "phq-9", at=later))
    assert current(store, patient_id)["document"]["goals"] == []
    uow = await assess(
        ctx, store, assessment(patient_id, ["depression"], "high", "phq-2", at=later - timedelta(minutes=1))
    )
    assert uow.pending == []
    assert current(store, patient_id)["version"] == 2


async def test_an_assessment_that_changes_nothing_stores_its_inputs_and_no_version(ctx, store):
    patient_id = await planned(ctx, store)
    again = assessment(patient_id, at=ASSESSED_AT + timedelta(days=1))
    uow = await assess(ctx, store, again)
    assert uow.pending == []
    assert current(store, patient_id)["version"] == 1
    stored = store.plans.plans[patient_id]["assessments"]["depression-screening"]
    assert stored["assessment_id"] == str(again.event.assessment_id)


async def test_an_assessment_from_another_agency_is_refused_and_changes_nothing(ctx, store):
    patient_id = await planned(ctx, store)
    before = dict(store.plans.plans[patient_id])
    with pytest.raises(plan_handlers.ForeignAgencyAssessment):
        await assess(ctx, store, assessment(patient_id, ["food-insecurity"], agency="agency-b"))
    assert store.plans.plans[patient_id] == before


async def test_a_plan_on_hold_stays_on_hold_when_reassessed(ctx, store):
    patient_id = await planned(ctx, store)
    await run(
        plan_handlers.change_plan_status,
        ctx,
        store,
        ChangePlanStatus(AGENCY, ANA, MANAGER, patient_id, "on-hold", 1),
    )
    uow = await assess(ctx, store, assessment(patient_id, ["food-insecurity"], "moderate", "ahc-hrsn"))
    assert [(e.version, e.status) for e in uow.events(PlanUpdated)] == [(3, "on-hold")]


def details_changed(patient_id, language="es", contact=ContactPreference.text, *, at=ASSESSED_AT):
    updated = PatientUpdated(
        patient_id=patient_id,
        agency_id=AGENCY,
        preferred_language=language,
        contact_preference=contact,
        changed_fields=["preferred_language", "contact_preference"],
        updated_at=at,
    )
    return received(updated, time=at)


async def test_patient_details_personalise_the_plan(ctx, store):
    patient_id = uuid.uuid4()
    registered = PatientRegistered(
        patient_id=patient_id, agency_id=AGENCY, preferred_language="en", registered_at=ASSESSED_AT
    )
    _, uow = await run(
        plan_handlers.when_patient_details_change_personalise_plan,
        ctx,
        store,
        received(registered, time=ASSESSED_AT),
    )
    assert uow.pending == []  # no plan yet: the preferences wait for it
    await assess(ctx, store, assessment(patient_id, ["depression"]))
    updated = details_changed(
        patient_id, "es", ContactPreference.do_not_contact, at=ASSESSED_AT + timedelta(hours=1)
    )
    _, uow = await run(plan_handlers.when_patient_details_change_personalise_plan, ctx, store, updated)
    [announced] = uow.events(PlanUpdated)
    assert (announced.version, announced.reason, announced.actor_id) == (2, "preferences-changed", None)
    assert (announced.preferred_language, announced.contact_preference) == ("es", "do-not-contact")
    document = current(store, patient_id)["document"]
    assert document["follow_up"]["channel"] == "in-person-only"
    assert "interpreter-services" in [i["program_category"] for i in document["interventions"]]


async def test_safe_channels_are_kept_and_an_interpersonal_safety_need_is_followed_up_only_through_them(
    ctx, store
):
    patient_id = uuid.uuid4()
    registered = PatientRegistered(
        patient_id=patient_id,
        agency_id=AGENCY,
        preferred_language="en",
        contact_preference=ContactPreference.text,
        safe_channels=[ContactChannel.phone],
        registered_at=ASSESSED_AT,
    )
    await run(
        plan_handlers.when_patient_details_change_personalise_plan,
        ctx,
        store,
        received(registered, time=ASSESSED_AT),
    )
    assert store.plans.patients[patient_id]["safe_channels"] == ["phone"]
    uow = await assess(ctx, store, assessment(patient_id, ["intimate-partner-violence"], "high", "ahc-hrsn"))
    [announced] = uow.events(PlanUpdated)
    assert announced.follow_up.channel == "phone"  # text is preferred, but only the phone is safe
    assert current(store, patient_id)["document"]["follow_up"]["channel"] == "phone"
    # The patient now says nothing is safe (None: not said, which counts as nothing safe).
    updated = PatientUpdated(
        patient_id=patient_id,
        agency_id=AGENCY,
        preferred_language="en",
        contact_preference=ContactPreference.text,
        changed_fields=["safe_channels"],
        safe_channels=None,
        updated_at=ASSESSED_AT + timedelta(hours=1),
    )
    _, uow = await run(
        plan_handlers.when_patient_details_change_personalise_plan,
        ctx,
        store,
        received(updated, time=ASSESSED_AT + timedelta(hours=1)),
    )
    [announced] = uow.events(PlanUpdated)
    assert (announced.version, announced.reason, announced.follow_up.channel) == (
        2,
        "preferences-changed",
        "in-person-only",
    )
    assert store.plans.patients[patient_id]["safe_channels"] is None


async def test_safe_channels_change_nothing_in_a_plan_without_such_a_need(ctx, store):
    patient_id = await planned(ctx, store, ["depression"])
    updated = PatientUpdated(
        patient_id=patient_id,
        agency_id=AGENCY,
        preferred_language="en",
        contact_preference=ContactPreference.email,
        changed_fields=["contact_preference", "safe_channels"],
        safe_channels=[ContactChannel.phone],
        updated_at=ASSESSED_AT + timedelta(hours=1),
    )
    _, uow = await run(
        plan_handlers.when_patient_details_change_personalise_plan, ctx, store, received(updated)
    )
    [announced] = uow.events(PlanUpdated)
    assert announced.follow_up.channel == "email"


async def test_older_patient_details_arriving_late_change_nothing(ctx, store):
    patient_id = await planned(ctx, store)
    at = ASSESSED_AT + timedelta(hours=2)
    newer, older = (
        details_changed(patient_id, "es", at=at),
        details_changed(patient_id, "pt", at=at - timedelta(hours=1)),
    )
    await run(plan_handlers.when_patient_details_change_personalise_plan, ctx, store, newer)
    _, uow = await run(plan_handlers.when_patient_details_change_personalise_plan, ctx, store, older)
    assert uow.pending == []
    assert current(store, patient_id)["document"]["preferred_language"] == "es"


@pytest.mark.parametrize("status", ["completed", "revoked"])
async def test_a_closed_plan_is_not_personalised(ctx, store, status):
    patient_id = await planned(ctx, store)
    await run(
        plan_handlers.change_plan_status,
        ctx,
        store,
        ChangePlanStatus(AGENCY, ANA, MANAGER, patient_id, status, 1),
    )
    updated = details_changed(patient_id, "es", at=ASSESSED_AT + timedelta(hours=1))
    _, uow = await run(plan_handlers.when_patient_details_change_personalise_plan, ctx, store, updated)
    assert uow.pending == []
    assert store.plans.patients[patient_id]["preferred_language"] == "es"


def referral_moved(patient_id, intervention_id, to_status, outcome=None):
    return received(
        ReferralStatusChanged(
            patient_id=patient_id,
            agency_id=AGENCY,
            referral_id=uuid.uuid4(),
            plan_id=uuid.uuid4(),
            intervention_id=intervention_id,
            from_status="requested",
            to_status=to_status,
            by_agency_id="agency-bh",
            by_party="target",
            outcome=outcome,
            changed_at=ASSESSED_AT + timedelta(days=1),
        )
    )


async def test_referral_progress_moves_its_intervention(ctx, store):
    patient_id = await planned(ctx, store)
    referral = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "referral"
    )
    moved = referral_moved(patient_id, uuid.UUID(referral["id"]), "in-progress")
    _, uow = await run(plan_handlers.when_referral_status_changes_track_intervention, ctx, store, moved)
    [announced] = uow.events(PlanUpdated)
    assert (announced.version, announced.reason, announced.actor_id, announced.actor_role) == (
        2,
        "progress",
        None,
        None,
    )
    assert next(i for i in announced.interventions if str(i.id) == referral["id"]).status == "in-progress"
    unknown = referral_moved(patient_id, uuid.uuid4(), "completed")
    _, uow = await run(plan_handlers.when_referral_status_changes_track_intervention, ctx, store, unknown)
    assert uow.pending == []


async def test_a_referral_completed_without_the_service_stops_its_intervention(ctx, store):
    patient_id = await planned(ctx, store)
    referral = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "referral"
    )
    outcome = ReferralOutcome(service_delivered=False, reason="unable-to-contact")
    moved = referral_moved(patient_id, uuid.UUID(referral["id"]), "completed", outcome)
    _, uow = await run(plan_handlers.when_referral_status_changes_track_intervention, ctx, store, moved)
    [announced] = uow.events(PlanUpdated)
    assert next(i for i in announced.interventions if str(i.id) == referral["id"]).status == "stopped"


async def test_referral_progress_for_a_patient_without_a_plan_is_ignored(ctx, store):
    moved = referral_moved(uuid.uuid4(), uuid.uuid4(), "accepted")
    _, uow = await run(plan_handlers.when_referral_status_changes_track_intervention, ctx, store, moved)
    assert uow.pending == [] and store.plans.plans == {}


def follow_up_completed(patient_id, goal_id, progress):
    return received(
        FollowUpCompleted(
            patient_id=patient_id,
            agency_id=AGENCY,
            follow_up_id=uuid.uuid4(),
            reached=True,
            attempt=1,
            goal_progress=[GoalProgress(goal_id=goal_id, progress=progress)],
            completed_at=ASSESSED_AT + timedelta(days=30),
        )
    )


async def test_follow_up_progress_updates_goals_and_completes_the_plan(ctx, store):
    patient_id = await planned(ctx, store, ["food-insecurity"], "moderate", "ahc-hrsn")
    goal_id = uuid.UUID(current(store, patient_id)["document"]["goals"][0]["id"])
    for version, progress in ((2, "improving"), (3, "achieved")):
        _, uow = await run(
            plan_handlers.when_follow_up_completed_record_progress,
            ctx,
            store,
            follow_up_completed(patient_id, goal_id, progress),
        )
        assert [e.version for e in uow.events(PlanUpdated)] == [version]
    row = current(store, patient_id)
    goal = row["document"]["goals"][0]
    assert (goal["achievement_status"], goal["lifecycle_status"], row["status"]) == (
        "achieved",
        "completed",
        "completed",
    )
    _, uow = await run(
        plan_handlers.when_follow_up_completed_record_progress,
        ctx,
        store,
        follow_up_completed(uuid.uuid4(), goal_id, "achieved"),
    )
    assert uow.pending == []


# ---- plans: commands -------------------------------------------------------------------------------


async def test_a_status_change_makes_a_version_and_a_stale_or_illegal_one_is_refused(ctx, store, clock):
    patient_id = await planned(ctx, store)
    version, uow = await run(
        plan_handlers.change_plan_status,
        ctx,
        store,
        ChangePlanStatus(AGENCY, ANA, MANAGER, patient_id, "on-hold", 1),
    )
    assert version == 2
    [announced] = uow.events(PlanUpdated)
    assert (announced.status, announced.reason, announced.changed_by_role) == (
        "on-hold",
        "status-change",
        MANAGER,
    )
    assert (announced.actor_id, announced.actor_role) == (ANA, MANAGER)
    assert current(store, patient_id)["created_at"] == clock.now
    assert (current(store, patient_id)["changed_by"], current(store, patient_id)["changed_by_subject"]) == (
        MANAGER,
        ANA,
    )
    stale = ChangePlanStatus(AGENCY, ANA, MANAGER, patient_id, "completed", 1)
    assert await refusal(StaleVersion, plan_handlers.change_plan_status, ctx, store, stale) == (
        409,
        {"detail": "the plan is at version 2; reload and try again", "current_version": 2},
    )
    illegal = ChangePlanStatus(AGENCY, ANA, MANAGER, patient_id, "draft", 2)
    assert await refusal(IllegalPlanTransition, plan_handlers.change_plan_status, ctx, store, illegal) == (
        409,
        {"detail": "a on-hold plan cannot become draft"},  # the wording clients have always had
    )
    assert current(store, patient_id)["version"] == 2


async def test_an_intervention_no_referral_serves_is_moved_by_hand_and_a_referrals_is_not(ctx, store):
    patient_id = await planned(ctx, store)
    items = current(store, patient_id)["document"]["interventions"]
    own = uuid.UUID(next(i["id"] for i in items if not i["needs_referral"]))
    referred = uuid.UUID(next(i["id"] for i in items if i["needs_referral"]))

    def moved(item, status, version):
        return MoveIntervention(AGENCY, ANA, MANAGER, patient_id, item, status, version)

    version, uow = await run(plan_handlers.move_intervention_by_hand, ctx, store, moved(own, "completed", 1))
    assert version == 2
    [announced] = uow.events(PlanUpdated)
    assert (announced.reason, announced.actor_id, announced.actor_role) == ("progress", ANA, MANAGER)
    assert next(i for i in announced.interventions if i.id == own).status == "completed"
    handler = plan_handlers.move_intervention_by_hand
    refused = [
        (StaleVersion, moved(own, "in-progress", 1), "the plan is at version 2; reload and try again"),
        (IllegalItemMove, moved(own, "on-hold", 2), "a completed intervention cannot become on-hold"),
        (FollowsItsReferral, moved(referred, "completed", 2), "this intervention follows its referral"),
        (NotInPlan, moved(uuid.uuid4(), "completed", 2), "the intervention is not in the plan's current"),
    ]
    for kind, command, said in refused:
        status, body = await refusal(kind, handler, ctx, store, command)
        assert status == (404 if kind is NotInPlan else 409) and body["detail"].startswith(said), body
    version, _ = await run(handler, ctx, store, moved(own, "in-progress", 2))  # reopened: done too soon
    assert version == 3
    await run(
        plan_handlers.change_plan_status,
        ctx,
        store,
        ChangePlanStatus(AGENCY, ANA, MANAGER, patient_id, "revoked", 3),
    )
    assert await refusal(ClosedPlan, handler, ctx, store, moved(own, "completed", 4)) == (
        409,
        {"detail": "a revoked plan is closed: nothing in it changes"},
    )


async def test_a_goal_is_put_on_hold_its_progress_said_and_completing_the_last_completes_the_plan(ctx, store):
    patient_id = await planned(ctx, store)
    [goal] = [uuid.UUID(g["id"]) for g in current(store, patient_id)["document"]["goals"]]

    def said(lifecycle, achievement, version):
        return MoveGoal(AGENCY, ANA, MANAGER, patient_id, goal, lifecycle, achievement, version)

    handler = plan_handlers.move_goal_by_hand
    assert (await run(handler, ctx, store, said("on-hold", None, 1)))[0] == 2
    version, uow = await run(handler, ctx, store, said(None, "no-progress", 2))
    [announced] = uow.events(PlanUpdated)
    assert (announced.goals[0].lifecycle_status, announced.goals[0].achievement_status) == (
        "on-hold",
        "no-progress",
    )
    assert await refusal(IllegalItemMove, handler, ctx, store, said("accepted", None, 3)) == (
        409,
        {"detail": "a on-hold goal cannot become accepted"},
    )
    version, uow = await run(handler, ctx, store, said("completed", "achieved", 3))
    [announced] = uow.events(PlanUpdated)
    assert (version, announced.status, announced.reason) == (4, "completed", "progress")
    assert await refusal(ClosedPlan, handler, ctx, store, said("active", None, 4)) == (
        409,
        {"detail": "a completed plan is closed: nothing in it changes"},
    )


async def test_another_agency_or_an_undrafted_plan_is_not_found_for_every_command(ctx, store):
    patient_id = await planned(ctx, store)
    undrafted = uuid.uuid4()
    await store.plans.open_plans({undrafted: (AGENCY, ASSESSED_AT)})
    for agency, patient in (("agency-b", patient_id), (AGENCY, undrafted), (AGENCY, uuid.uuid4())):
        for handler, command in [
            (plan_handlers.change_plan_status, ChangePlanStatus(agency, ANA, MANAGER, patient, "on-hold", 1)),
            (
                plan_handlers.move_intervention_by_hand,
                MoveIntervention(agency, ANA, MANAGER, patient, uuid.uuid4(), "completed", 1),
            ),
            (
                plan_handlers.move_goal_by_hand,
                MoveGoal(agency, ANA, MANAGER, patient, uuid.uuid4(), "on-hold", None, 1),
            ),
            (
                education_handlers.record_education,
                RecordEducation(agency, ANA, MANAGER, patient, uuid.uuid4()),
            ),
            (
                team_handlers.add_member,
                AddCareTeamMember(agency, ANA, MANAGER, patient, "X", "friend", "helper"),
            ),
            (
                team_handlers.contribute,
                ContributeToPlan(agency, ANA, MANAGER, patient, uuid.uuid4(), "note", 1, note="n"),
            ),
            (
                necessity_handlers.request_service,
                RequestService(agency, ANA, MANAGER, patient, "home-health-visits", 1),
            ),
            (
                necessity_handlers.choose_alternative,
                ChooseAlternative(agency, ANA, MANAGER, patient, uuid.uuid4(), "telehealth-check-ins", 1),
            ),
        ]:
            assert await refusal(PlanNotFound, handler, ctx, store, command) == (
                404,
                {"detail": "care plan not found"},
            )
    assert current(store, patient_id)["version"] == 1
    assert store.team.care_team_members == {} and store.necessity.requests == {}


async def test_education_given_is_announced_with_its_versions_and_completes_the_education_intervention(
    ctx, store, clock
):
    patient_id = await planned(ctx, store)
    education = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "education"
    )
    command = RecordEducation(
        AGENCY,
        ANA,
        MANAGER,
        patient_id,
        uuid.UUID(education["id"]),
        channel="phone",
        teach_back_confirmed=True,
    )
    version, uow = await run(education_handlers.record_education, ctx, store, command)
    assert version == 2
    [given] = uow.events(EducationProvided)
    assert (given.materials, given.language, given.provided_at) == (["edu-depression-en"], "en", clock.now)
    version_given = ctx.education.material("edu-depression-en").version
    assert (given.material_versions, given.channel, given.teach_back_confirmed) == (
        [version_given],
        "phone",
        True,
    )
    assert (given.actor_id, given.actor_role) == (ANA, MANAGER)
    [record] = store.education.education_records.values()
    assert (
        record["materials"],
        record["material_versions"],
        record["channel"],
        record["teach_back_confirmed"],
        record["recorded_by"],
        record["recorded_by_subject"],
        record["provided_at"],
    ) == (
        ["edu-depression-en"],
        [version_given],
        "phone",
        True,
        MANAGER,
        ANA,
        clock.now,
    )
    [announced] = uow.events(PlanUpdated)
    assert (announced.reason, announced.actor_id, announced.actor_role) == (
        "education-provided",
        ANA,
        MANAGER,
    )
    assert current(store, patient_id)["changed_by_subject"] == ANA
    assert (
        next(
            i for i in current(store, patient_id)["document"]["interventions"] if i["id"] == education["id"]
        )["status"]
        == "completed"
    )


async def test_education_for_another_kind_of_intervention_is_recorded_without_a_new_version(ctx, store):
    patient_id = await planned(ctx, store)
    referral = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "referral"
    )
    named = ["edu-crisis-line-en", "edu-depression-es"]
    command = RecordEducation(AGENCY, ANA, MANAGER, patient_id, uuid.UUID(referral["id"]), named)
    version, uow = await run(education_handlers.record_education, ctx, store, command)
    assert version == 1
    [given] = uow.events(EducationProvided)
    assert given.materials == named
    assert given.material_versions == [ctx.education.material(m).version for m in named]
    assert (given.channel, given.teach_back_confirmed) == (None, None)  # not said
    assert uow.events(PlanUpdated) == []


@pytest.mark.parametrize(("language", "material"), [("en", "edu-depression-en"), ("es", "edu-depression-es")])
async def test_education_for_an_intervention_without_materials_gives_the_one_explaining_its_need(
    ctx, store, language, material
):
    patient_id = await planned(ctx, store)
    if language != "en":
        updated = details_changed(patient_id, language, at=ASSESSED_AT + timedelta(hours=1))
        await run(plan_handlers.when_patient_details_change_personalise_plan, ctx, store, updated)
    referral = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "referral"
    )
    command = RecordEducation(AGENCY, ANA, MANAGER, patient_id, uuid.UUID(referral["id"]))
    _, uow = await run(education_handlers.record_education, ctx, store, command)
    assert [(e.materials, e.language) for e in uow.events(EducationProvided)] == [([material], language)]


async def test_education_naming_materials_careplan_does_not_have_is_refused_and_nothing_is_recorded(
    ctx, store
):
    patient_id = await planned(ctx, store)
    education = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "education"
    )
    named = ["edu-depression-en", "edu-leaflet", "edu-depression-so"]
    command = RecordEducation(AGENCY, ANA, MANAGER, patient_id, uuid.UUID(education["id"]), named)
    assert await refusal(
        education_handlers.UnknownMaterials, education_handlers.record_education, ctx, store, command
    ) == (
        422,
        {
            "detail": [
                {
                    "loc": ["body", "materials", i],
                    "type": "unknown_material",
                    "msg": "no such education material",
                }
                for i in (1, 2)
            ]
        },
    )
    assert store.education.education_records == {} and current(store, patient_id)["version"] == 1


async def test_education_without_material_or_for_an_unknown_intervention_is_refused(ctx, store):
    patient_id = await planned(ctx, store, ["depression"], "high", "phq-9")
    await run(
        necessity_handlers.request_service,
        ctx,
        store,
        RequestService(AGENCY, ANA, MANAGER, patient_id, "telehealth-check-ins", 1),
    )
    service = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["need"] == "clinical-service"
    )
    assert await refusal(
        education_handlers.NoEducationMaterial,
        education_handlers.record_education,
        ctx,
        store,
        RecordEducation(AGENCY, ANA, MANAGER, patient_id, uuid.UUID(service["id"])),
    ) == (
        409,
        {"detail": "no education material to record for this intervention"},
    )
    assert await refusal(
        education_handlers.InterventionNotFound,
        education_handlers.record_education,
        ctx,
        store,
        RecordEducation(AGENCY, ANA, MANAGER, patient_id, uuid.uuid4()),
    ) == (
        404,
        {"detail": "intervention not found in the current plan"},
    )
    assert store.education.education_records == {}


async def test_education_for_an_intervention_naming_a_material_no_longer_kept_asks_for_the_materials(
    ctx, store
):
    patient_id = await planned(ctx, store)
    education = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "education"
    )
    # A version drafted by an older library, whose topic this catalogue no longer has.
    store.plans.current(patient_id)["document"]["interventions"][1]["education_materials"] = ["edu-old-en"]
    command = RecordEducation(AGENCY, ANA, MANAGER, patient_id, uuid.UUID(education["id"]))
    status, _ = await refusal(
        education_handlers.MaterialGone, education_handlers.record_education, ctx, store, command
    )
    assert status == 409
    named = RecordEducation(
        AGENCY, ANA, MANAGER, patient_id, uuid.UUID(education["id"]), ["edu-depression-en"]
    )
    version, _ = await run(education_handlers.record_education, ctx, store, named)
    assert version == 2


# ---- care team -------------------------------------------------------------------------------------


async def test_a_member_joins_changes_and_leaves_and_events_never_name_them(ctx, store, clock):
    patient_id = await planned(ctx, store)
    row, uow = await run(
        team_handlers.add_member,
        ctx,
        store,
        AddCareTeamMember(
            AGENCY,
            ANA,
            MANAGER,
            patient_id,
            "Rosalind Okonkwo-Brandt",
            "family",
            "primary-support",
            "+1 555 0142",
        ),
    )
    assert (row["status"], row["created_at"], row["updated_at"]) == ("active", clock.now, clock.now)
    assert (row["created_by_subject"], row["created_by_role"], row["updated_by_subject"]) == (
        ANA,
        MANAGER,
        ANA,
    )
    member_id = row["id"]
    clock.advance(hours=1)
    changed, uow_changed = await run(
        team_handlers.change_member,
        ctx,
        store,
        ChangeCareTeamMember(
            AGENCY,
            SAM,
            SUPERVISOR,
            patient_id,
            member_id,
            {"role": "decision-maker", "relationship": "family"},
        ),
    )
    assert (changed["role"], changed["updated_at"]) == ("decision-maker", clock.now)
    assert (changed["created_by_subject"], changed["updated_by_subject"], changed["updated_by_role"]) == (
        ANA,
        SAM,
        SUPERVISOR,
    )
    removed, uow_removed = await run(
        team_handlers.remove_member,
        ctx,
        store,
        RemoveCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id),
    )
    assert removed["status"] == "inactive"
    events = [
        *uow.events(CareTeamChanged),
        *uow_changed.events(CareTeamChanged),
        *uow_removed.events(CareTeamChanged),
    ]
    assert [(e.member_id, e.change, e.role, e.actor_id, e.actor_role) for e in events] == [
        (member_id, "added", "primary-support", ANA, MANAGER),
        (member_id, "changed", "decision-maker", SAM, SUPERVISOR),
        (member_id, "removed", "decision-maker", ANA, MANAGER),
    ]
    # Every change keeps who made it, though the member's row names only the last.
    history = sorted(store.team.care_team_changes.values(), key=lambda c: c["changed_at"])
    assert [
        (c["member_id"], c["change"], c["changed_by_subject"], c["changed_by_role"]) for c in history
    ] == [
        (member_id, "added", ANA, MANAGER),
        (member_id, "changed", SAM, SUPERVISOR),
        (member_id, "removed", ANA, MANAGER),
    ]
    assert removed["updated_by_subject"] == ANA
    everything = "".join(e.model_dump_json() for e in events)
    assert "Rosalind" not in everything and "555 0142" not in everything
    removing = RemoveCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id)
    assert await refusal(team_handlers.MemberNotFound, team_handlers.remove_member, ctx, store, removing) == (
        404,
        {"detail": "care team member not found"},
    )
    assert await refusal(
        team_handlers.MemberNotFound,
        team_handlers.change_member,
        ctx,
        store,
        ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id, {"role": "helper"}),
    ) == (404, {"detail": "care team member not found"})


async def test_a_member_change_that_changes_nothing_announces_nothing(ctx, store):
    patient_id = await planned(ctx, store)
    member = await member_of(ctx, store, patient_id)
    row, uow = await run(
        team_handlers.change_member,
        ctx,
        store,
        ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member["id"], {"role": "primary-support"}),
    )
    assert uow.pending == [] and row == member


async def test_a_members_name_relationship_or_role_cannot_be_cleared_whoever_asks(ctx, store):
    patient_id = await planned(ctx, store)
    member = await member_of(ctx, store, patient_id)
    for agency in (AGENCY, "agency-b"):
        assert await refusal(
            team_handlers.CannotClear,
            team_handlers.change_member,
            ctx,
            store,
            ChangeCareTeamMember(agency, ANA, MANAGER, patient_id, member["id"], {"name": None}),
        ) == (
            422,
            {
                "detail": [
                    {
                        "loc": ["body"],
                        "type": "cannot_clear",
                        "msg": "name, relationship and role cannot be cleared",
                    }
                ]
            },
        )
    cleared, _ = await run(
        team_handlers.change_member,
        ctx,
        store,
        ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member["id"], {"contact": None}),
    )
    assert cleared["contact"] is None


async def test_a_note_is_kept_without_a_new_version(ctx, store):
    patient_id = await planned(ctx, store)
    member = await member_of(ctx, store, patient_id)
    command = ContributeToPlan(
        AGENCY, ANA, MANAGER, patient_id, member["id"], "note", 1, note="drives her on Tuesdays"
    )
    version, uow = await run(team_handlers.contribute, ctx, store, command)
    assert version == 1 and uow.pending == []
    [note] = store.team.contribution_rows.values()
    assert (note["kind"], note["note"], note["plan_version"]) == ("note", None, 1)  # kept sealed
    assert (note["recorded_by_subject"], note["recorded_by_role"]) == (ANA, MANAGER)
    [stored] = await store.team.contributions(AGENCY, patient_id, 10, 0)
    read_back = await contribution_shown(ctx.keys, AGENCY, patient_id, stored)
    assert (read_back["note"], read_back["member_role"], read_back["recorded_by_subject"]) == (
        "drives her on Tuesdays",
        "primary-support",
        ANA,
    )
    assert await store.team.contributions("agency-b", patient_id, 10, 0) == []


async def test_an_agreed_goal_and_a_preference_make_new_versions(ctx, store):
    patient_id = await planned(ctx, store)
    member = await member_of(ctx, store, patient_id)
    goal_id = uuid.UUID(current(store, patient_id)["document"]["goals"][0]["id"])
    agreed = ContributeToPlan(
        AGENCY, ANA, MANAGER, patient_id, member["id"], "agreed-goal", 1, goal_id=goal_id
    )
    version, uow = await run(team_handlers.contribute, ctx, store, agreed)
    assert version == 2
    [announced] = uow.events(PlanUpdated)
    assert (announced.reason, announced.changed_by_role) == ("care-team-contribution", MANAGER)
    assert (announced.actor_id, announced.actor_role) == (ANA, MANAGER)
    assert current(store, patient_id)["changed_by_subject"] == ANA
    assert [c["recorded_by_subject"] for c in store.team.contribution_rows.values()] == [ANA]
    assert current(store, patient_id)["document"]["goals"][0]["lifecycle_status"] == "accepted"
    assert store.plans.plans[patient_id]["agreed_goals"] == [str(goal_id)]
    preference = ContributeToPlan(
        AGENCY,
        ANA,
        MANAGER,
        patient_id,
        member["id"],
        "preference",
        2,
        preference={"preferred_language": "pt"},
    )
    version, _ = await run(team_handlers.contribute, ctx, store, preference)
    assert version == 3
    assert current(store, patient_id)["document"]["preferred_language"] == "pt"
    assert current(store, patient_id)["document"]["goals"][0]["lifecycle_status"] == "accepted"
    assert store.plans.plans[patient_id]["overrides"] == {"preferred_language": "pt"}


async def test_a_contribution_by_an_unknown_member_about_an_unknown_goal_or_to_a_stale_version_is_refused(
    ctx, store
):
    patient_id = await planned(ctx, store)
    member = await member_of(ctx, store, patient_id)
    unknown_goal = ContributeToPlan(
        AGENCY, ANA, MANAGER, patient_id, member["id"], "agreed-goal", 1, goal_id=uuid.uuid4()
    )
    assert await refusal(team_handlers.GoalNotFound, team_handlers.contribute, ctx, store, unknown_goal) == (
        404,
        {"detail": "goal not found in the current plan"},
    )
    stranger = ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, uuid.uuid4(), "note", 1, note="n")
    assert await refusal(team_handlers.MemberNotFound, team_handlers.contribute, ctx, store, stranger) == (
        404,
        {"detail": "care team member not found"},
    )
    stale = ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member["id"], "note", 7, note="n")
    status, _ = await refusal(StaleVersion, team_handlers.contribute, ctx, store, stale)
    assert status == 409
    assert store.team.contribution_rows == {}


# ---- medical necessity -----------------------------------------------------------------------------


async def test_a_service_not_meeting_its_criteria_is_recorded_and_alternatives_are_proposed(
    ctx, store, clock
):
    patient_id = await planned(ctx, store, ["depression"], "high", "phq-9")
    command = RequestService(AGENCY, ANA, MANAGER, patient_id, "home-health-visits", 1)
    requested, uow = await run(necessity_handlers.request_service, ctx, store, command)
    assert (requested.decision.met, requested.decision.failed_criteria, requested.plan_version) == (
        False,
        ["community-referral-tried-first"],
        1,
    )
    [proposed] = uow.events(PlanAlternativesProposed)
    assert (proposed.service_request_id, proposed.alternatives) == (
        requested.request_id,
        ["community-health-worker-visits", "telehealth-check-ins"],
    )
    assert (proposed.actor_id, proposed.actor_role) == (ANA, MANAGER)
    assert uow.events(PlanUpdated) == []
    row = store.necessity.requests[requested.request_id]
    assert (row["met"], row["requested_by"], row["created_at"], row["criteria_version"]) == (
        False,
        MANAGER,
        clock.now,
        ctx.criteria.version,
    )
    assert row["requested_by_subject"] == ANA


async def test_a_service_meeting_its_criteria_joins_the_plan(ctx, store):
    patient_id = await planned(ctx, store, ["depression"], "high", "phq-9")
    referral = next(
        i for i in current(store, patient_id)["document"]["interventions"] if i["kind"] == "referral"
    )
    await run(
        plan_handlers.when_referral_status_changes_track_intervention,
        ctx,
        store,
        referral_moved(patient_id, uuid.UUID(referral["id"]), "in-progress"),
    )
    command = RequestService(AGENCY, ANA, MANAGER, patient_id, "home-health-visits", 2)
    requested, uow = await run(necessity_handlers.request_service, ctx, store, command)
    assert (requested.decision.met, requested.plan_version) == (True, 3)
    [announced] = uow.events(PlanUpdated)
    assert (announced.reason, announced.actor_id, announced.actor_role) == ("service-request", ANA, MANAGER)
    assert current(store, patient_id)["changed_by_subject"] == ANA
    [service] = [i for i in announced.interventions if i.service_code == "home-health-visits"]
    # Delivered by a provider: referral refers it like any other intervention that needs a referral.
    assert (service.kind, service.need, service.needs_referral, service.program_category) == (
        "clinical",
        "clinical-service",
        True,
        "home-health",
    )
    assert uow.events(PlanAlternativesProposed) == []
    assert store.plans.plans[patient_id]["services"] == ["home-health-visits"]


async def test_an_unknown_service_is_refused_and_nothing_is_recorded(ctx, store):
    patient_id = await planned(ctx, store)
    unknown = RequestService(AGENCY, ANA, MANAGER, patient_id, "moon-visit", 1)
    assert await refusal(UnknownService, necessity_handlers.request_service, ctx, store, unknown) == (
        422,
        {
            "detail": [
                {
                    "loc": ["body", "service_code"],
                    "type": "unknown_service",
                    "msg": "no necessity criteria for it",
                }
            ]
        },
    )
    assert store.necessity.requests == {}


async def test_an_alternative_chosen_joins_the_plan_once(ctx, store, clock):
    patient_id = await planned(ctx, store, ["depression"], "high", "phq-9")
    requested, _ = await run(
        necessity_handlers.request_service,
        ctx,
        store,
        RequestService(AGENCY, ANA, MANAGER, patient_id, "home-health-visits", 1),
    )
    request_id = requested.request_id
    wrong = ChooseAlternative(AGENCY, ANA, MANAGER, patient_id, request_id, "home-health-visits", 1)
    assert await refusal(
        necessity_handlers.NotAnAlternative, necessity_handlers.choose_alternative, ctx, store, wrong
    ) == (
        409,
        {"detail": "not one of the alternatives proposed for this request"},
    )
    choice = ChooseAlternative(AGENCY, SAM, SUPERVISOR, patient_id, request_id, "telehealth-check-ins", 1)
    version, uow = await run(necessity_handlers.choose_alternative, ctx, store, choice)
    assert version == 2
    [announced] = uow.events(PlanUpdated)
    assert (announced.reason, announced.actor_id, announced.actor_role) == (
        "alternative-chosen",
        SAM,
        SUPERVISOR,
    )
    [chosen] = [i for i in announced.interventions if i.service_code == "telehealth-check-ins"]
    assert (chosen.needs_referral, chosen.program_category) == (True, "telehealth")
    assert current(store, patient_id)["changed_by_subject"] == SAM
    [row] = await store.necessity.service_requests(AGENCY, patient_id)
    assert (row["chosen_alternative"], row["chosen_at"]) == ("telehealth-check-ins", clock.now)
    assert (
        row["requested_by_subject"],
        row["requested_by_role"],
        row["chosen_by_subject"],
        row["chosen_by_role"],
    ) == (
        ANA,
        MANAGER,
        SAM,
        SUPERVISOR,
    )
    again = ChooseAlternative(
        AGENCY, ANA, MANAGER, patient_id, request_id, "community-health-worker-visits", 2
    )
    assert await refusal(
        necessity_handlers.NoOpenAlternatives, necessity_handlers.choose_alternative, ctx, store, again
    ) == (409, {"detail": "this request has no open alternatives"})


async def test_an_unknown_service_request_is_not_found(ctx, store):
    patient_id = await planned(ctx, store)
    unknown = ChooseAlternative(AGENCY, ANA, MANAGER, patient_id, uuid.uuid4(), "telehealth-check-ins", 1)
    assert await refusal(
        necessity_handlers.ServiceRequestNotFound, necessity_handlers.choose_alternative, ctx, store, unknown
    ) == (404, {"detail": "service request not found"})
