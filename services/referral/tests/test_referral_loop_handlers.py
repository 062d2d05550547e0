"""The closed loop's use cases on an in-memory store: routing behind consent, the lifecycle, deadlines."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    ContactPreference,
    FollowUpCadence,
    Intervention,
    NetworkGapDetected,
    PatientRegistered,
    PatientUpdated,
    PlanUpdated,
    ReferralMade,
    ReferralOverdue,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.testing.fakes import received, run, run_step
from referral.directory import handlers as directory
from referral.domain.commands import ChangeReferralStatus, SaveOrganization, SaveService
from referral.domain.deadlines import overdue_event_id
from referral.domain.directory import Organization, Service
from referral.domain.lifecycle import IllegalTransition, IncompleteChange, Outcome, WrongParty
from referral.loop import handlers
from referral.loop.batches import InterventionOfAnotherPlan

HOME = "agency-home"
FOOD = "food-assistance"
DELIVERED = Outcome(service_delivered=True, enrollment_status="enrolled")


async def program(ctx, store, service_id: str, agency: str, **fields) -> str:
    """A program of ``agency``'s organisation, saved as an administrator would."""
    org = Organization(id=f"org-{agency}", agency_id=agency, name="Org")
    await run(
        directory.save_organization, ctx, store, SaveOrganization("agency-network", "admin", "adm-ada", org)
    )
    svc = Service.model_validate(
        {
            "id": service_id,
            "organization_id": org.id,
            "name": "Program",
            "program_category": FOOD,
            "languages": ["en", "es"],
            **fields,
        }
    )
    await run(directory.save_service, ctx, store, SaveService("agency-network", "admin", "adm-ada", svc))
    return service_id


def intervention(category: str | None = FOOD, **fields) -> Intervention:
    return Intervention(
        **{
            "id": uuid.uuid4(),
            "need": "food-insecurity",
            "kind": "referral",
            "program_category": category,
            "needs_referral": True,
            **fields,
        }
    )


def plan(patient_id, *interventions, agency=HOME, version=1, status="active", language="es") -> PlanUpdated:
    return PlanUpdated(
        patient_id=patient_id,
        agency_id=agency,
        plan_id=uuid.uuid5(patient_id, "plan"),
        version=version,
        status=status,
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=list(interventions),
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
        preferred_language=language,
    )


def consent(patient_id, **fields) -> ConsentRecorded:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return ConsentRecorded(
        patient_id=patient_id,
        agency_id=HOME,
        consent_id=fields.pop("consent_id", uuid.uuid4()),
        purpose=fields.pop("purpose", "referral"),
        agencies=fields.pop("agencies", []),
        program_categories=fields.pop("program_categories", []),
        period_start=at,
        recorded_at=at,
        **fields,
    )


async def deliver(handler, ctx, store, event):
    return await run(handler, ctx, store, received(event))


async def consented(ctx, store, **fields) -> uuid.UUID:
    patient_id = uuid.uuid4()
    recorded = consent(patient_id, **{"program_categories": [FOOD], **fields})
    await deliver(handlers.when_consent_recorded_send_waiting_referrals, ctx, store, recorded)
    return patient_id


async def referred(ctx, store, item=None, **consent_fields) -> tuple[dict, uuid.UUID]:
    """A patient with consent, and the referral their plan's intervention made."""
    patient_id = await consented(ctx, store, **consent_fields)
    item = item or intervention()
    await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, item))
    [row] = [r for r in store.loop.referrals.values() if r["intervention_id"] == item.id]
    return row, patient_id


async def test_a_plan_naming_another_patients_intervention_or_one_twice_is_refused_by_name(ctx, store):
    """Not careplan's: refused naming the event, so the consumer dead-letters it alone and applies the rest
    of its batch together; the intervention stays the other patient's."""
    await program(ctx, store, "pantry", "agency-food")
    row, holder = await referred(ctx, store)
    taken = intervention(id=row["intervention_id"])
    for forged in (plan(uuid.uuid4(), taken), plan(uuid.uuid4(), *[intervention(id=uuid.uuid4())] * 2)):
        event = received(forged)
        with pytest.raises(InterventionOfAnotherPlan) as refused:
            await run(handlers.when_plan_updated_make_referrals, ctx, store, event)
        assert refused.value.event_id == event.envelope.id
        assert forged.patient_id not in store.loop.plans
    assert store.loop.interventions[row["intervention_id"]]["patient_id"] == holder


def change(
    agency, referral_id, status, by="staff-1", by_role="care-manager", **fields
) -> ChangeReferralStatus:
    return ChangeReferralStatus(agency, referral_id, status, by, by_role, **fields)


# --- routing --------------------------------------------------------------------------------------


async def test_an_intervention_is_referred_to_the_best_program_for_language_and_area(ctx, store, clock):
    await program(ctx, store, "a-english", "agency-a", languages=["en"])
    await program(ctx, store, "b-elsewhere", "agency-b", eligibility={"postal_prefixes": ["100"]})
    await program(ctx, store, "c-local", "agency-c", eligibility={"postal_prefixes": ["941"]})
    await program(ctx, store, "d-full", "agency-d", capacity={"status": "no-capacity"})
    patient_id = await consented(ctx, store, agencies=["agency-c"])
    registered = PatientRegistered(
        patient_id=patient_id,
        agency_id=HOME,
        preferred_language="es",
        registered_at=clock.now,
        postal_area="941",
    )
    await deliver(handlers.when_patient_registered_or_updated_remember, ctx, store, registered)
    item = intervention()
    message = received(plan(patient_id, item, language=None))
    _, uow = await run(handlers.when_plan_updated_make_referrals, ctx, store, message)

    [made] = uow.events(ReferralMade)
    assert (made.program_id, made.receiving_agency_id, made.intervention_id) == (
        "c-local",
        "agency-c",
        item.id,
    )
    assert (made.actor_id, made.actor_role) == (None, None)  # careloop made it, reacting to the plan
    assert made.program_category == FOOD  # the chosen program's: what a consent may name
    assert made.response_due_at == clock.now + timedelta(days=2)  # Monday: two business days
    assert made.outcome_due_at == clock.now + timedelta(days=14)
    assert uow.pending[0].envelope.causation_id == message.envelope.id
    row = store.loop.referrals[made.referral_id]
    assert (row["status"], row["language"], row["postal_area"]) == ("requested", "es", "941")
    assert row["consent_id"] is not None
    assert await store.loop.history_of(made.referral_id) == [
        {
            "from_status": None,
            "to_status": "requested",
            "by_agency_id": HOME,
            "by_party": "requester",
            "by_subject": None,
            "by_role": None,
            "reason": None,
            "outcome": None,
            "note": None,
            "note_sealed": None,
            "changed_at": clock.now,
        }
    ]


async def test_a_repeated_plan_makes_no_second_referral_for_the_same_intervention(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    item = intervention()
    _, patient_id = await referred(ctx, store, item)
    _, uow = await deliver(
        handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, item, version=2)
    )
    assert uow.pending == [] and len(store.loop.referrals) == 1


async def test_a_concurrent_delivery_that_made_the_referral_first_wins(ctx, store, monkeypatch):
    await program(ctx, store, "pantry", "agency-food")
    item = intervention()
    made, patient_id = await referred(ctx, store, item)
    # The other delivery's row lands between this one's check and its insert: it makes nothing.
    monkeypatch.setattr(store.loop, "interventions_with_referral", _nothing_referred)
    _, uow = await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, item))
    assert uow.pending == [] and list(store.loop.referrals) == [made["id"]]


async def _nothing_referred(intervention_ids):
    return set()


async def test_the_fake_keeps_one_referral_per_intervention_and_one_reroute_per_referral(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    made, _ = await referred(ctx, store)

    def again(**changes) -> dict:
        return {**made, "id": uuid.uuid4(), **changes}

    assert not await store.loop.insert_referral(again())  # the intervention has its referral
    assert await store.loop.insert_referral(again(replaces_referral_id=made["id"]))
    assert not await store.loop.insert_referral(again(replaces_referral_id=made["id"]))  # re-routed once
    assert not await store.loop.insert_referral(again(id=made["id"], intervention_id=uuid.uuid4()))


@pytest.mark.parametrize(
    "make",
    [
        lambda pid, item: plan(pid, item, status="completed"),
        lambda pid, item: plan(pid, intervention(status="cancelled")),
        lambda pid, item: plan(pid, intervention(needs_referral=False)),
    ],
    ids=["closed plan", "closed intervention", "no referral needed"],
)
async def test_closed_plans_and_interventions_without_a_referral_need_are_left_alone(ctx, store, make):
    await program(ctx, store, "pantry", "agency-food")
    patient_id = await consented(ctx, store)
    _, uow = await deliver(
        handlers.when_plan_updated_make_referrals, ctx, store, make(patient_id, intervention())
    )
    assert uow.pending == [] and store.loop.referrals == {}


async def test_a_program_of_the_patients_own_agency_needs_no_consent(ctx, store):
    await program(ctx, store, "own-pantry", HOME)
    item = intervention()
    _, uow = await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(uuid.uuid4(), item))
    [made] = uow.events(ReferralMade)
    assert made.program_id == "own-pantry"
    assert store.loop.referrals[made.referral_id]["consent_id"] is None


async def test_the_best_program_the_consent_allows_is_chosen_over_a_better_one_it_does_not(ctx, store):
    await program(ctx, store, "a-best", "agency-a")
    await program(ctx, store, "b-next", "agency-b")
    made, _ = await referred(ctx, store, program_categories=[], agencies=["agency-b"])
    assert made["program_id"] == "b-next"


async def test_a_program_with_a_better_history_wins_an_otherwise_even_match(ctx, store):
    await program(ctx, store, "a-first", "agency-a")
    await program(ctx, store, "b-second", "agency-b")
    first, _ = await referred(ctx, store)
    assert first["program_id"] == "a-first"
    await run(
        handlers.change_referral_status,
        ctx,
        store,
        change("agency-a", first["id"], "rejected", reason="client-declined"),
    )
    second, _ = await referred(ctx, store)
    assert second["program_id"] == "b-second"


async def test_without_consent_the_referral_waits_as_a_draft_and_is_sent_when_consent_arrives(
    ctx, store, clock
):
    await program(ctx, store, "pantry", "agency-food")
    patient_id, item = uuid.uuid4(), intervention()
    _, uow = await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, item))
    assert uow.pending == []
    [draft] = store.loop.referrals.values()
    assert (draft["status"], draft["status_reason"], draft["made_at"]) == ("draft", "awaiting-consent", None)
    assert draft["response_due_at"] is None and draft["outcome_due_at"] is None

    other_purpose = consent(patient_id, purpose="care-coordination", program_categories=[FOOD])
    _, uow = await deliver(handlers.when_consent_recorded_send_waiting_referrals, ctx, store, other_purpose)
    assert uow.pending == [] and store.loop.referrals[draft["id"]]["status"] == "draft"

    clock.advance(hours=3)
    covering = consent(patient_id, agencies=["agency-food"])
    _, uow = await deliver(handlers.when_consent_recorded_send_waiting_referrals, ctx, store, covering)
    [made] = uow.events(ReferralMade)
    [sent] = uow.events(ReferralStatusChanged)
    assert made.referral_id == draft["id"] and made.response_due_at == clock.now + timedelta(days=2)
    assert made.program_category == FOOD
    assert (sent.from_status, sent.to_status, sent.by_party) == ("draft", "requested", "requester")
    # Released by the consent's arrival: careloop's own doing, no person's.
    assert (made.actor_id, sent.actor_id, sent.actor_role) == (None, None, None)
    assert store.loop.history[-1]["by_subject"] is None
    row = store.loop.referrals[draft["id"]]
    assert (row["status"], row["status_reason"], row["consent_id"]) == (
        "requested",
        None,
        covering.consent_id,
    )
    assert (row["made_at"], row["updated_at"]) == (clock.now, clock.now)


async def test_a_waiting_referral_stays_waiting_when_its_program_left_the_directory(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    patient_id = uuid.uuid4()
    await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, intervention()))
    store.directory.services["pantry"]["status"] = "inactive"
    _, uow = await deliver(
        handlers.when_consent_recorded_send_waiting_referrals,
        ctx,
        store,
        consent(patient_id, agencies=["agency-food"]),
    )
    assert uow.pending == []
    assert [r["status"] for r in store.loop.referrals.values()] == ["draft"]


async def test_no_eligible_program_is_a_network_gap_reported_once_and_resolved_when_one_appears(
    ctx, store, clock
):
    await program(ctx, store, "english-only", "agency-food", languages=["en"])
    patient_id, item = uuid.uuid4(), intervention()
    _, uow = await deliver(
        handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, item, language="so")
    )
    [gap] = uow.events(NetworkGapDetected)
    assert (gap.need, gap.program_category, gap.language, gap.intervention_id) == (
        "food-insecurity",
        FOOD,
        "so",
        item.id,
    )
    assert uow.pending[0].envelope.id == uuid.uuid5(
        uuid.UUID("c3a1e0f2-6b7d-4c19-8e5a-0f2d9b4a7c61"), str(item.id)
    )
    _, uow = await deliver(
        handlers.when_plan_updated_make_referrals,
        ctx,
        store,
        plan(patient_id, item, version=2, language="so"),
    )
    assert uow.pending == [] and store.loop.referrals == {}

    await program(ctx, store, "somali-pantry", HOME, languages=["so"])
    clock.advance(days=1)
    await deliver(
        handlers.when_plan_updated_make_referrals,
        ctx,
        store,
        plan(patient_id, item, version=3, language="so"),
    )
    assert store.gaps.rows[item.id]["resolved_at"] == clock.now


async def test_patient_details_keep_the_newest_whatever_order_the_events_arrive_in(ctx, store, clock):
    patient_id = uuid.uuid4()
    newer = PatientUpdated(
        patient_id=patient_id,
        agency_id=HOME,
        preferred_language="vi",
        contact_preference=ContactPreference.text,
        postal_area="100",
        changed_fields=["preferred_language"],
        updated_at=clock.now,
    )
    older = PatientRegistered(
        patient_id=patient_id,
        agency_id=HOME,
        preferred_language="es",
        registered_at=clock.now - timedelta(days=1),
        postal_area="941",
    )
    for event in (newer, older):
        _, uow = await deliver(handlers.when_patient_registered_or_updated_remember, ctx, store, event)
        assert uow.pending == []
    known = await store.loop.get_patient(patient_id)
    assert (known["preferred_language"], known["postal_area"], known["as_of"]) == ("vi", "100", clock.now)


# --- consent revoked ------------------------------------------------------------------------------


async def test_revoked_consent_cancels_referrals_not_yet_answered(ctx, store, clock):
    await program(ctx, store, "pantry", "agency-food")
    made, patient_id = await referred(ctx, store)
    clock.advance(hours=1)
    revoked = ConsentRevoked(
        patient_id=patient_id, agency_id=HOME, consent_id=made["consent_id"], revoked_at=clock.now
    )
    _, uow = await deliver(handlers.when_consent_revoked_stop_unanswered_referrals, ctx, store, revoked)
    [cancelled] = uow.events(ReferralStatusChanged)
    assert (cancelled.from_status, cancelled.to_status, cancelled.reason) == (
        "requested",
        "cancelled",
        "consent-revoked",
    )
    assert (cancelled.actor_id, store.loop.history[-1]["by_subject"]) == (None, None)
    row = store.loop.referrals[made["id"]]
    assert (row["status"], row["status_reason"], row["closed_at"]) == (
        "cancelled",
        "consent-revoked",
        clock.now,
    )
    assert store.loop.consents[made["consent_id"]]["revoked_at"] == clock.now


async def test_a_referral_another_consent_covers_moves_to_it_and_stays(ctx, store, clock):
    await program(ctx, store, "pantry", "agency-food")
    made, patient_id = await referred(ctx, store)
    other = consent(patient_id, agencies=["agency-food"])
    await deliver(handlers.when_consent_recorded_send_waiting_referrals, ctx, store, other)
    revoked = ConsentRevoked(
        patient_id=patient_id, agency_id=HOME, consent_id=made["consent_id"], revoked_at=clock.now
    )
    _, uow = await deliver(handlers.when_consent_revoked_stop_unanswered_referrals, ctx, store, revoked)
    assert uow.pending == []
    row = store.loop.referrals[made["id"]]
    assert (row["status"], row["consent_id"]) == ("requested", other.consent_id)


async def test_a_revocation_read_before_its_consent_keeps_the_consent_revoked(ctx, store, clock):
    patient_id, consent_id = uuid.uuid4(), uuid.uuid4()
    revoked = ConsentRevoked(
        patient_id=patient_id, agency_id=HOME, consent_id=consent_id, revoked_at=clock.now
    )
    await deliver(handlers.when_consent_revoked_stop_unanswered_referrals, ctx, store, revoked)
    late = consent(patient_id, consent_id=consent_id, program_categories=[FOOD])
    await deliver(handlers.when_consent_recorded_send_waiting_referrals, ctx, store, late)
    [kept] = await store.loop.consents_of(patient_id)
    assert kept.revoked and kept.program_categories == {FOOD}


# --- the lifecycle --------------------------------------------------------------------------------


async def test_the_receiving_agency_moves_the_referral_and_each_change_is_announced_without_the_note(
    ctx, store, clock
):
    await program(ctx, store, "pantry", "agency-food")
    made, _ = await referred(ctx, store)
    as_pat = {"by": "pr-pat", "by_role": "provider"}
    steps = [
        change("agency-food", made["id"], "accepted", note="Called Marisol on Tuesday", **as_pat),
        change("agency-food", made["id"], "on-hold", reason="waitlist", by="pr-quinn", by_role="provider"),
        change("agency-food", made["id"], "in-progress", **as_pat),
        change("agency-food", made["id"], "completed", outcome=DELIVERED, **as_pat),
    ]
    for step in steps:
        clock.advance(hours=1)
        result, uow = await run(handlers.change_referral_status, ctx, store, step)
        [changed] = uow.events(ReferralStatusChanged)
        assert (changed.to_status, changed.by_party, changed.by_agency_id) == (
            step.status,
            "target",
            "agency-food",
        )
        assert (changed.actor_id, changed.actor_role) == (step.by, "provider")
        assert "Marisol" not in changed.model_dump_json()
        assert result.referral["status"] == step.status and result.rerouted_to is None
    assert changed.outcome.enrollment_status == "enrolled"
    assert result.referral["outcome"] == {
        "service_delivered": True,
        "enrollment_status": "enrolled",
        "reason": None,
    }
    assert [(h["from_status"], h["to_status"]) for h in result.history] == [
        (None, "requested"),
        ("requested", "accepted"),
        ("accepted", "on-hold"),
        ("on-hold", "in-progress"),
        ("in-progress", "completed"),
    ]
    assert result.history[1]["note"] == "Called Marisol on Tuesday"
    # Each step names the person who took it; the first was careloop's (made from the plan).
    assert [(h["by_subject"], h["by_role"]) for h in result.history] == [
        (None, None),
        ("pr-pat", "provider"),
        ("pr-quinn", "provider"),
        ("pr-pat", "provider"),
        ("pr-pat", "provider"),
    ]
    row = store.loop.referrals[made["id"]]
    assert (row["accepted_at"], row["closed_at"]) == (clock.now - timedelta(hours=3), clock.now)


async def test_status_changes_the_lifecycle_forbids_are_refused_and_change_nothing(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    made, _ = await referred(ctx, store)
    before = dict(store.loop.referrals[made["id"]])
    with pytest.raises(WrongParty, match="only the receiving agency may set accepted"):
        await run(handlers.change_referral_status, ctx, store, change(HOME, made["id"], "accepted"))
    with pytest.raises(IllegalTransition, match="a requested referral cannot become completed"):
        await run(
            handlers.change_referral_status,
            ctx,
            store,
            change("agency-food", made["id"], "completed", outcome=DELIVERED),
        )
    with pytest.raises(IncompleteChange) as refused:
        await run(handlers.change_referral_status, ctx, store, change(HOME, made["id"], "cancelled"))
    assert refused.value.problems == [
        {"loc": ["body", "reason"], "type": "invalid_change", "msg": "a reason is required for cancelled"}
    ]
    with pytest.raises(handlers.ReferralNotFound):
        await run(
            handlers.change_referral_status, ctx, store, change("agency-stranger", made["id"], "accepted")
        )
    with pytest.raises(handlers.ReferralNotFound):
        await run(
            handlers.change_referral_status,
            ctx,
            store,
            change(HOME, uuid.uuid4(), "cancelled", reason="other"),
        )
    assert store.loop.referrals[made["id"]] == before and len(store.loop.history) == 1


async def test_a_waiting_referral_is_hidden_from_the_receiving_agency_and_not_sent_by_hand(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    patient_id = uuid.uuid4()
    await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, intervention()))
    [draft] = store.loop.referrals.values()
    with pytest.raises(handlers.ReferralNotFound):
        await run(handlers.change_referral_status, ctx, store, change("agency-food", draft["id"], "accepted"))
    with pytest.raises(IllegalTransition, match="sent when the patient's consent arrives"):
        await run(handlers.change_referral_status, ctx, store, change(HOME, draft["id"], "requested"))
    cancelled, _ = await run(
        handlers.change_referral_status,
        ctx,
        store,
        change(HOME, draft["id"], "cancelled", reason="need-resolved"),
    )
    assert cancelled.referral["status"] == "cancelled"


async def test_the_referring_agency_may_cancel_and_mark_entered_in_error(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    made, _ = await referred(ctx, store)
    cancelled, _ = await run(
        handlers.change_referral_status,
        ctx,
        store,
        change(HOME, made["id"], "cancelled", reason="withdrawn-by-referrer"),
    )
    assert (cancelled.referral["status"], cancelled.referral["status_reason"]) == (
        "cancelled",
        "withdrawn-by-referrer",
    )
    with pytest.raises(WrongParty):
        await run(
            handlers.change_referral_status, ctx, store, change("agency-food", made["id"], "entered-in-error")
        )
    erred, uow = await run(
        handlers.change_referral_status, ctx, store, change(HOME, made["id"], "entered-in-error")
    )
    assert erred.referral["status"] == "entered-in-error" and len(uow.events(ReferralStatusChanged)) == 1


async def test_a_provider_answers_only_as_the_receiving_agency(ctx, store):
    # The pantry's agency is also the patient's own: its care managers refer, its providers receive.
    await program(ctx, store, "pantry", HOME)
    made, _ = await referred(ctx, store)
    as_provider = {"receiving_only": True}
    with pytest.raises(handlers.ReferralNotFound):
        await run(
            handlers.change_referral_status,
            ctx,
            store,
            change("agency-x", made["id"], "accepted", **as_provider),
        )
    with pytest.raises(WrongParty):  # marking in error is the referring side's, which a provider never is
        await run(
            handlers.change_referral_status,
            ctx,
            store,
            change(HOME, made["id"], "entered-in-error", **as_provider),
        )
    accepted, _ = await run(
        handlers.change_referral_status, ctx, store, change(HOME, made["id"], "accepted", **as_provider)
    )
    assert (accepted.referral["status"], accepted.history[-1]["by_party"]) == ("accepted", "target")


async def test_a_rejection_for_no_capacity_reroutes_to_the_next_program_and_then_is_a_gap(ctx, store):
    await program(ctx, store, "a-first", "agency-a")
    await program(ctx, store, "b-second", "agency-b")
    made, _ = await referred(ctx, store)
    assert made["program_id"] == "a-first"
    result, uow = await run(
        handlers.change_referral_status,
        ctx,
        store,
        change("agency-a", made["id"], "rejected", reason="no-capacity", by="pr-ravi", by_role="provider"),
    )
    [rerouted] = uow.events(ReferralMade)
    assert store.acted_for == [HOME]  # the receiving agency's rejection re-routes for the referring one
    # Made on behalf of the person whose rejection re-routed it, in the referring agency's name.
    assert (rerouted.actor_id, rerouted.actor_role) == ("pr-ravi", "provider")
    [made_entry] = await store.loop.history_of(result.rerouted_to)
    assert (made_entry["by_agency_id"], made_entry["by_party"], made_entry["by_subject"]) == (
        HOME,
        "requester",
        "pr-ravi",
    )
    assert rerouted.referral_id == result.rerouted_to and rerouted.program_id == "b-second"
    assert (rerouted.replaces_referral_id, rerouted.service_request_id) == (
        made["id"],
        made["service_request_id"],
    )
    assert [type(m.event) for m in uow.pending] == [ReferralStatusChanged, ReferralMade]

    again, uow = await run(
        handlers.change_referral_status,
        ctx,
        store,
        change("agency-b", result.rerouted_to, "rejected", reason="not-eligible"),
    )
    assert again.rerouted_to is None
    [gap] = uow.events(NetworkGapDetected)
    assert gap.intervention_id == made["intervention_id"]


async def test_a_rejection_for_another_reason_does_not_reroute(ctx, store):
    await program(ctx, store, "a-first", "agency-a")
    await program(ctx, store, "b-second", "agency-b")
    made, _ = await referred(ctx, store)
    result, uow = await run(
        handlers.change_referral_status,
        ctx,
        store,
        change("agency-a", made["id"], "rejected", reason="client-declined"),
    )
    assert result.rerouted_to is None and uow.events(ReferralMade) == []
    assert len(store.loop.referrals) == 1


async def test_the_fake_shows_agencies_their_own_referrals_and_those_sent_to_them_only(ctx, store, clock):
    await program(ctx, store, "pantry", "agency-food")
    made, _ = await referred(ctx, store)
    clock.advance(minutes=1)
    waiting_patient = uuid.uuid4()
    await deliver(
        handlers.when_plan_updated_make_referrals, ctx, store, plan(waiting_patient, intervention())
    )
    loop = store.loop

    async def ids(agency, **query) -> list:
        filters = {"patient_id": None, "receiving_agency": None, "status": None, "limit": 50, "offset": 0}
        return [r["id"] for r in await loop.list_referrals(agency, **{**filters, **query})]

    [draft_id] = [r["id"] for r in loop.referrals.values() if r["status"] == "draft"]
    assert await ids(HOME) == [made["id"], draft_id]
    assert await ids("agency-food") == [made["id"]]  # never another agency's waiting drafts
    assert await ids("agency-stranger") == []
    assert await ids(HOME, status=["draft"]) == [draft_id]
    assert await ids(HOME, status=["draft", "requested"]) == [made["id"], draft_id]
    assert await ids(HOME, status=["completed"]) == []
    assert await ids(HOME, limit=1, offset=1) == [draft_id]
    assert (await loop.visible_referral("agency-food", made["id"]))["referring_agency_id"] == HOME
    assert await loop.visible_referral("agency-food", draft_id) is None
    # A provider sees only what was sent to its agency, never what its agency made.
    assert await ids(HOME, sent_to_only=True) == []
    assert await ids("agency-food", sent_to_only=True) == [made["id"]]
    assert await loop.visible_referral(HOME, made["id"], sent_to_only=True) is None


# --- deadlines ------------------------------------------------------------------------------------


async def test_a_patient_is_its_agencys_as_intake_said_else_as_its_referrals_say(ctx, store, clock):
    await program(ctx, store, "pantry", "agency-food")
    _, patient_id = await referred(ctx, store)
    assert await store.agency_of_patient(patient_id) == HOME  # known from its referral only
    registered = PatientRegistered(
        patient_id=uuid.uuid4(), agency_id="agency-z", preferred_language="en", registered_at=clock.now
    )
    await deliver(handlers.when_patient_registered_or_updated_remember, ctx, store, registered)
    assert await store.agency_of_patient(registered.patient_id) == "agency-z"
    assert await store.agency_of_patient(uuid.uuid4()) is None


async def test_overdue_referrals_are_flagged_once_per_deadline(ctx, store, clock):
    await program(ctx, store, "pantry", "agency-food")
    made, _ = await referred(ctx, store)
    more, uow = await run_step(handlers.flag_overdue_referrals, ctx, store)
    assert (more, uow.pending) == (False, [])

    clock.advance(days=2, hours=1)  # Wednesday 10:00: past the two business days
    more, uow = await run_step(handlers.flag_overdue_referrals, ctx, store)
    [response] = uow.events(ReferralOverdue)
    assert (response.deadline, response.referral_id, response.receiving_agency_id) == (
        "response",
        made["id"],
        "agency-food",
    )
    assert response.due_at == made["response_due_at"]
    assert uow.pending[0].envelope.id == overdue_event_id(made["id"], "response") and not more
    _, uow = await run_step(handlers.flag_overdue_referrals, ctx, store)
    assert uow.pending == []

    await run(handlers.change_referral_status, ctx, store, change("agency-food", made["id"], "accepted"))
    clock.advance(days=12)
    _, uow = await run_step(handlers.flag_overdue_referrals, ctx, store)
    assert [e.deadline for e in uow.events(ReferralOverdue)] == ["outcome"]
    shown = await store.loop.get_referral(made["id"])
    assert shown["response_overdue"] and shown["outcome_overdue"]


async def test_closed_referrals_are_never_overdue(ctx, store, clock):
    await program(ctx, store, "pantry", "agency-food")
    made, _ = await referred(ctx, store)
    await run(
        handlers.change_referral_status, ctx, store, change(HOME, made["id"], "cancelled", reason="other")
    )
    clock.advance(days=30)
    _, uow = await run_step(handlers.flag_overdue_referrals, ctx, store)
    assert uow.pending == []


async def test_the_overdue_step_asks_for_another_round_when_a_batch_was_full(ctx, store, clock, monkeypatch):
    await program(ctx, store, "pantry", "agency-food")
    for _ in range(3):
        await referred(ctx, store)
    monkeypatch.setattr(handlers, "OVERDUE_BATCH", 2)
    clock.advance(days=3)
    rounds = []
    more = True
    while more:
        more, uow = await run_step(handlers.flag_overdue_referrals, ctx, store)
        rounds.append(sorted(e.deadline for e in uow.events(ReferralOverdue)))
    assert rounds == [["response", "response"], ["response"]]


async def test_consents_in_one_batch_release_each_patients_waiting_referrals_in_order(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    first, without, last = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for patient_id in (first, last):
        await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, intervention()))
    batch = [
        received(consent(first, agencies=["agency-food"])),
        received(consent(without, agencies=["agency-food"])),
        received(consent(last, agencies=["agency-food"])),
    ]
    _, uow = await run(handlers.when_consents_recorded_send_waiting_referrals, ctx, store, batch)
    assert [e.patient_id for e in uow.events(ReferralMade)] == [first, last]
    assert {c["patient_id"] for c in store.loop.consents.values()} == {first, without, last}


async def test_a_patients_two_consents_in_one_batch_go_one_at_a_time(ctx, store):
    await program(ctx, store, "pantry", "agency-food")
    patient_id = uuid.uuid4()
    await deliver(handlers.when_plan_updated_make_referrals, ctx, store, plan(patient_id, intervention()))
    other_purpose = consent(patient_id, purpose="care-coordination", program_categories=[FOOD])
    covering = consent(patient_id, agencies=["agency-food"])
    batch = [received(other_purpose), received(covering)]
    _, uow = await run(handlers.when_consents_recorded_send_waiting_referrals, ctx, store, batch)
    [made] = uow.events(ReferralMade)
    [referral] = store.loop.referrals.values()
    assert (made.patient_id, referral["status"], referral["consent_id"]) == (
        patient_id,
        "requested",
        covering.consent_id,
    )
