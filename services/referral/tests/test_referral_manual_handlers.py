"""Referrals made by hand, on an in-memory store: the plan's interventions only, the program able to take
the patient, the consent gate as for any referral, and overriding careloop's choice."""

import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpCadence,
    Intervention,
    PatientRegistered,
    PlanUpdated,
    ReferralMade,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.errors import Conflict, Invalid
from careloop_shared.testing.fakes import received, run
from referral.directory import handlers as directory
from referral.domain.commands import ChangeReferralStatus, MakeReferral, SaveOrganization, SaveService
from referral.domain.directory import Organization, Service
from referral.loop import handlers as loop
from referral.manual import handlers
from referral.manual.handlers import OpenReferral, PlanNotFound

HOME = "agency-home"
FOOD = "food-assistance"
CM = {"by": "cm-ana", "by_role": "care-manager"}


async def program(ctx, store, service_id: str, agency: str, **fields) -> str:
    org = Organization(id=f"org-{agency}", agency_id=agency, name="Org")
    admin = ("agency-network", "admin", "adm-ada")
    await run(directory.save_organization, ctx, store, SaveOrganization(*admin, org))
    body = {"id": service_id, "organization_id": org.id, "name": "Program", "program_category": FOOD}
    svc = Service.model_validate({**body, "languages": ["en", "es"], **fields})
    await run(directory.save_service, ctx, store, SaveService(*admin, svc))
    return service_id


def intervention(**fields) -> Intervention:
    base = {"id": uuid.uuid4(), "need": "food-insecurity", "kind": "referral", "program_category": FOOD}
    return Intervention(**{**base, "needs_referral": True, **fields})


def plan(patient_id, *items, version=1, status="active", agency=HOME) -> PlanUpdated:
    return PlanUpdated(
        patient_id=patient_id,
        agency_id=agency,
        plan_id=uuid.uuid5(patient_id, "plan"),
        version=version,
        status=status,
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=list(items),
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
        preferred_language="es",
    )


async def planned(ctx, store, *items, **fields) -> uuid.UUID:
    """A patient of HOME whose plan (just read by referral) holds ``items``."""
    patient_id = fields.pop("patient_id", None) or uuid.uuid4()
    event = plan(patient_id, *items, **fields)
    await run(loop.when_plan_updated_make_referrals, ctx, store, received(event))
    return patient_id


async def consents(ctx, store, patient_id, **fields) -> ConsentRecorded:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    recorded = ConsentRecorded(
        patient_id=patient_id,
        agency_id=HOME,
        consent_id=uuid.uuid4(),
        purpose="referral",
        agencies=fields.get("agencies", []),
        program_categories=fields.get("program_categories", []),
        period_start=at,
        recorded_at=at,
    )
    await run(loop.when_consent_recorded_send_waiting_referrals, ctx, store, received(recorded))
    return recorded


def by_hand(patient_id, item, service_id, agency=HOME, **fields) -> MakeReferral:
    return MakeReferral(agency, patient_id, item.id, service_id, **{**CM, **fields})


async def test_a_care_manager_refers_by_hand_and_without_consent_it_waits_for_consent(ctx, store, clock):
    await program(ctx, store, "a-best", "agency-a")
    await program(ctx, store, "b-chosen", "agency-b")
    item = intervention(needs_referral=False)  # careloop would not refer it on its own
    patient_id = await planned(ctx, store, item)
    assert store.loop.referrals == {}

    made, uow = await run(
        handlers.make_referral_by_hand,
        ctx,
        store,
        by_hand(patient_id, item, "b-chosen", note="Prefers mornings", priority="urgent"),
    )
    assert uow.pending == []  # nothing is announced before the patient's consent allows it
    row = made.referral
    assert (row["status"], row["status_reason"], row["choice"]) == ("draft", "awaiting-consent", "by-hand")
    assert (row["program_id"], row["priority"], row["replaces_referral_id"]) == ("b-chosen", "urgent", None)
    assert [(h["to_status"], h["by_subject"], h["note"]) for h in made.history] == [
        ("draft", "cm-ana", "Prefers mornings")
    ]

    # A consent covering both programs' agencies sends it to the one chosen, not to the better ranked.
    clock.advance(hours=2)
    _, released = await run(
        loop.when_consent_recorded_send_waiting_referrals,
        ctx,
        store,
        received(
            ConsentRecorded(
                patient_id=patient_id,
                agency_id=HOME,
                consent_id=uuid.uuid4(),
                purpose="referral",
                agencies=["agency-a", "agency-b"],
                program_categories=[],
                period_start=datetime(2026, 1, 1, tzinfo=UTC),
                recorded_at=clock.now,
            )
        ),
    )
    [sent] = released.events(ReferralMade)
    [moved] = released.events(ReferralStatusChanged)
    assert (sent.referral_id, sent.program_id, sent.receiving_agency_id) == (
        row["id"],
        "b-chosen",
        "agency-b",
    )
    assert (sent.actor_id, sent.actor_role) == ("cm-ana", "care-manager")  # the person who made it
    assert (moved.from_status, moved.to_status, moved.actor_id) == ("draft", "requested", None)
    assert "mornings" not in sent.model_dump_json() + moved.model_dump_json()


async def test_with_consent_a_referral_made_by_hand_is_sent_at_once_naming_the_person(ctx, store, clock):
    await program(ctx, store, "pantry", "agency-food")
    item = intervention(needs_referral=False, priority="asap")
    patient_id = await planned(ctx, store, item)
    await consents(ctx, store, patient_id, program_categories=[FOOD])
    made, uow = await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "pantry"))
    [event] = uow.events(ReferralMade)
    assert (event.referral_id, event.program_id, event.intervention_id) == (
        made.referral["id"],
        "pantry",
        item.id,
    )
    assert (event.actor_id, event.actor_role, event.program_category) == ("cm-ana", "care-manager", FOOD)
    assert made.referral["status"] == "requested" and made.referral["priority"] == "asap"
    assert made.referral["response_due_at"] is not None and made.referral["consent_id"] is not None


async def test_a_choice_by_hand_overrides_the_automatic_referral_not_yet_accepted(ctx, store):
    await program(ctx, store, "a-best", "agency-a")
    await program(ctx, store, "b-chosen", "agency-b")
    item = intervention()
    patient_id = uuid.uuid4()
    await consents(ctx, store, patient_id, program_categories=[FOOD])
    await planned(ctx, store, item, patient_id=patient_id)
    [automatic] = store.loop.referrals.values()
    assert (automatic["program_id"], automatic["status"], automatic["choice"]) == (
        "a-best",
        "requested",
        "automatic",
    )

    made, uow = await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "b-chosen"))
    assert [type(m.event) for m in uow.pending] == [ReferralStatusChanged, ReferralMade]
    [cancelled] = uow.events(ReferralStatusChanged)
    assert (cancelled.referral_id, cancelled.to_status, cancelled.reason) == (
        automatic["id"],
        "cancelled",
        "overridden-by-care-manager",
    )
    assert (cancelled.by_party, cancelled.actor_id) == ("requester", "cm-ana")
    [replacing] = uow.events(ReferralMade)
    assert (replacing.replaces_referral_id, replacing.service_request_id, replacing.program_id) == (
        automatic["id"],
        automatic["service_request_id"],
        "b-chosen",
    )
    old = store.loop.referrals[automatic["id"]]
    assert (old["status"], old["status_reason"]) == ("cancelled", "overridden-by-care-manager")
    assert made.referral["replaces_referral_id"] == automatic["id"]
    # A plan version arriving again makes no new automatic referral for the intervention.
    _, again = await run(
        loop.when_plan_updated_make_referrals, ctx, store, received(plan(patient_id, item, version=2))
    )
    assert again.pending == [] and len(store.loop.referrals) == 2


async def test_an_automatic_referral_waiting_for_consent_is_overridden_too(ctx, store):
    await program(ctx, store, "a-best", "agency-a")
    item = intervention()
    patient_id = await planned(ctx, store, item)
    [draft] = store.loop.referrals.values()
    assert (draft["program_id"], draft["status"]) == ("a-best", "draft")
    await program(ctx, store, "own-pantry", HOME, capacity={"status": "waitlist"})
    made, uow = await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "own-pantry"))
    [cancelled] = uow.events(ReferralStatusChanged)
    assert (cancelled.from_status, cancelled.to_status) == ("draft", "cancelled")
    # The patient's own agency's program needs no consent.
    assert made.referral["status"] == "requested" and made.referral["consent_id"] is None


async def test_an_open_referral_that_may_not_be_overridden_is_refused_naming_it(ctx, store):
    await program(ctx, store, "a-best", "agency-a")
    await program(ctx, store, "b-other", "agency-b")
    item = intervention()
    patient_id = uuid.uuid4()
    await consents(ctx, store, patient_id, program_categories=[FOOD])
    await planned(ctx, store, item, patient_id=patient_id)
    [automatic] = store.loop.referrals.values()

    with pytest.raises(OpenReferral, match="already goes to this program") as same:
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "a-best"))
    assert same.value.extra == {"referral_id": str(automatic["id"])}

    accept = ChangeReferralStatus("agency-a", automatic["id"], "accepted", "pr-pat", "provider")
    await run(loop.change_referral_status, ctx, store, accept)
    before = {k: dict(v) for k, v in store.loop.referrals.items()}
    with pytest.raises(OpenReferral, match="cancel it to refer again"):
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "b-other"))
    assert store.loop.referrals == before

    # A referral made by hand is the person's own choice: they cancel it, rather than override it.
    other = intervention(needs_referral=False)
    await planned(ctx, store, item, other, patient_id=patient_id, version=2)
    await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, other, "a-best"))
    with pytest.raises(OpenReferral):
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, other, "b-other"))


async def test_after_a_closed_referral_a_new_one_by_hand_follows_it_on_the_same_request(ctx, store):
    await program(ctx, store, "a-best", "agency-a")
    await program(ctx, store, "b-other", "agency-b")
    item = intervention()
    patient_id = uuid.uuid4()
    await consents(ctx, store, patient_id, program_categories=[FOOD])
    await planned(ctx, store, item, patient_id=patient_id)
    [first] = store.loop.referrals.values()
    reject = ChangeReferralStatus(
        "agency-a", first["id"], "rejected", "pr-pat", "provider", reason="client-declined"
    )
    await run(loop.change_referral_status, ctx, store, reject)
    made, uow = await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "a-best"))
    assert uow.events(ReferralStatusChanged) == []  # nothing open to cancel
    assert (made.referral["replaces_referral_id"], made.referral["service_request_id"]) == (
        first["id"],
        first["service_request_id"],
    )


async def test_a_referral_by_hand_resolves_the_interventions_network_gap(ctx, store, clock):
    await program(ctx, store, "case-management", "agency-cm", program_category="case-management")
    item = intervention(program_category="no-such-programs")
    patient_id = await planned(ctx, store, item)
    assert store.gaps.rows[item.id]["resolved_at"] is None
    clock.advance(hours=1)
    made, _ = await run(
        handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "case-management")
    )
    assert store.gaps.rows[item.id]["resolved_at"] == clock.now
    assert made.referral["program_category"] == "case-management"  # the program's, as a consent names it


async def test_only_an_intervention_of_the_patients_current_plan_in_the_callers_agency_is_referred(
    ctx, store
):
    await program(ctx, store, "pantry", "agency-food")
    kept, dropped = intervention(), intervention()
    patient_id = await planned(ctx, store, kept, dropped)
    await planned(ctx, store, kept, patient_id=patient_id, version=3)
    await planned(ctx, store, kept, dropped, patient_id=patient_id, version=2)  # late: changes nothing

    with pytest.raises(Invalid) as refused:
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, dropped, "pantry"))
    assert refused.value.problems == [
        {
            "loc": ["body", "intervention_id"],
            "type": "not_in_plan",
            "msg": "the intervention is not in the patient's current plan",
        }
    ]
    with pytest.raises(PlanNotFound):
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, kept, "pantry", "agency-x"))
    with pytest.raises(PlanNotFound):
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(uuid.uuid4(), kept, "pantry"))
    with pytest.raises(Invalid, match="names no directory service"):
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, kept, "svc-nowhere"))
    await planned(ctx, store, kept, patient_id=patient_id, version=4, status="revoked")
    with pytest.raises(Conflict, match="care plan is revoked"):
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, kept, "pantry"))
    assert {r["choice"] for r in store.loop.referrals.values()} == {"automatic"}  # the plan's own


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"capacity": {"status": "no-capacity"}}, "not_taking_referrals"),
        ({"eligibility": {"postal_prefixes": ["100"]}}, "outside_area"),
        ({"languages": ["en"]}, "language"),
        ({"status": "inactive"}, "inactive"),
    ],
)
async def test_a_program_that_cannot_take_the_patient_is_refused_saying_why(ctx, store, clock, fields, why):
    await program(ctx, store, "chosen", "agency-x", **fields)
    item = intervention(needs_referral=False)
    patient_id = await planned(ctx, store, item)
    registered = PatientRegistered(
        patient_id=patient_id,
        agency_id=HOME,
        preferred_language="es",
        registered_at=clock.now,
        postal_area="941",
    )
    await run(loop.when_patient_registered_or_updated_remember, ctx, store, received(registered))
    with pytest.raises(Invalid) as refused:
        await run(handlers.make_referral_by_hand, ctx, store, by_hand(patient_id, item, "chosen"))
    [problem] = refused.value.problems
    assert (problem["loc"], problem["type"]) == (["body", "service_id"], why)
    assert "941" not in problem["msg"] and "es" not in problem["msg"].split()
    assert store.loop.referrals == {}
