"""Identifying details kept only sealed, the blind index for likely duplicates, and the rows written
before sealing (read, refused as duplicates, sealed on change and by the background step), against an
in-memory store."""

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from careloop_shared.contracts import ContactPreference, PatientUpdated
from careloop_shared.crypto import KeyProblem, Unreadable
from careloop_shared.errors import Gone
from careloop_shared.testing.fakes import assert_fake_matches, run, run_step
from intake import handlers
from intake.config import IntakeSettings, refuse_development_keks_off_loopback
from intake.domain.commands import RegisterPatient, UpdatePatient
from intake.domain.patients import normalised_name
from intake.erasure.handlers import ErasePatient, erase_patient
from intake.identity.handlers import seal_identities_in_the_clear
from intake.identity.sealed import (
    DEV_BLIND_INDEX_KEY,
    IDENTIFYING,
    BlindIndex,
    identified,
    open_identity,
)
from intake.identity.store import IdentityStore

AGENCY = "agency-a"
BY = {"by": "cm-ana", "by_role": "care-manager"}
CANARIES = ("Quetzalcanary", "Vandersnoot", "1949-02-28", "555 0163", "canary@example.org", "94110")
CREATED = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def registration(**changes) -> RegisterPatient:
    fields = {
        "agency_id": AGENCY,
        "given_name": "Quetzalcanary",
        "family_name": "Vandersnoot",
        "birth_date": date(1949, 2, 28),
        "preferred_language": "en",
        "contact_preference": ContactPreference.phone,
        "phone": "+1 555 0163",
        "email": "canary@example.org",
        "postal_code": "94110",
        **BY,
    }
    return RegisterPatient(**{**fields, **changes})


def written_before_sealing(
    store, given_name: str, *, agency: str = AGENCY, erased: bool = False
) -> uuid.UUID:
    """A row as intake kept it before this change: the details in the clear, no data key."""
    patient_id = uuid.uuid4()
    store.patients[patient_id] = {
        "id": patient_id,
        "agency_id": agency,
        "given_name": given_name,
        "family_name": "Etxeberria",
        "name_key": normalised_name(given_name, "Etxeberria"),
        "birth_date": date(1958, 3, 14),
        "preferred_language": "es",
        "contact_preference": "text",
        "phone": "+1 555 0100",
        "email": None,
        "postal_code": "94110",
        "care_manager_id": "cm-ana",
        "safe_channels": None,
        "created_at": CREATED,
        "updated_at": CREATED,
        "erased_at": CREATED if erased else None,
    }
    return patient_id


async def shown(ctx, store, patient_id, agency=AGENCY) -> dict:
    [patient] = identified(ctx.keys, [await store.get_patient(agency, patient_id)])
    return patient


def test_the_fake_identity_store_answers_like_the_real_one(store):
    assert_fake_matches(IdentityStore, type(store.identity))


async def test_registration_keeps_the_details_only_sealed_bound_to_the_patient(ctx, store):
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration())
    row = store.patients[patient_id]
    assert not any(c in json.dumps(row, default=str) for c in CANARIES)
    assert row["identity"]["kid"] == f"{patient_id}/1" and len(row["duplicate_key"]) == 32
    patient = await shown(ctx, store, patient_id)
    assert {k: patient[k] for k in IDENTIFYING} == {k: getattr(registration(), k) for k in IDENTIFYING}
    assert "identity" not in patient and patient["preferred_language"] == "en"
    # Cut from this row and pasted into another patient's, it opens for no one.
    other, _ = await run(handlers.register_patient, ctx, store, registration(given_name="Ana"))
    other_key = ctx.keys.data_key(other, await store.keys.get(AGENCY, other))
    with pytest.raises(Unreadable):
        open_identity(other_key, other, row["identity"])


def test_the_blind_index_matches_one_person_in_one_agency_under_one_key():
    index = BlindIndex.from_setting(DEV_BLIND_INDEX_KEY)
    born = date(1958, 3, 14)
    same = index.likely_duplicate(AGENCY, normalised_name("Marisol", "Etxeberria"), born)
    assert same == index.likely_duplicate(AGENCY, normalised_name(" MARISÓL ", "etxeberria"), born)
    assert same != index.likely_duplicate("agency-b", normalised_name("Marisol", "Etxeberria"), born)
    assert same != index.likely_duplicate(AGENCY, normalised_name("Marisol", "Etxeberria"), date(1958, 3, 15))
    other_key = BlindIndex(b"k" * 32)
    assert same != other_key.likely_duplicate(AGENCY, normalised_name("Marisol", "Etxeberria"), born)


@pytest.mark.parametrize("setting", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_blind_index_key_that_cannot_be_used_is_refused_without_echoing_it(setting):
    with pytest.raises(KeyProblem) as refused:
        BlindIndex.from_setting(setting)
    assert "INTAKE_BLIND_INDEX_KEY" in str(refused.value) and setting not in str(refused.value)


def test_the_development_blind_index_key_is_refused_beyond_loopback():
    own_keks = "k1:" + base64.b64encode(b"k" * 32).decode()
    with pytest.raises(SystemExit, match="INTAKE_BLIND_INDEX_KEY"):
        refuse_development_keks_off_loopback(IntakeSettings(host="0.0.0.0", CARELOOP_KEKS=own_keks))
    own = base64.b64encode(b"b" * 32).decode()
    refuse_development_keks_off_loopback(
        IntakeSettings(host="0.0.0.0", CARELOOP_KEKS=own_keks, blind_index_key=own)
    )


async def test_an_update_seals_the_details_anew_and_a_new_name_a_new_blind_index(ctx, store, clock):
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration())
    before = dict(store.patients[patient_id])
    clock.advance(hours=1)
    change = UpdatePatient(AGENCY, patient_id, {"phone": "+1 555 0199"}, **BY)
    updated, uow = await run(handlers.update_patient, ctx, store, change)
    row = store.patients[patient_id]
    assert row["identity"] != before["identity"] and row["duplicate_key"] == before["duplicate_key"]
    assert "0199" not in json.dumps(row, default=str) and updated["phone"] == "+1 555 0199"
    assert (await shown(ctx, store, patient_id))["phone"] == "+1 555 0199"
    assert [e.changed_fields for e in uow.events(PatientUpdated)] == [["phone"]]

    renamed = UpdatePatient(AGENCY, patient_id, {"family_name": "Oyelaran"}, **BY)
    await run(handlers.update_patient, ctx, store, renamed)
    assert store.patients[patient_id]["duplicate_key"] != before["duplicate_key"]
    assert (await shown(ctx, store, patient_id))["family_name"] == "Oyelaran"
    # The old name is free again; the new one is taken.
    await run(handlers.register_patient, ctx, store, registration())
    with pytest.raises(handlers.LikelyDuplicate):
        await run(handlers.register_patient, ctx, store, registration(family_name="OYELARAN"))


async def test_an_erased_patient_cannot_be_changed(ctx, store):
    patient_id, _ = await run(handlers.register_patient, ctx, store, registration())
    erase = ErasePatient(AGENCY, patient_id, "the patient asked", by="sv-sam", by_role="supervisor")
    await run(erase_patient, ctx, store, erase)
    with pytest.raises(Gone):
        await run(
            handlers.update_patient, ctx, store, UpdatePatient(AGENCY, patient_id, {"phone": None}, **BY)
        )


async def test_a_row_written_before_sealing_is_read_and_its_person_refused_as_a_duplicate(ctx, store):
    legacy = written_before_sealing(store, "Marisol")
    assert (await shown(ctx, store, legacy))["given_name"] == "Marisol"
    with pytest.raises(handlers.LikelyDuplicate) as refused:
        await run(
            handlers.register_patient,
            ctx,
            store,
            registration(given_name="marisol", family_name="ETXEBERRIA", birth_date=date(1958, 3, 14)),
        )
    assert refused.value.body()["existing_id"] == legacy
    # Nor may another patient take that name by a change.
    other, _ = await run(handlers.register_patient, ctx, store, registration())
    change = {"given_name": "Marisol", "family_name": "Etxeberria", "birth_date": date(1958, 3, 14)}
    with pytest.raises(handlers.LikelyDuplicate):
        await run(handlers.update_patient, ctx, store, UpdatePatient(AGENCY, other, change, **BY))


async def test_changing_a_row_written_before_sealing_seals_it_with_a_new_data_key(ctx, store):
    legacy = written_before_sealing(store, "Marisol")
    await run(
        handlers.update_patient, ctx, store, UpdatePatient(AGENCY, legacy, {"preferred_language": "eu"}, **BY)
    )
    row = store.patients[legacy]
    assert row["identity"] is not None and row["duplicate_key"] is not None
    assert "Marisol" not in json.dumps(row, default=str) and row["name_key"] is None
    assert (await store.keys.get(AGENCY, legacy))["wrapped"] is not None
    patient = await shown(ctx, store, legacy)
    assert (patient["given_name"], patient["birth_date"], patient["preferred_language"]) == (
        "Marisol",
        date(1958, 3, 14),
        "eu",
    )


async def test_the_background_step_seals_rows_in_the_clear_a_batch_at_a_time(ctx, store):
    ctx = replace(ctx, identity_seal_batch_size=2)
    legacy = [written_before_sealing(store, name) for name in ("Ana", "Benat", "Carmen")]
    keyed = legacy[0]  # assessed before sealing: a data key kept already, which stays
    key, _ = ctx.keys.new(keyed)
    await store.keys.keep({**key, "agency_id": AGENCY, "created_at": CREATED})
    erased = written_before_sealing(store, "Erased", erased=True)
    registered, _ = await run(handlers.register_patient, ctx, store, registration())
    sealed_already = dict(store.patients[registered])

    more, _ = await run_step(seal_identities_in_the_clear, ctx, store)
    assert more is True and ctx.in_the_clear.remain is True
    more, _ = await run_step(seal_identities_in_the_clear, ctx, store)
    assert more is False
    more, _ = await run_step(seal_identities_in_the_clear, ctx, store)
    assert more is False and ctx.in_the_clear.remain is False

    for patient_id, name in zip(legacy, ("Ana", "Benat", "Carmen"), strict=True):
        row = store.patients[patient_id]
        assert name not in json.dumps(row, default=str) and row["updated_at"] == CREATED
        patient = await shown(ctx, store, patient_id)
        assert (patient["given_name"], patient["phone"], patient["postal_code"]) == (
            name,
            "+1 555 0100",
            "94110",
        )
    assert (await store.keys.get(AGENCY, keyed))["wrapped"] == key["wrapped"]
    assert store.patients[erased].get("identity") is None  # nothing left to seal
    assert store.patients[registered] == sealed_already
    # Sealed, the rows are still found as likely duplicates, through the blind index now.
    with pytest.raises(handlers.LikelyDuplicate) as refused:
        await run(
            handlers.register_patient,
            ctx,
            store,
            registration(given_name="Benat", family_name="Etxeberria", birth_date=date(1958, 3, 14)),
        )
    assert refused.value.body()["existing_id"] == legacy[1]
