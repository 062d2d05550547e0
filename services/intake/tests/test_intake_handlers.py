"""intake's use cases against an in-memory store: decisions and events, no broker or database."""

import json
import uuid
from datetime import date

import pytest

from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    ContactChannel,
    ContactPreference,
    PatientAssessed,
    PatientErased,
    PatientRegistered,
    PatientUpdated,
)
from careloop_shared.crypto import Erased
from careloop_shared.errors import Gone
from careloop_shared.testing.fakes import assert_fake_matches, run
from intake import handlers
from intake.domain.commands import AssessPatient, RecordConsent, RegisterPatient, RevokeConsent, UpdatePatient
from intake.domain.scoring import InvalidAnswers
from intake.erasure.handlers import ErasePatient, PatientErasedAlready, erase_patient, kept_patient
from intake.erasure.keys import open_assessment
from intake.erasure.store import KeyStore
from intake.identity.sealed import identified
from intake.store import IntakeStore

AGENCY = "agency-a"
BY = {"by": "cm-ana", "by_role": "care-manager"}  # the person asking, as the API names them
PHQ9_ITEMS = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]


def registration(**changes) -> RegisterPatient:
    fields = {
        "agency_id": AGENCY,
        "given_name": "Marisol",
        "family_name": "Etxeberria",
        "birth_date": date(1958, 3, 14),
        "preferred_language": "es",
        "contact_preference": ContactPreference.text,
        "phone": "+1 555 0100",
        "postal_code": "94110",
        **BY,
    }
    return RegisterPatient(**{**fields, **changes})


async def registered(ctx, store, **changes) -> uuid.UUID:
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration(**changes))
    return patient_id


def test_the_fake_store_answers_like_the_real_one(store):
    assert_fake_matches(IntakeStore, type(store))
    assert_fake_matches(KeyStore, type(store.keys))


async def test_registering_announces_the_patient_without_identifying_details(ctx, store):
    patient_id, uow = await run(handlers.register_patient, ctx, store, registration())
    [event] = uow.events(PatientRegistered)
    assert (event.patient_id, event.postal_area, event.contact_preference) == (patient_id, "941", "text")
    assert "Marisol" not in event.model_dump_json()
    # Kept only sealed: nothing identifying in the row, and the details open with the patient's key.
    stored = store.patients[patient_id]
    assert not {"given_name", "family_name", "name_key", "birth_date", "phone", "postal_code"} & set(stored)
    assert not any(v in json.dumps(stored, default=str) for v in ("Marisol", "1958", "0100", "94110"))
    [shown] = identified(ctx.keys, [await store.get_patient(AGENCY, patient_id)])
    assert (shown["given_name"], shown["birth_date"], shown["phone"]) == (
        "Marisol",
        date(1958, 3, 14),
        "+1 555 0100",
    )


async def test_a_likely_duplicate_is_refused_naming_the_existing_patient(ctx, store):
    first = await registered(ctx, store)
    with pytest.raises(handlers.LikelyDuplicate) as refused:
        await run(handlers.register_patient, ctx, store, registration(given_name=" MARISOL "))
    assert refused.value.body()["existing_id"] == first
    assert len(store.patients) == 1
    other_agency, _ = await run(handlers.register_patient, ctx, store, registration(agency_id="agency-b"))
    assert other_agency != first


async def test_an_update_names_the_changed_fields_never_their_values(ctx, store, clock):
    patient_id = await registered(ctx, store)
    clock.advance(hours=1)
    command = UpdatePatient(AGENCY, patient_id, {"phone": "+1 555 0199", "preferred_language": "es"}, **BY)
    updated, uow = await run(handlers.update_patient, ctx, store, command)
    [event] = uow.events(PatientUpdated)
    assert event.changed_fields == ["phone"]
    # The number in any form it could take; never its last digits alone, which a random patient id may hold.
    assert not any(form in event.model_dump_json() for form in ("555 0199", "+15550199", "5550199"))
    assert updated["updated_at"] == clock.now


async def test_an_update_that_changes_nothing_announces_nothing(ctx, store):
    patient_id = await registered(ctx, store)
    _, uow = await run(
        handlers.update_patient, ctx, store, UpdatePatient(AGENCY, patient_id, {"phone": "+1 555 0100"}, **BY)
    )
    assert uow.pending == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"given_name": None}, "given_name cannot be cleared"),
        ({"phone": None}, "contact_preference text needs a phone number"),
        ({"contact_preference": ContactPreference.email}, "contact_preference email needs an email address"),
    ],
)
async def test_an_inconsistent_update_is_refused_and_stores_nothing(ctx, store, changes, reason):
    patient_id = await registered(ctx, store)
    before = dict(store.patients[patient_id])
    with pytest.raises(handlers.InvalidChange) as refused:
        await run(handlers.update_patient, ctx, store, UpdatePatient(AGENCY, patient_id, changes, **BY))
    assert refused.value.problems == [{"loc": ["body"], "type": "invalid_change", "msg": reason}]
    assert store.patients[patient_id] == before


async def test_an_update_making_a_likely_duplicate_is_refused(ctx, store):
    await registered(ctx, store)
    other = await registered(ctx, store, given_name="Ana")
    with pytest.raises(handlers.LikelyDuplicate):
        await run(
            handlers.update_patient, ctx, store, UpdatePatient(AGENCY, other, {"given_name": "Marisol"}, **BY)
        )
    [unchanged] = identified(ctx.keys, [await store.get_patient(AGENCY, other)])
    assert unchanged["given_name"] == "Ana"


async def test_another_agencys_patient_is_not_found_for_any_command(ctx, store):
    patient_id = await registered(ctx, store)
    for command, handler in [
        (UpdatePatient("agency-b", patient_id, {"phone": "+1 555 0111"}, **BY), handlers.update_patient),
        (RecordConsent("agency-b", patient_id, "referral", ["agency-c"], [], **BY), handlers.record_consent),
        (
            AssessPatient("agency-b", patient_id, "phq-9", dict.fromkeys(PHQ9_ITEMS, 0), **BY),
            handlers.assess_patient,
        ),
    ]:
        with pytest.raises(handlers.PatientNotFound):
            await run(handler, ctx, store, command)


async def test_consent_is_recorded_from_now_and_revoked_once(ctx, store, clock):
    patient_id = await registered(ctx, store)
    command = RecordConsent(AGENCY, patient_id, "referral", ["agency-food"], ["food-pantry"], **BY)
    consent_id, uow = await run(handlers.record_consent, ctx, store, command)
    [recorded] = uow.events(ConsentRecorded)
    assert (recorded.consent_id, recorded.period_start) == (consent_id, clock.now)

    clock.advance(days=1)
    revoke = RevokeConsent(AGENCY, patient_id, consent_id, by="sv-sam", by_role="supervisor")
    revoked, uow = await run(handlers.revoke_consent, ctx, store, revoke)
    assert (revoked["status"], revoked["revoked_at"]) == ("revoked", clock.now)
    assert [e.revoked_at for e in uow.events(ConsentRevoked)] == [clock.now]
    again, uow = await run(handlers.revoke_consent, ctx, store, revoke)
    assert again["revoked_at"] == revoked["revoked_at"] and uow.pending == []


async def test_an_unknown_consent_is_not_found(ctx, store):
    patient_id = await registered(ctx, store)
    with pytest.raises(handlers.NotFound):
        await run(handlers.revoke_consent, ctx, store, RevokeConsent(AGENCY, patient_id, uuid.uuid4(), **BY))


async def test_an_assessment_is_scored_stored_and_announced(ctx, store):
    patient_id = await registered(ctx, store)
    answers = {**dict.fromkeys(PHQ9_ITEMS, 3)}
    assessment_id, uow = await run(
        handlers.assess_patient, ctx, store, AssessPatient(AGENCY, patient_id, "phq-9", answers, **BY)
    )
    [event] = uow.events(PatientAssessed)
    assert (event.assessment_id, event.total_score, event.risk_level) == (assessment_id, 27, "urgent")
    assert event.urgent_flags == ["suicidal-ideation"]
    assert event.rules_version == ctx.rules.version
    # The item-level answers are kept and published only sealed with the patient's data key.
    stored = store.assessments[assessment_id]
    assert stored["answers"] == {} and {o["code"] for o in stored["observations"]} == {"44261-6"}
    assert {o.code for o in event.observations} == {"44261-6"} and event.sealed is not None
    assert "44250-9" not in event.model_dump_json() and "44250-9" not in json.dumps(stored, default=str)
    data_key = ctx.keys.data_key(patient_id, await store.keys.get(AGENCY, patient_id))
    for sealed in (event.sealed.model_dump(), stored["sealed"]):
        opened = open_assessment(data_key, patient_id, sealed)
        assert opened["answers"] == answers
        assert [o["code"] for o in opened["items"]] == list(PHQ9_ITEMS)


async def test_bad_answers_are_refused_before_anything_is_read_or_written(ctx, store):
    with pytest.raises(InvalidAnswers) as refused:
        # No such patient either: the answers are checked first.
        await run(
            handlers.assess_patient,
            ctx,
            store,
            AssessPatient(AGENCY, uuid.uuid4(), "phq-9", {"44250-9": 7}, **BY),
        )
    assert {
        "loc": ["body", "answers", "44250-9"],
        "type": "invalid_answer",
        "msg": "must be between 0 and 3",
    } in (refused.value.problems)
    assert store.assessments == {}


async def test_every_change_stores_the_person_who_made_it_and_names_them_in_its_event(ctx, store):
    patient_id, registered = await run(handlers.register_patient, ctx, store, registration())
    update = UpdatePatient(
        AGENCY, patient_id, {"preferred_language": "eu"}, by="cm-bo", by_role="care-manager"
    )
    _, updated = await run(handlers.update_patient, ctx, store, update)
    record = RecordConsent(
        AGENCY, patient_id, "referral", ["agency-food"], [], by="cm-bo", by_role="care-manager"
    )
    consent_id, recorded = await run(handlers.record_consent, ctx, store, record)
    revoke = RevokeConsent(AGENCY, patient_id, consent_id, by="sv-sam", by_role="supervisor")
    _, revoked = await run(handlers.revoke_consent, ctx, store, revoke)
    assess = AssessPatient(AGENCY, patient_id, "phq-9", dict.fromkeys(PHQ9_ITEMS, 1), **BY)
    assessment_id, assessed = await run(handlers.assess_patient, ctx, store, assess)

    actors = [
        (e.actor_id, e.actor_role)
        for uow, kind in [
            (registered, PatientRegistered),
            (updated, PatientUpdated),
            (recorded, ConsentRecorded),
            (revoked, ConsentRevoked),
            (assessed, PatientAssessed),
        ]
        for e in uow.events(kind)
    ]
    cm_ana, cm_bo, sv_sam = ("cm-ana", "care-manager"), ("cm-bo", "care-manager"), ("sv-sam", "supervisor")
    assert actors == [cm_ana, cm_bo, cm_bo, sv_sam, cm_ana]
    patient, consent = store.patients[patient_id], store.consents[consent_id]
    assert (patient["registered_by"], patient["registered_by_role"]) == cm_ana
    assert (patient["updated_by"], patient["updated_by_role"]) == cm_bo
    assert (consent["recorded_by"], consent["recorded_by_role"]) == cm_bo
    assert (consent["revoked_by"], consent["revoked_by_role"]) == sv_sam
    assessment = store.assessments[assessment_id]
    assert (assessment["assessed_by"], assessment["assessed_by_role"]) == cm_ana


async def test_safe_channels_are_stored_and_carried_by_the_registration(ctx, store):
    command = registration(safe_channels=[ContactChannel.in_person, ContactChannel.text, ContactChannel.text])
    patient_id, uow = await run(handlers.register_patient, ctx, store, command)
    assert store.patients[patient_id]["safe_channels"] == ["text", "in-person"]
    [event] = uow.events(PatientRegistered)
    assert event.safe_channels == ["text", "in-person"]
    unsaid, uow = await run(handlers.register_patient, ctx, store, registration(given_name="Ana"))
    assert store.patients[unsaid]["safe_channels"] is None
    assert [e.safe_channels for e in uow.events(PatientRegistered)] == [None]


async def test_a_patch_naming_safe_channels_replaces_them_and_null_clears_them(ctx, store, clock):
    patient_id = await registered(ctx, store, safe_channels=[ContactChannel.phone])
    events = []
    for changes in (
        {"safe_channels": [ContactChannel.in_person, ContactChannel.text]},
        {"safe_channels": [ContactChannel.text, ContactChannel.in_person]},  # the same list: nothing changes
        {"preferred_language": "eu"},
        {"safe_channels": None},
    ):
        clock.advance(minutes=5)
        _, uow = await run(
            handlers.update_patient, ctx, store, UpdatePatient(AGENCY, patient_id, changes, **BY)
        )
        events += uow.events(PatientUpdated)
    # Every PatientUpdated carries the current list, so a consumer keeps it; it is named when it changed.
    assert [(e.changed_fields, e.safe_channels) for e in events] == [
        (["safe_channels"], ["text", "in-person"]),
        (["preferred_language"], ["text", "in-person"]),
        (["safe_channels"], None),
    ]
    assert [(e.actor_id, e.actor_role) for e in events] == [("cm-ana", "care-manager")] * 3
    assert store.patients[patient_id]["safe_channels"] is None
    assert (store.patients[patient_id]["updated_by"], store.patients[patient_id]["updated_at"]) == (
        "cm-ana",
        clock.now,
    )


async def test_no_safe_channel_is_a_choice_not_a_silence(ctx, store):
    patient_id = await registered(ctx, store)
    _, uow = await run(
        handlers.update_patient, ctx, store, UpdatePatient(AGENCY, patient_id, {"safe_channels": []}, **BY)
    )
    [event] = uow.events(PatientUpdated)
    assert (event.changed_fields, event.safe_channels) == (["safe_channels"], [])


async def test_erasure_destroys_the_data_key_blanks_the_details_and_announces_it_without_the_reason(
    ctx, store
):
    patient_id = await registered(ctx, store)
    answers = dict.fromkeys(PHQ9_ITEMS, 1)
    _, assessed = await run(
        handlers.assess_patient, ctx, store, AssessPatient(AGENCY, patient_id, "phq-9", answers, **BY)
    )
    [sealed] = [e.sealed for e in assessed.events(PatientAssessed)]
    key = await store.keys.get(AGENCY, patient_id)
    assert (
        open_assessment(ctx.keys.data_key(patient_id, key), patient_id, sealed.model_dump())["answers"]
        == answers
    )

    erase = ErasePatient(AGENCY, patient_id, "the patient asked", by="sv-sam", by_role="supervisor")
    erased_at, uow = await run(erase_patient, ctx, store, erase)
    [announced] = uow.events(PatientErased)
    assert (announced.patient_id, announced.erased_at, announced.actor_id) == (
        patient_id,
        erased_at,
        "sv-sam",
    )
    assert "the patient asked" not in announced.model_dump_json()
    gone = await store.keys.get(AGENCY, patient_id)
    assert gone["wrapped"] is None and gone["erased_at"] == erased_at
    with pytest.raises(Erased):
        ctx.keys.data_key(patient_id, gone)
    # The sealed details no longer open, nothing is left in the clear, nor the blind index.
    [shown] = identified(ctx.keys, [await store.get_patient(AGENCY, patient_id)])
    assert (shown["given_name"], shown["family_name"], shown["phone"]) == (None, None, None)
    assert store.patients[patient_id]["duplicate_key"] is None
    with pytest.raises(PatientErasedAlready):  # once only
        await run(erase_patient, ctx, store, erase)
    # A read finds them gone (410), unless it reads what stays of them; another agency finds no one.
    with pytest.raises(PatientErasedAlready):
        await kept_patient(store, AGENCY, patient_id)
    assert (await kept_patient(store, AGENCY, patient_id, erased=True))["erased_at"] == erased_at
    with pytest.raises(handlers.PatientNotFound):
        await kept_patient(store, "agency-b", patient_id, erased=True)
    with pytest.raises(Gone):  # and nothing new is recorded about them
        await run(
            handlers.assess_patient, ctx, store, AssessPatient(AGENCY, patient_id, "phq-9", answers, **BY)
        )
