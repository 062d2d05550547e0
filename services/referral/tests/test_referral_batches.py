"""referral's consumer over its real database: what intake says of patients, consumed as one batch,
costs as many statements for forty patients as for twenty, the newest details stand, and consents with
no referral waiting for them cost one statement for their rows and one look-up a batch."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from careloop_shared.contracts import ConsentRecorded, PatientRegistered, PatientUpdated
from careloop_shared.testing.batches import (
    apply_batch,
    batches_of_growing_size,
    by_patient,
    scans,
    service_pool,
    without_statistics,
)
from careloop_shared.testing.intake_events import REGISTERED_AT, registered, updated
from referral import main
from referral.consumers import HANDLERS
from referral.loop.batches import CONSENTS_OF, FORGET_INTERVENTIONS, REFERRED, consents_of
from referral.store import ReferralStore

pytestmark = pytest.mark.integration

AT = REGISTERED_AT


def _registered(patient: uuid.UUID) -> PatientRegistered:
    return registered(patient, postal_area="941")


def _updated(patient: uuid.UUID, language: str, at: datetime) -> PatientUpdated:
    return updated(patient, language, at, postal_area="100")


def _consent(patient: uuid.UUID) -> ConsentRecorded:
    return ConsentRecorded(
        patient_id=patient,
        agency_id="agency-a",
        consent_id=uuid.uuid4(),
        purpose="referral",
        agencies=[],
        program_categories=["food"],
        period_start=AT,
        recorded_at=AT,
    )


async def _details(pool, patients: list[uuid.UUID]) -> list[tuple]:
    return await by_patient(pool, "patients", "preferred_language, contact_preference, postal_area", patients)


async def test_registrations_share_statements_and_the_newest_details_stand(database_factory, ctx):
    pool = await service_pool(database_factory, "referral", Path(main.__file__).parent / "migrations")
    try:
        grown = await batches_of_growing_size(pool, "referral", HANDLERS, ReferralStore, ctx, _registered)
        for patients, _ in grown.values():
            assert await _details(pool, patients) == [("es", "text", "941")] * len(patients)
        assert len(grown[40][1]) == len(grown[20][1]), grown[40][1]

        # One batch: a patient registered and updated in that order, another's update sent before its
        # registration (applied in an earlier batch: it changes nothing), a third's newer update.
        first, late, newer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await apply_batch(
            pool, "referral", HANDLERS, ReferralStore, ctx, [_registered(late), _registered(newer)]
        )
        batch = [
            _registered(first),
            _updated(late, "fr", AT - timedelta(hours=1)),
            _updated(newer, "fr", AT + timedelta(hours=1)),
            _updated(first, "de", AT + timedelta(hours=2)),
        ]
        await apply_batch(pool, "referral", HANDLERS, ReferralStore, ctx, batch)
        assert await _details(pool, [first, late, newer]) == [
            ("de", "phone", "100"),
            ("es", "text", "941"),
            ("fr", "phone", "100"),
        ]
    finally:
        await pool.close()


async def test_a_batchs_consents_are_probed_by_patient_in_a_big_table_without_statistics(database_factory):
    """The consents a batch of referrals looks up are read by index, patient by patient, whatever the
    planner knows: 10,000 consents in a table never analyzed (a fresh platform's first minutes), 300
    patients asked at once, one of them twice, each patient's consents once."""
    pool = await service_pool(database_factory, "referral", Path(main.__file__).parent / "migrations")
    try:
        await without_statistics(pool, "consents")
        made = await pool.fetch(
            "INSERT INTO consents (id, patient_id, agency_id, purpose, agencies, program_categories,"
            " period_start) SELECT gen_random_uuid(), gen_random_uuid(), 'agency-a', 'referral', '[]', '[]',"
            " now() FROM generate_series(1, 10000) RETURNING patient_id, id"
        )
        await without_statistics(pool, "consents")  # still, with the rows in
        consent_of = {r["patient_id"]: r["id"] for r in made}
        asked = [r["patient_id"] for r in made[:300]] + [made[0]["patient_id"]]
        async with pool.acquire() as conn:
            read = await scans(conn, CONSENTS_OF, asked)
            assert {node for node, _ in read} <= {"Index Scan", "Bitmap Heap Scan", "Function Scan"}, read
            found = await consents_of(conn, asked)
        assert [[c.id for c in consents] for consents in found] == [[consent_of[p]] for p in asked]
    finally:
        await pool.close()


async def test_a_new_plans_earlier_interventions_and_referrals_are_found_by_index_without_statistics(
    database_factory,
):
    """A batch of plans forgets its patients' earlier interventions, and asks which interventions have
    their referral, by index: 10,000 plans of two interventions and 5,000 referrals in tables never
    analyzed, a batch of 300 patients (two with earlier interventions) deletes just those (as
    ``patient_id = ANY``, the delete was planned as a scan of every intervention)."""
    pool = await service_pool(database_factory, "referral", Path(main.__file__).parent / "migrations")
    try:
        for table in ("plans", "plan_interventions", "referrals"):
            await without_statistics(pool, table)
        patients = await pool.fetchval(
            "WITH p AS (INSERT INTO plans (patient_id, agency_id, plan_id, version, status, updated_at)"
            " SELECT gen_random_uuid(), 'agency-a', gen_random_uuid(), 1, 'active', now()"
            " FROM generate_series(1, 10000) RETURNING patient_id) SELECT array_agg(patient_id) FROM p"
        )
        await pool.execute(
            "INSERT INTO plan_interventions (intervention_id, patient_id, agency_id, need, kind, priority,"
            " needs_referral, status) SELECT gen_random_uuid(), p, 'agency-a', n, 'service', 'routine', true,"
            " 'proposed'"
            " FROM unnest($1::uuid[]) AS p, unnest(ARRAY['food', 'housing']) AS n",
            patients,
        )
        await pool.execute(
            "INSERT INTO referrals (id, patient_id, agency_id, plan_id, intervention_id, need, program_id,"
            " receiving_agency_id, status, created_at, service_request_id, updated_at)"
            " SELECT gen_random_uuid(), i.patient_id, 'agency-a', gen_random_uuid(), i.intervention_id,"
            " i.need, 'program-1', 'agency-b', 'requested', now(), gen_random_uuid(), now()"
            " FROM plan_interventions i WHERE i.need = 'food' LIMIT 5000"
        )
        for table in ("plans", "plan_interventions", "referrals"):
            await without_statistics(pool, table)  # still, with the rows in
        batch = [*patients[:2], *(uuid.uuid4() for _ in range(298))]
        async with pool.acquire() as conn:
            for sql in (FORGET_INTERVENTIONS, REFERRED):
                read = await scans(conn, sql, batch)
                assert "Seq Scan" not in {node for node, _ in read}, (sql, read)
            await conn.execute(FORGET_INTERVENTIONS, batch)
        left = await pool.fetchval("SELECT count(DISTINCT patient_id) FROM plan_interventions")
        assert left == 10000 - 2
        assert not await pool.fetchval(
            "SELECT count(*) FROM plan_interventions WHERE patient_id = ANY($1::uuid[])", batch
        )
    finally:
        await pool.close()


async def test_consents_nothing_waits_for_cost_one_row_statement_and_one_look_up_a_batch(
    database_factory, ctx
):
    pool = await service_pool(database_factory, "referral", Path(main.__file__).parent / "migrations")
    try:
        warm_up = [_consent(uuid.uuid4()), _consent(uuid.uuid4())]  # asyncpg learns the row type it sends
        await apply_batch(pool, "referral", HANDLERS, ReferralStore, ctx, warm_up)
        patients = [uuid.uuid4() for _ in range(10)]
        sent = await apply_batch(
            pool, "referral", HANDLERS, ReferralStore, ctx, [_consent(p) for p in patients]
        )
        assert len(sent) == 3, sent  # the inbox, the consents' rows, the referrals waiting for them (none)
        stored = await pool.fetchval(
            "SELECT count(*) FROM consents WHERE patient_id = ANY($1::uuid[])", patients
        )
        assert stored == len(patients)
        # A patient's second consent in a batch: one consent at a time (its row, its look-up).
        again = [_consent(patients[0]), _consent(patients[0])]
        assert len(await apply_batch(pool, "referral", HANDLERS, ReferralStore, ctx, again)) == 1 + 2 * 2
    finally:
        await pool.close()
