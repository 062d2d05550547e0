"""The recruitment pipeline and the network's gaps, on an in-memory store: prospects moved along, an
activated prospect put in the directory, and the patients waiting on the gaps it fills referred."""

import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpCadence,
    Intervention,
    NetworkGapDetected,
    PatientRegistered,
    PlanUpdated,
    ReferralMade,
    RiskLevel,
)
from careloop_shared.db import ALL_AGENCIES
from careloop_shared.errors import Conflict, Invalid
from careloop_shared.testing.fakes import received, run
from referral.directory import handlers as directory
from referral.domain.commands import (
    ChangeProspectStatus,
    ChangeReferralStatus,
    ReferWaitingPatients,
    SaveOrganization,
    SaveProspect,
    SaveService,
)
from referral.domain.directory import Organization, Service
from referral.domain.recruitment import IllegalMove, Prospect
from referral.gaps import handlers as gaps
from referral.loop import handlers as loop
from referral.recruitment import handlers

HOME = "agency-home"
HOMECARE = "home-health"
ADMIN = ("agency-network", "admin", "adm-ada")  # agency, role, the person


def prospect(**fields) -> Prospect:
    base = {
        "id": "sunrise-home-care",
        "name": "Sunrise Home Care",
        "program_categories": [HOMECARE],
        "needs": ["clinical-service"],
        "languages": ["en", "so"],
        "postal_prefixes": ["100"],
        "notes": "Met their director at the county fair",
    }
    return Prospect.model_validate({**base, **fields})


async def saved(ctx, store, **fields) -> handlers.ProspectShown:
    shown, _ = await run(handlers.save_prospect, ctx, store, SaveProspect(*ADMIN, prospect(**fields)))
    return shown


def move(status: str, prospect_id: str = "sunrise-home-care", **fields) -> ChangeProspectStatus:
    return ChangeProspectStatus(*ADMIN, prospect_id, status, **fields)


async def moved(ctx, store, *statuses: str, prospect_id: str = "sunrise-home-care"):
    result = uow = None
    for status in statuses:
        result, uow = await run(handlers.change_prospect_status, ctx, store, move(status, prospect_id))
    return result, uow


def plan(patient_id, *items, version=1) -> PlanUpdated:
    return PlanUpdated(
        patient_id=patient_id,
        agency_id=HOME,
        plan_id=uuid.uuid5(patient_id, "plan"),
        version=version,
        status="active",
        risk_level=RiskLevel.high,
        goals=[],
        interventions=list(items),
        follow_up=FollowUpCadence(every_days=14, priority=RiskLevel.high),
        preferred_language="so",
    )


def home_health(**fields) -> Intervention:
    base = {"id": uuid.uuid4(), "need": "clinical-service", "kind": "clinical", "program_category": HOMECARE}
    return Intervention(**{**base, "needs_referral": True, "priority": "urgent", **fields})


async def waiting(
    ctx, store, clock, item=None, *, area="100", consent_to=None
) -> tuple[uuid.UUID, Intervention]:
    """A patient of HOME (Somali-speaking, in ``area``) whose plan's intervention waits on a gap."""
    patient_id, item = uuid.uuid4(), item or home_health()
    registered = PatientRegistered(
        patient_id=patient_id,
        agency_id=HOME,
        preferred_language="so",
        registered_at=clock.now,
        postal_area=area,
    )
    await run(loop.when_patient_registered_or_updated_remember, ctx, store, received(registered))
    if consent_to:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        recorded = ConsentRecorded(
            patient_id=patient_id,
            agency_id=HOME,
            consent_id=uuid.uuid4(),
            purpose="referral",
            agencies=[consent_to],
            program_categories=[],
            period_start=at,
            recorded_at=at,
        )
        await run(loop.when_consent_recorded_send_waiting_referrals, ctx, store, received(recorded))
    _, uow = await run(loop.when_plan_updated_make_referrals, ctx, store, received(plan(patient_id, item)))
    assert [g.intervention_id for g in uow.events(NetworkGapDetected)] == [item.id]
    return patient_id, item


# --- the pipeline ---------------------------------------------------------------------------------


async def test_a_prospect_is_added_owned_by_its_recruiter_and_its_details_change_but_not_its_status(
    ctx, store, clock
):
    added = await saved(ctx, store)
    assert added.created
    shown = added.prospect
    assert (shown["status"], shown["owner_id"], shown["changed_by"]) == ("prospect", "adm-ada", "adm-ada")
    assert [(h["from_status"], h["to_status"], h["by_subject"]) for h in added.history] == [
        (None, "prospect", "adm-ada")
    ]
    await moved(ctx, store, "contacted")
    clock.advance(hours=1)
    again = await saved(ctx, store, name="Sunrise Home Care Co-op", owner_id="sv-sam")
    assert not again.created
    assert (again.prospect["name"], again.prospect["owner_id"], again.prospect["status"]) == (
        "Sunrise Home Care Co-op",
        "sv-sam",
        "contacted",
    )
    kept = await saved(ctx, store)  # no owner named: the owner stays
    assert (
        kept.prospect["owner_id"] == "sv-sam" and kept.prospect["created_at"] == added.prospect["created_at"]
    )


async def test_a_prospect_moves_only_along_the_pipeline_and_a_decline_says_why(ctx, store):
    await saved(ctx, store)
    with pytest.raises(IllegalMove, match="a prospect that is prospect cannot become onboarding"):
        await run(handlers.change_prospect_status, ctx, store, move("onboarding"))
    with pytest.raises(handlers.ProspectNotFound):
        await run(handlers.change_prospect_status, ctx, store, move("contacted", "nobody-we-know"))
    with pytest.raises(Invalid, match="a decline needs a known reason code"):
        await run(handlers.change_prospect_status, ctx, store, move("declined"))
    with pytest.raises(Invalid, match="only a decline takes a reason"):
        await run(handlers.change_prospect_status, ctx, store, move("contacted", reason="other"))
    declined, _ = await run(
        handlers.change_prospect_status,
        ctx,
        store,
        move("declined", reason="not-interested", note="They are merging with another agency"),
    )
    assert (declined.prospect["status"], declined.prospect["status_reason"]) == ("declined", "not-interested")
    assert declined.history[-1]["note"] == "They are merging with another agency"
    assert declined.referred is None and declined.service_ids == []
    with pytest.raises(IllegalMove):
        await run(handlers.change_prospect_status, ctx, store, move("contacted"))
    with pytest.raises(Conflict, match="declined is not changed any more"):
        await saved(ctx, store)


async def test_a_prospect_without_the_agency_that_will_answer_its_referrals_is_not_activated(ctx, store):
    await saved(ctx, store)
    await moved(ctx, store, "contacted", "onboarding")
    with pytest.raises(Invalid, match="needs the agency_id"):
        await run(handlers.change_prospect_status, ctx, store, move("active"))
    assert store.recruitment.prospects["sunrise-home-care"]["status"] == "onboarding"
    assert "sunrise-home-care" not in store.directory.organizations


async def test_activating_a_prospect_puts_it_in_the_directory_and_refers_the_patients_waiting_on_its_gaps(
    ctx, store, clock
):
    consented, served = await waiting(ctx, store, clock, consent_to="agency-sunrise")
    unconsented, drafted = await waiting(ctx, store, clock)
    _, elsewhere = await waiting(ctx, store, clock, area="941")  # outside the area it would serve
    await saved(ctx, store, agency_id="agency-sunrise", program_categories=[HOMECARE, "medical-equipment"])
    await moved(ctx, store, "contacted", "onboarding")
    clock.advance(days=3)

    active, uow = await run(handlers.change_prospect_status, ctx, store, move("active"))
    assert active.service_ids == ["sunrise-home-care-home-health", "sunrise-home-care-medical-equipment"]
    assert active.referred == 2 and active.prospect["status"] == "active"
    assert store.acted_for == [ALL_AGENCIES]  # every agency's waiting patients, whoever activated it
    organization = await store.directory.get_organization("sunrise-home-care")
    assert (organization["agency_id"], organization["changed_by"]) == ("agency-sunrise", "adm-ada")
    program = await store.directory.get_service("sunrise-home-care-home-health")
    assert (program["needs"], program["languages"], program["eligibility"]["postal_prefixes"]) == (
        ["clinical-service"],
        ["en", "so"],
        ["100"],
    )
    assert (program["changed_by"], program["capacity"]["status"]) == ("adm-ada", "capacity")

    [made] = uow.events(ReferralMade)  # sent only where the patient's consent covers the agency
    assert (made.patient_id, made.intervention_id, made.program_id) == (
        consented,
        served.id,
        "sunrise-home-care-home-health",
    )
    assert (made.actor_id, made.actor_role, made.replaces_referral_id) == ("adm-ada", "admin", None)
    by_intervention = {r["intervention_id"]: r for r in store.loop.referrals.values()}
    assert by_intervention[served.id]["priority"] == "urgent"  # as the plan asked
    assert by_intervention[drafted.id]["status"] == "draft" and unconsented  # waits for consent
    assert elsewhere.id not in by_intervention
    assert {i: g["resolved_at"] for i, g in store.gaps.rows.items()} == {
        served.id: clock.now,
        drafted.id: clock.now,
        elsewhere.id: None,
    }


async def test_a_prospect_whose_ids_the_directory_already_holds_is_not_activated(ctx, store):
    org = Organization(id="sunrise-home-care", agency_id="agency-other", name="Someone else")
    await run(directory.save_organization, ctx, store, SaveOrganization(*ADMIN, org))
    await saved(ctx, store, agency_id="agency-sunrise")
    await moved(ctx, store, "contacted", "onboarding")
    with pytest.raises(Conflict, match="already has an organization"):
        await run(handlers.change_prospect_status, ctx, store, move("active"))
    assert store.recruitment.prospects["sunrise-home-care"]["status"] == "onboarding"


# --- waiting patients and the report --------------------------------------------------------------


async def new_program(ctx, store, **fields) -> str:
    org = Organization(id="org-homecare", agency_id=HOME, name="Own home care")
    await run(directory.save_organization, ctx, store, SaveOrganization(*ADMIN, org))
    body = {"id": "homecare", "organization_id": org.id, "name": "Visits", "program_category": HOMECARE}
    svc = Service.model_validate({**body, "languages": ["so"], **fields})
    await run(directory.save_service, ctx, store, SaveService(*ADMIN, svc))
    return svc.id


async def test_a_gap_left_by_rejections_is_referred_on_from_the_rejected_referral(ctx, store, clock):
    first = await new_program(ctx, store)
    patient_id, item = uuid.uuid4(), home_health()
    await run(loop.when_plan_updated_make_referrals, ctx, store, received(plan(patient_id, item)))
    [rejected] = store.loop.referrals.values()
    reject = ChangeReferralStatus(
        HOME, rejected["id"], "rejected", "pr-pat", "provider", reason="no-capacity"
    )
    _, uow = await run(loop.change_referral_status, ctx, store, reject)
    assert [g.intervention_id for g in uow.events(NetworkGapDetected)] == [item.id]

    assert first in await store.loop.services_tried(item.id)  # a second program appears:
    await run(
        directory.save_service,
        ctx,
        store,
        SaveService(
            *ADMIN,
            Service(
                id="homecare-two",
                organization_id="org-homecare",
                name="More",
                program_category=HOMECARE,
                languages=["so"],
            ),
        ),
    )
    referred, uow = await run(
        gaps.refer_patients_waiting_on_gaps,
        ctx,
        store,
        ReferWaitingPatients(("homecare-two",), "adm-ada", "admin"),
    )
    [made] = uow.events(ReferralMade)
    assert referred == 1 and made.program_id == "homecare-two"
    assert (made.replaces_referral_id, made.service_request_id) == (
        rejected["id"],
        rejected["service_request_id"],
    )
    # Asked again (the gap resolved): nothing more.
    again, uow = await run(
        gaps.refer_patients_waiting_on_gaps,
        ctx,
        store,
        ReferWaitingPatients(("homecare-two",), "adm-ada", "admin"),
    )
    assert again == 0 and uow.pending == []


async def test_a_gap_recorded_before_its_routing_details_were_kept_uses_what_is_known_since(
    ctx, store, clock
):
    known, unknown = uuid.uuid4(), uuid.uuid4()
    item = home_health()
    old = {"need": "clinical-service", "program_category": HOMECARE, "postal_area": None, "language": "so"}
    for patient_id, intervention_id in ((known, item.id), (unknown, uuid.uuid4())):
        store.gaps.rows[intervention_id] = {
            **old,
            "intervention_id": intervention_id,
            "patient_id": patient_id,
            "detected_at": clock.now,
            "resolved_at": None,
        }
    await run(loop.when_plan_updated_make_referrals, ctx, store, received(plan(known, item, version=2)))
    program = await new_program(ctx, store)
    referred, uow = await run(
        gaps.refer_patients_waiting_on_gaps,
        ctx,
        store,
        ReferWaitingPatients((program, "gone"), "adm-ada", "admin"),
    )
    [made] = uow.events(ReferralMade)
    assert referred == 1 and (made.patient_id, made.plan_id) == (known, uuid.uuid5(known, "plan"))
    assert [g["resolved_at"] is None for g in store.gaps.rows.values()] == [False, True]


async def test_the_fake_reports_open_gaps_by_group_longest_waiting_first_and_reopens_a_recurring_gap(
    ctx, store, clock
):
    _, first = await waiting(ctx, store, clock)
    since = clock.now
    clock.advance(days=1)
    await waiting(ctx, store, clock)
    await waiting(ctx, store, clock, area="941")
    rows = await store.gaps.report(need=None, category=None, limit=10, offset=0)
    assert [(r["postal_area"], r["patients_waiting"], r["oldest_waiting_since"]) for r in rows] == [
        ("100", 2, since),
        ("941", 1, clock.now),
    ]
    assert all("patient_id" not in r for r in rows)
    assert await store.gaps.report(need="housing", category=None, limit=10, offset=0) == []
    await store.gaps.resolve(first.id, clock.now)
    clock.advance(days=1)
    gap = {**store.gaps.rows[first.id], "detected_at": clock.now}
    assert not await store.gaps.record_once(gap)  # not announced again, but waiting again from now
    assert store.gaps.rows[first.id]["resolved_at"] is None
