"""Identifying details kept only sealed, on the real database: no detail in the clear in ``patients``
(canaries), likely duplicates refused through the blind index, reads and changes through the sealed
document, the rows written before sealing read, refused as duplicates and sealed, and nothing left to
read after erasure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import intake
from careloop_shared import db
from careloop_shared.contracts import ContactPreference, ReferralMade, ReferralStatusChanged
from careloop_shared.crypto import Erased
from careloop_shared.db import ALL_AGENCIES, as_agency, insert_row
from careloop_shared.outbox import unit_of_work
from careloop_shared.testing import bearer, eventually, served, settings_for
from careloop_shared.testing.fakes import received
from intake import handlers
from intake.config import IntakeContext
from intake.domain.commands import RecordConsent, RegisterPatient, UpdatePatient
from intake.domain.patients import normalised_name
from intake.identity.handlers import seal_identities_in_the_clear
from intake.identity.sealed import IDENTIFYING, identified
from intake.main import IntakeSettings, build_app
from intake.referred.api import minimum_shown, visible_to
from intake.referred.handlers import when_referral_made_grant_access, when_referral_status_changed_end_access
from intake.store import IntakeStore

pytestmark = pytest.mark.integration

A, B = "agency-a", "agency-b"
BY = {"by": "cm-ana", "by_role": "care-manager"}
MIGRATIONS = [
    *db.kernel_migrations(),
    *db.folder_migrations("intake", Path(intake.__file__).parent / "migrations"),
]
BEFORE_SEALING = [m for m in MIGRATIONS if not m[0].startswith("intake/") or m[0] < "intake/008"]
CREATED = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
BORN = date(1958, 3, 14)
# Patients registered before the details were sealed: given name -> agency (Amaia assessed, so keyed).
LEGACY = {"Amaia": A, "Benat": A, "Carmen": B}
# Values that can only come from this test.
CANARY = {
    "given_name": "Quetzalcanary",
    "family_name": "Vandersnoot",
    "birth_date": "1949-02-28",
    "preferred_language": "en",
    "contact_preference": "phone",
    "phone": "+1 555 0163",
    "email": "quetzal@canary.example",
    "postal_code": "Q9Z 4K7",
}
SECRETS = ("Quetzalcanary", "Vandersnoot", "1949-02-28", "555 0163", "quetzal@canary", "Q9Z 4K7")


def auth(agency: str, role: str = "care-manager", subject: str = "cm-ada") -> dict[str, str]:
    return bearer(agency, role, subject)


def legacy_row(given_name: str, agency: str, **changes: Any) -> dict[str, Any]:
    """A patient as intake kept them before sealing: every detail in the clear."""
    return {
        "id": uuid.uuid4(),
        "agency_id": agency,
        "given_name": given_name,
        "family_name": "Etxeberria",
        "name_key": normalised_name(given_name, "Etxeberria"),
        "birth_date": BORN,
        "preferred_language": "es",
        "contact_preference": "text",
        "phone": "+1 555 0100",
        "email": f"{given_name.lower()}@legacy.example",
        "postal_code": "94110",
        "care_manager_id": "cm-ana",
        "created_at": CREATED,
        "updated_at": CREATED,
        "registered_by": "cm-ana",
        "registered_by_role": "care-manager",
        **changes,
    }


async def intake_before_sealing(url: str, ctx: IntakeContext) -> dict[str, uuid.UUID]:
    """intake's database as it was before 008, with patients in the clear: by given name ("Erased": one
    erased then, as erasure left them)."""
    pool = await db.create_pool(url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, BEFORE_SEALING)
        rows = [legacy_row(name, agency) for name, agency in LEGACY.items()]
        erased = legacy_row(
            "", A, family_name="", name_key="erased:x", phone=None, email=None, erased_at=CREATED
        )
        with as_agency(ALL_AGENCIES):
            for row in [*rows, erased]:
                await insert_row(pool, "patients", row)
            key, _ = ctx.keys.new(rows[0]["id"])  # Amaia was assessed: her data key is kept already
            await insert_row(pool, "patient_keys", {**key, "agency_id": A, "created_at": CREATED})
    finally:
        await pool.close()
    return {**{r["given_name"]: r["id"] for r in rows}, "Erased": erased["id"]}


async def rows_as_text(pool: asyncpg.Pool) -> str:
    with as_agency(ALL_AGENCIES):
        return "\n".join(r[0] for r in await pool.fetch("SELECT p::text FROM patients p"))


@dataclass
class ByHand:
    """intake's use cases and background step over a migrated database, nothing running on its own."""

    pool: asyncpg.Pool
    ctx: IntakeContext
    ids: dict[str, uuid.UUID]

    async def run(self, agency: str, handler: Any, message: Any) -> Any:
        with as_agency(agency):
            async with unit_of_work(self.pool, lambda t: t, store=IntakeStore) as uow:
                return await handler(self.ctx, uow, message)

    async def seal_a_batch(self) -> bool:
        more: bool = await self.run(
            ALL_AGENCIES, lambda ctx, uow, _: seal_identities_in_the_clear(ctx, uow), None
        )
        return more

    async def shown(self, agency: str, patient_id: uuid.UUID) -> dict[str, Any]:
        with as_agency(agency):
            [patient] = identified(
                self.ctx.keys, [await IntakeStore(self.pool).get_patient(agency, patient_id)]
            )
        return patient

    def registration(self, given_name: str, agency: str = A, **changes: Any) -> RegisterPatient:
        fields = {"family_name": "Etxeberria", "birth_date": BORN, "preferred_language": "es", **changes}
        return RegisterPatient(
            agency_id=agency,
            given_name=given_name,
            contact_preference=ContactPreference.text,
            phone="+1 555 0101",
            **BY,
            **fields,
        )


@pytest_asyncio.fixture
async def by_hand(database_factory):
    url = await database_factory("intake_identity")
    ctx = replace(IntakeContext.from_settings(IntakeSettings()), identity_seal_batch_size=2)
    ids = await intake_before_sealing(url, ctx)
    pool = await db.create_pool(url, min_size=1, max_size=4)
    await db.migrate(pool, MIGRATIONS)  # 008 now, as a service starting with this change would
    yield ByHand(pool, ctx, ids)
    await pool.close()


async def test_rows_written_before_sealing_are_read_refused_as_duplicates_and_sealed_in_batches(by_hand):
    s, ids = by_hand, by_hand.ids
    before = {name: await s.shown(agency, ids[name]) for name, agency in LEGACY.items()}
    assert (before["Amaia"]["given_name"], before["Amaia"]["birth_date"]) == ("Amaia", BORN)
    assert before["Carmen"]["email"] == "carmen@legacy.example"
    # While they are in the clear, registering one of them again is refused, naming them.
    with pytest.raises(handlers.LikelyDuplicate) as refused:
        await s.run(A, handlers.register_patient, s.registration(" amaia ", family_name="ETXEBERRIA"))
    assert refused.value.body()["existing_id"] == ids["Amaia"]

    # The background step seals two a transaction; the erased patient has nothing left to seal.
    assert await s.seal_a_batch() is True
    assert await s.seal_a_batch() is False
    assert await s.seal_a_batch() is False and s.ctx.in_the_clear.remain is False
    text = await rows_as_text(s.pool)
    assert not any(v in text for v in (*LEGACY, "Etxeberria", "555 0100", "legacy.example", "1958-03-14"))
    for name, agency in LEGACY.items():
        assert await s.shown(agency, ids[name]) == before[name]  # updated_at too: nothing changed
    with as_agency(ALL_AGENCIES):
        keys = {
            r["patient_id"]: r["wrapped"]
            for r in await s.pool.fetch("SELECT patient_id, wrapped FROM patient_keys")
        }
    assert set(keys) == {ids[n] for n in LEGACY}  # made for those registered before keys existed

    # Sealed, they are found by the blind index: in their agency only.
    with pytest.raises(handlers.LikelyDuplicate) as refused:
        await s.run(A, handlers.register_patient, s.registration("BENAT"))
    assert refused.value.body()["existing_id"] == ids["Benat"]
    assert await s.run(A, handlers.register_patient, s.registration("Carmen")) not in ids.values()


async def test_changing_a_row_written_before_sealing_seals_it_and_only_it(by_hand):
    s, ids = by_hand, by_hand.ids
    change = UpdatePatient(A, ids["Benat"], {"phone": "+1 555 0199"}, **BY)
    updated = await s.run(A, handlers.update_patient, change)
    assert (updated["given_name"], updated["phone"]) == ("Benat", "+1 555 0199")
    with as_agency(ALL_AGENCIES):
        rows = {
            r["id"]: r for r in await s.pool.fetch("SELECT id, identity, given_name, phone FROM patients")
        }
    assert rows[ids["Benat"]]["identity"] is not None
    assert (rows[ids["Benat"]]["given_name"], rows[ids["Benat"]]["phone"]) == (None, None)
    assert rows[ids["Amaia"]]["identity"] is None and rows[ids["Amaia"]]["given_name"] == "Amaia"
    assert (await s.shown(A, ids["Benat"]))["phone"] == "+1 555 0199"
    # Renaming another patient into a patient still in the clear is refused.
    other = await s.run(A, handlers.register_patient, s.registration("Dolores"))
    rename = UpdatePatient(A, other, {"given_name": "Amaia"}, **BY)
    with pytest.raises(handlers.LikelyDuplicate) as refused:
        await s.run(A, handlers.update_patient, rename)
    assert refused.value.body()["existing_id"] == ids["Amaia"]


@pytest_asyncio.fixture(scope="module")
async def service(infra, database_factory):
    settings = settings_for(IntakeSettings, infra, await database_factory("intake_identity_service"))
    ids = await intake_before_sealing(settings.database_url, IntakeContext.from_settings(settings))
    app = build_app(settings)
    async with served(app, "http://intake") as (c, runtime):
        yield c, runtime, ids


async def _all_sealed(runtime) -> bool:
    with as_agency(ALL_AGENCIES):
        left = await runtime.pool.fetchval(
            "SELECT count(*) FROM patients WHERE identity IS NULL AND erased_at IS NULL"
        )
    return bool(left == 0)


async def test_the_service_seals_the_rows_in_the_clear_in_the_background_as_it_serves(service):
    client, runtime, ids = service
    await eventually(lambda: _all_sealed(runtime), timeout=30, what="every row sealed")
    r = await client.get(f"/v1/patients/{ids['Benat']}", headers=auth(A))
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("given_name", "birth_date", "phone", "postal_code")} == {
        "given_name": "Benat",
        "birth_date": "1958-03-14",
        "phone": "+1 555 0100",
        "postal_code": "94110",
    }
    assert r.json()["updated_at"] == CREATED.isoformat().replace("+00:00", "Z")
    text = await rows_as_text(runtime.pool)
    assert not any(n in text for n in LEGACY)


async def test_the_patients_table_holds_no_identifying_detail_in_the_clear_and_reads_open_them(service):
    client, runtime, _ = service
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    r = await client.post("/v1/patients", json=CANARY, headers=auth(agency))
    assert r.status_code == 201, r.text
    patient_id = r.json()["id"]
    text = await rows_as_text(runtime.pool)
    assert patient_id in text and not any(s in text for s in SECRETS)

    got = (await client.get(f"/v1/patients/{patient_id}", headers=auth(agency))).json()
    assert {k: got[k] for k in IDENTIFYING} == {k: CANARY[k] for k in IDENTIFYING}
    listed = (await client.get("/v1/patients", headers=auth(agency))).json()["items"]
    assert [(p["id"], p["family_name"]) for p in listed] == [(patient_id, "Vandersnoot")]
    fhir = (await client.get(f"/fhir/R4/Patient/{patient_id}", headers=auth(agency))).json()
    assert (fhir["name"][0]["given"], fhir["birthDate"]) == (["Quetzalcanary"], "1949-02-28")
    assert fhir["address"] == [{"postalCode": "Q9Z 4K7"}]

    change = {"phone": "+1 555 0177", "family_name": "Vandersnootova"}
    patched = await client.patch(f"/v1/patients/{patient_id}", json=change, headers=auth(agency))
    assert patched.status_code == 200 and patched.json()["family_name"] == "Vandersnootova", patched.text
    again = (await client.get(f"/v1/patients/{patient_id}", headers=auth(agency))).json()
    assert (again["phone"], again["family_name"], again["given_name"], again["birth_date"]) == (
        "+1 555 0177",
        "Vandersnootova",
        "Quetzalcanary",
        "1949-02-28",
    )
    text = await rows_as_text(runtime.pool)
    assert not any(s in text for s in (*SECRETS, "555 0177", "Vandersnootova"))


async def test_a_likely_duplicate_is_refused_naming_the_patient_it_duplicates(service):
    client, _, _ = service
    agency = auth(f"agency-{uuid.uuid4().hex[:6]}")
    first = await client.post("/v1/patients", json=CANARY, headers=agency)
    twin = {**CANARY, "given_name": " QUETZALCANARY ", "family_name": "vandersnoot", "phone": "+1 555 0111"}
    refused = await client.post("/v1/patients", json=twin, headers=agency)
    assert refused.status_code == 409 and refused.json()["existing_id"] == first.json()["id"], refused.text
    assert not any(s in refused.text for s in SECRETS)
    elsewhere = await client.post("/v1/patients", json=twin, headers=auth(f"agency-{uuid.uuid4().hex[:6]}"))
    assert elsewhere.status_code == 201

    other = await client.post("/v1/patients", json={**CANARY, "birth_date": "1949-03-01"}, headers=agency)
    moved = await client.patch(
        f"/v1/patients/{other.json()['id']}", json={"birth_date": "1949-02-28"}, headers=agency
    )
    assert moved.status_code == 409 and moved.json()["existing_id"] == first.json()["id"], moved.text
    kept = await client.get(f"/v1/patients/{other.json()['id']}", headers=agency)
    assert kept.json()["birth_date"] == "1949-03-01"


async def test_after_erasure_nothing_identifying_can_be_read(service):
    client, runtime, _ = service
    agency_id = f"agency-{uuid.uuid4().hex[:6]}"
    agency, supervisor = auth(agency_id), auth(agency_id, role="supervisor", subject="sv-sam")
    patient_id = (await client.post("/v1/patients", json=CANARY, headers=agency)).json()["id"]
    erased = await client.post(
        f"/v1/patients/{patient_id}/erasure", json={"reason": "the patient's request"}, headers=supervisor
    )
    assert erased.status_code == 200, erased.text

    with as_agency(agency_id):
        row = await runtime.pool.fetchrow(
            "SELECT p.*, k.kek_id, k.wrapped FROM patients p JOIN patient_keys k ON k.patient_id = p.id"
            " WHERE p.id = $1",
            uuid.UUID(patient_id),
        )
    assert row["duplicate_key"] is None and row["identity"] is not None  # the ciphertext, unopenable
    assert not any(s in str(dict(row)) for s in SECRETS)
    with pytest.raises(Erased):
        runtime.context.keys.data_key(uuid.UUID(patient_id), row)
    [shown] = identified(
        runtime.context.keys, [{**row, "key_version": 1, "key_kek_id": None, "key_wrapped": None}]
    )
    assert {k: shown[k] for k in IDENTIFYING} == dict.fromkeys(IDENTIFYING)
    for path in (f"/v1/patients/{patient_id}", f"/fhir/R4/Patient/{patient_id}"):
        gone = await client.get(path, headers=supervisor)
        assert gone.status_code == 410 and not any(s in gone.text for s in SECRETS), path
    assert (await client.get("/v1/patients", headers=supervisor)).json()["items"] == []
    # The blind index went with it: the same person may be registered anew.
    again = await client.post("/v1/patients", json=CANARY, headers=agency)
    assert again.status_code == 201 and again.json()["id"] != patient_id


async def test_a_receiving_agency_reads_a_referred_patients_key_only_while_the_referral_is_open(service):
    _, runtime, _ = service
    ctx, store = runtime.context, IntakeStore(runtime.pool)
    a, b = f"agency-{uuid.uuid4().hex[:6]}", f"agency-food-{uuid.uuid4().hex[:6]}"

    async def run(agency: str, handler: Any, message: Any) -> Any:
        with as_agency(agency):
            async with runtime.uow() as uow:
                return await handler(ctx, uow, message)

    registration = RegisterPatient(
        agency_id=a,
        given_name="Referida",
        family_name="Oyelaran",
        birth_date=BORN,
        preferred_language="es",
        contact_preference=ContactPreference.text,
        phone="+1 555 0142",
        **BY,
    )
    patient = await run(a, handlers.register_patient, registration)
    await run(a, handlers.record_consent, RecordConsent(a, patient, "referral", [b], [], **BY))
    others = await run(a, handlers.register_patient, replace(registration, given_name="Otra"))
    made = ReferralMade(
        patient_id=patient,
        agency_id=a,
        referral_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        need="food-insecurity",
        program_id="food-bank-1",
        receiving_agency_id=b,
        status="requested",
        response_due_at=datetime(2026, 11, 9, tzinfo=UTC),
    )
    await run(ALL_AGENCIES, when_referral_made_grant_access, received(made))

    async def keys_b_reads() -> set[uuid.UUID]:
        with as_agency(b):
            return {r[0] for r in await runtime.pool.fetch("SELECT patient_id FROM patient_keys")}

    assert await keys_b_reads() == {patient} and others not in await keys_b_reads()
    with as_agency(b):
        [shown] = await minimum_shown(ctx, store, await visible_to(store, b, ctx.clock()))
    assert (shown.given_name, shown.family_name, shown.phone) == ("Referida", "Oyelaran", "+1 555 0142")
    closed = ReferralStatusChanged(
        patient_id=patient,
        agency_id=a,
        referral_id=made.referral_id,
        plan_id=made.plan_id,
        intervention_id=made.intervention_id,
        from_status="accepted",
        to_status="completed",
        by_agency_id=b,
        by_party="target",
        changed_at=datetime.now(UTC),
    )
    await run(ALL_AGENCIES, when_referral_status_changed_end_access, received(closed))
    assert await keys_b_reads() == set()
