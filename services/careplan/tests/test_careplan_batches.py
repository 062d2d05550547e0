"""careplan's consumer over its real database: what intake says of patients, consumed as one batch,
costs as many statements for forty patients as for twenty, and each patient keeps what its newest event
said (a patient's two events in one batch in order, an older one arriving late changing nothing)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from careloop_shared.contracts import (
    ContactChannel,
    ContactPreference,
    PatientRegistered,
    PlanUpdated,
)
from careloop_shared.testing.batches import apply_batch, batches_of_growing_size, by_patient, service_pool
from careloop_shared.testing.intake_events import REGISTERED_AT, depression_found, registered, updated
from careplan import main
from careplan.consumers import HANDLERS
from careplan.store import CareplanStore

pytestmark = pytest.mark.integration

AT = REGISTERED_AT


def _registered(patient: uuid.UUID) -> PatientRegistered:
    return registered(patient, safe_channels=[ContactChannel.text])


async def _preferences(pool, patients: list[uuid.UUID]) -> list[tuple]:
    return await by_patient(
        pool, "patients", "preferred_language, contact_preference, safe_channels", patients
    )


async def test_registrations_share_statements_and_the_newest_details_stand(database_factory, ctx):
    pool = await service_pool(database_factory, "careplan", Path(main.__file__).parent / "migrations")
    try:
        grown = await batches_of_growing_size(pool, "careplan", HANDLERS, CareplanStore, ctx, _registered)
        for patients, _ in grown.values():
            assert await _preferences(pool, patients) == [("es", "text", ["text"])] * len(patients)
        assert len(grown[40][1]) == len(grown[20][1]), grown[40][1]

        # In one batch: a patient registered and updated (in that order), another's update sent before
        # its registration (which was applied first, so it changes nothing), a third's newer update.
        first, late, newer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        before = [_registered(late), _registered(newer)]
        await apply_batch(pool, "careplan", HANDLERS, CareplanStore, ctx, before, [AT, AT])
        batch = [
            _registered(first),
            updated(late, "fr", AT - timedelta(hours=1)),
            updated(newer, "fr", AT + timedelta(hours=1)),
            updated(first, "de", AT + timedelta(hours=2)),
        ]
        times = [AT, AT - timedelta(hours=1), AT + timedelta(hours=1), AT + timedelta(hours=2)]
        await apply_batch(pool, "careplan", HANDLERS, CareplanStore, ctx, batch, times)
        assert await _preferences(pool, [first, late, newer]) == [
            ("de", "phone", None),
            ("es", "text", ["text"]),
            ("fr", "phone", None),
        ]
    finally:
        await pool.close()


async def test_patients_with_plans_get_their_plans_personalised_side_by_side(database_factory, ctx):
    pool = await service_pool(database_factory, "careplan", Path(main.__file__).parent / "migrations")
    try:
        patients = [uuid.uuid4() for _ in range(6)]
        registrations = [_registered(p) for p in patients]
        await apply_batch(pool, "careplan", HANDLERS, CareplanStore, ctx, registrations, [AT] * len(patients))
        assessments = [depression_found(p) for p in patients]
        await apply_batch(pool, "careplan", HANDLERS, CareplanStore, ctx, assessments)
        assert await by_patient(pool, "plans", "version", patients) == [(1,)] * len(patients)

        later = AT + timedelta(hours=1)
        # No contact: follow-ups in person only, a new version of each plan.
        changes = [
            updated(p, "es", later, contact_preference=ContactPreference.do_not_contact) for p in patients
        ]
        sent = await apply_batch(
            pool, "careplan", HANDLERS, CareplanStore, ctx, changes, [later] * len(changes)
        )
        assert await by_patient(pool, "plans", "version", patients) == [(2,)] * len(patients)
        assert sum("FOR UPDATE OF p" in q for q in sent) == 1, sent  # every plan locked in one statement
        announced = await pool.fetch(
            "SELECT key FROM outbox WHERE event_type = $1"
            " AND convert_from(payload, 'UTF8')::jsonb ->> 'reason' = 'preferences-changed'",
            PlanUpdated.type,
        )
        assert sorted(r["key"] for r in announced) == sorted(str(p) for p in patients)
    finally:
        await pool.close()
