"""A patient's data key released to the services intake's key-release rules name, against an in-memory
store: the same key intake seals the patient's details with, made for a patient registered before keys
existed, never to a person or a service the rules do not name, never for an erased patient."""

import uuid
from datetime import UTC, date, datetime

import pytest

from careloop_shared.contracts import ContactPreference
from careloop_shared.crypto import open_sealed, seal
from careloop_shared.testing.fakes import run
from intake import handlers
from intake.domain.commands import RegisterPatient, ReleaseDataKey
from intake.domain.key_release import KeyNotReleased
from intake.erasure.handlers import ErasePatient, PatientErasedAlready, erase_patient
from intake.identity.sealed import open_identity
from intake.key_release.handlers import release_data_key

AGENCY = "agency-a"
CAREPLAN = {"by": "careplan", "by_role": "service"}  # a service, as its token names it
CREATED = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


async def registered(ctx, store) -> uuid.UUID:
    command = RegisterPatient(
        agency_id=AGENCY,
        given_name="Marisol",
        family_name="Etxeberria",
        birth_date=date(1958, 3, 14),
        preferred_language="es",
        contact_preference=ContactPreference.phone,
        phone="+1 555 0100",
        by="cm-ana",
        by_role="care-manager",
    )
    patient_id, _ = await run(handlers.register_patient, ctx, store, command)
    return patient_id


def registered_before_keys(store) -> uuid.UUID:
    """A patient as intake kept them before data keys: details in the clear, no key."""
    patient_id = uuid.uuid4()
    store.patients[patient_id] = {
        "id": patient_id,
        "agency_id": AGENCY,
        "given_name": "Benat",
        "family_name": "Etxeberria",
        "birth_date": date(1958, 3, 14),
        "preferred_language": "es",
        "contact_preference": "text",
        "phone": "+1 555 0101",
        "care_manager_id": "cm-ana",
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    return patient_id


def asking(patient_id, agency=AGENCY, **who) -> ReleaseDataKey:
    return ReleaseDataKey(agency, patient_id, **(who or CAREPLAN))


async def test_a_service_the_rules_name_gets_the_key_intake_seals_the_patient_with(ctx, store):
    patient_id = await registered(ctx, store)
    for service in ("careplan", "referral", "followup"):
        released, uow = await run(
            release_data_key, ctx, store, asking(patient_id, by=service, by_role="service")
        )
        assert released.kid == f"{patient_id}/1"
        # The very key that sealed the patient's details at registration opens them.
        identity = store.patients[patient_id]["identity"]
        assert open_identity(released.key, patient_id, identity)["given_name"] == "Marisol"
        assert uow.pending == []  # a release announces nothing
    assert len(store.keys.rows) == 1  # and keeps no other key


async def test_what_a_service_seals_with_the_released_key_is_bound_to_the_patient_and_field(ctx, store):
    patient_id = await registered(ctx, store)
    released, _ = await run(release_data_key, ctx, store, asking(patient_id))
    sealed = seal(released.key, released.kid, patient_id, "care-team-member", {"name": "Iker"})
    again, _ = await run(release_data_key, ctx, store, asking(patient_id, by="referral", by_role="service"))
    assert again == released
    assert open_sealed(again.key, sealed, patient_id, "care-team-member") == {"name": "Iker"}


@pytest.mark.parametrize(
    "who",
    [
        {"by": "analytics", "by_role": "service"},  # a service the rules do not name
        {"by": "careplan", "by_role": "care-manager"},  # a person, whatever their id
        {"by": "careplan", "by_role": "supervisor"},
        {"by": "careplan", "by_role": "analyst"},
    ],
)
async def test_no_one_else_gets_a_key_and_nothing_about_the_patient_is_read_first(ctx, store, who):
    patient_id = await registered(ctx, store)
    for asked_for in (patient_id, uuid.uuid4()):  # a patient or none: the same refusal
        with pytest.raises(KeyNotReleased) as refused:
            await run(release_data_key, ctx, store, asking(asked_for, **who))
        assert refused.value.status_code == 403
        assert who["by"] not in str(refused.value)


async def test_another_agencys_patient_or_none_is_not_found(ctx, store):
    patient_id = await registered(ctx, store)
    for command in (asking(patient_id, agency="agency-b"), asking(uuid.uuid4())):
        with pytest.raises(handlers.PatientNotFound):
            await run(release_data_key, ctx, store, command)
    assert set(store.keys.rows) == {patient_id}


async def test_an_erased_patients_key_is_gone_and_the_refusal_says_when(ctx, store):
    patient_id = await registered(ctx, store)
    erasure = ErasePatient(AGENCY, patient_id, "the patient asked", by="sv-sam", by_role="supervisor")
    erased_at, _ = await run(erase_patient, ctx, store, erasure)
    with pytest.raises(PatientErasedAlready) as refused:
        await run(release_data_key, ctx, store, asking(patient_id))
    assert refused.value.status_code == 410
    assert refused.value.body()["erased_at"] == str(erased_at)


async def test_a_patient_registered_before_keys_existed_gets_one_made_and_kept_once(ctx, store, clock):
    patient_id = registered_before_keys(store)
    made_at = clock.now
    first, _ = await run(release_data_key, ctx, store, asking(patient_id))
    kept = store.keys.rows[patient_id]
    assert (kept["agency_id"], kept["created_at"], kept["wrapped"] is not None) == (AGENCY, made_at, True)
    assert ctx.keys.data_key(patient_id, kept) == first.key  # kept only wrapped, the same key
    assert first.kid == f"{patient_id}/1"
    clock.advance(minutes=5)
    again, _ = await run(release_data_key, ctx, store, asking(patient_id, by="followup", by_role="service"))
    assert again == first
    assert store.keys.rows[patient_id]["created_at"] == made_at  # the one made first, not another


def test_the_shipped_rules_name_the_services_that_seal_notes_and_say_what_each_seals(ctx):
    rules = ctx.key_release
    assert set(rules.services) == {"careplan", "referral", "followup"}  # analytics is never among them
    assert all(holder.purpose.startswith("seals ") for holder in rules.services.values())
