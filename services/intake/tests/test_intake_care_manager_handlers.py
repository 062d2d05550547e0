"""Who is responsible for a patient, against an in-memory store: registration names them, a supervisor
reassigns."""

import uuid
from datetime import date

import pytest

from careloop_shared.contracts import CareManagerAssigned, ContactPreference, PatientRegistered
from careloop_shared.testing.fakes import assert_fake_matches, run
from intake import handlers
from intake.care_manager.handlers import reassign_care_manager
from intake.care_manager.store import CareManagerStore
from intake.domain.care_manager import NoCareManager, UnknownReason
from intake.domain.commands import ReassignCareManager, RegisterPatient

AGENCY = "agency-a"
ANA = {"by": "cm-ana", "by_role": "care-manager"}
SAM = {"by": "sv-sam", "by_role": "supervisor"}


def registration(**changes) -> RegisterPatient:
    fields = {
        "agency_id": AGENCY,
        "given_name": "Marisol",
        "family_name": "Etxeberria",
        "birth_date": date(1958, 3, 14),
        "preferred_language": "es",
        "contact_preference": ContactPreference.do_not_contact,
        **ANA,
    }
    return RegisterPatient(**{**fields, **changes})


def reassignment(patient_id, care_manager_id="cm-bo", **changes) -> ReassignCareManager:
    return ReassignCareManager(
        **{"agency_id": AGENCY, "patient_id": patient_id, **SAM, **changes}, care_manager_id=care_manager_id
    )


def test_the_fake_care_manager_store_answers_like_the_real_one(store):
    assert_fake_matches(CareManagerStore, type(store.care_manager))


async def test_a_care_manager_registering_a_patient_becomes_responsible_for_them(ctx, store, clock):
    patient_id, uow = await run(handlers.register_patient, ctx, store, registration())
    assert store.patients[patient_id]["care_manager_id"] == "cm-ana"
    [registered] = uow.events(PatientRegistered)
    [assigned] = uow.events(CareManagerAssigned)
    assert registered.care_manager_id == "cm-ana"
    assert (assigned.patient_id, assigned.care_manager_id, assigned.previous_care_manager_id) == (
        patient_id,
        "cm-ana",
        None,
    )
    assert (assigned.reason, assigned.assigned_at, assigned.actor_id, assigned.actor_role) == (
        "registration",
        clock.now,
        "cm-ana",
        "care-manager",
    )
    [kept] = store.care_manager.assignments
    assert (kept["care_manager_id"], kept["reason"], kept["assigned_by"], kept["assigned_by_role"]) == (
        "cm-ana",
        "registration",
        "cm-ana",
        "care-manager",
    )


async def test_the_care_manager_named_at_registration_is_responsible_whoever_registers(ctx, store):
    patient_id, uow = await run(
        handlers.register_patient, ctx, store, registration(care_manager_id="cm-bo", **SAM)
    )
    assert store.patients[patient_id]["care_manager_id"] == "cm-bo"
    [assigned] = uow.events(CareManagerAssigned)
    assert (assigned.care_manager_id, assigned.actor_id, assigned.actor_role) == (
        "cm-bo",
        "sv-sam",
        "supervisor",
    )
    other, uow = await run(
        handlers.register_patient, ctx, store, registration(given_name="Ana", care_manager_id="cm-cy")
    )
    assert [e.care_manager_id for e in uow.events(PatientRegistered)] == ["cm-cy"]
    assert store.patients[other]["care_manager_id"] == "cm-cy"


async def test_a_supervisor_registering_without_naming_a_care_manager_is_refused_and_nothing_stored(
    ctx, store
):
    with pytest.raises(NoCareManager) as refused:
        await run(handlers.register_patient, ctx, store, registration(**SAM))
    assert refused.value.problems[0]["loc"] == ["body", "care_manager_id"]
    assert store.patients == {} and store.care_manager.assignments == []


async def test_a_likely_duplicate_assigns_nobody(ctx, store):
    await run(handlers.register_patient, ctx, store, registration())
    with pytest.raises(handlers.LikelyDuplicate):
        await run(handlers.register_patient, ctx, store, registration(care_manager_id="cm-bo"))
    assert [a["care_manager_id"] for a in store.care_manager.assignments] == ["cm-ana"]


async def test_a_supervisor_reassigns_and_the_event_names_the_previous_care_manager_and_the_supervisor(
    ctx, store, clock
):
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration())
    clock.advance(days=3)
    answer, uow = await run(reassign_care_manager, ctx, store, reassignment(patient_id, reason="staff-leave"))
    assert store.patients[patient_id]["care_manager_id"] == "cm-bo"
    [assigned] = uow.events(CareManagerAssigned)
    assert (
        assigned.care_manager_id,
        assigned.previous_care_manager_id,
        assigned.reason,
        assigned.assigned_at,
        assigned.actor_id,
        assigned.actor_role,
    ) == ("cm-bo", "cm-ana", "reassignment", clock.now, "sv-sam", "supervisor")
    kept = store.care_manager.assignments[-1]
    assert (kept["reason"], kept["reason_code"], kept["assigned_by"]) == (
        "reassignment",
        "staff-leave",
        "sv-sam",
    )
    assert (answer["care_manager_id"], answer["previous_care_manager_id"], answer["reason_code"]) == (
        "cm-bo",
        "cm-ana",
        "staff-leave",
    )
    assert uow.pending[0].event.patient_id == patient_id  # keyed by the patient, as every intake event


async def test_reassigning_to_the_care_manager_already_responsible_changes_nothing(ctx, store, clock):
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration())
    clock.advance(hours=1)
    answer, uow = await run(reassign_care_manager, ctx, store, reassignment(patient_id, "cm-ana"))
    assert uow.pending == []
    assert len(store.care_manager.assignments) == 1
    assert (answer["care_manager_id"], answer["reason"], answer["assigned_by"]) == (
        "cm-ana",
        "registration",
        "cm-ana",
    )


async def test_a_patient_without_a_care_manager_gets_one_by_reassignment(ctx, store):
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration())
    store.patients[patient_id]["care_manager_id"] = None  # registered before care managers were kept
    _, uow = await run(reassign_care_manager, ctx, store, reassignment(patient_id))
    [assigned] = uow.events(CareManagerAssigned)
    assert (assigned.care_manager_id, assigned.previous_care_manager_id) == ("cm-bo", None)


async def test_another_agencys_patient_or_an_unknown_reason_is_refused_and_changes_nothing(ctx, store):
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration())
    with pytest.raises(handlers.PatientNotFound):
        await run(reassign_care_manager, ctx, store, reassignment(patient_id, agency_id="agency-b"))
    with pytest.raises(handlers.PatientNotFound):
        await run(reassign_care_manager, ctx, store, reassignment(uuid.uuid4()))
    with pytest.raises(UnknownReason):
        await run(reassign_care_manager, ctx, store, reassignment(patient_id, reason="felt-like-it"))
    assert store.patients[patient_id]["care_manager_id"] == "cm-ana"
    assert len(store.care_manager.assignments) == 1
