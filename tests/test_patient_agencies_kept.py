"""Each service's migration that claims the patients it already held for the agency its own tables give
them (kernel migration 010 made the claims, which the consumers check every event against): a patient
kept before is claimed for its agency, whichever agency's it is (row security read past), not left to be
claimed by whatever event comes next."""

import importlib
import uuid
from pathlib import Path

import pytest

from careloop_shared import db
from careloop_shared.db import ALL_AGENCIES, as_agency, create_pool

pytestmark = pytest.mark.integration

# service -> its claiming migration, and a patient row of its own as it was before that migration
KEPT = {
    "careplan": ("008", "INSERT INTO patients (patient_id, agency_id, updated_at) VALUES ($1, $2, now())"),
    "referral": ("011", "INSERT INTO patients (patient_id, agency_id, as_of) VALUES ($1, $2, now())"),
    "followup": ("012", "INSERT INTO patients (patient_id, agency_id, assigned_at) VALUES ($1, $2, now())"),
    "intake": (
        "013",
        "INSERT INTO patients (id, agency_id, preferred_language, contact_preference, created_at, updated_at)"
        " VALUES ($1, $2, 'en', 'phone', now(), now())",
    ),
}


@pytest.mark.parametrize("service", sorted(KEPT))
async def test_the_patients_a_service_held_are_claimed_for_their_agency(service, database_factory):
    number, insert = KEPT[service]
    package = importlib.import_module(service)
    migrations = [
        *db.kernel_migrations(),
        *db.folder_migrations(service, Path(package.__file__).parent / "migrations"),
    ]
    before = [m for m in migrations if not m[0].startswith(f"{service}/") or m[0] < f"{service}/{number}"]
    # The patient row as it was written before the claiming migration; it and those after it run next.
    assert [m[0] for m in migrations if m[0].startswith(f"{service}/{number}")], f"{service}/{number} missing"
    pool = await create_pool(await database_factory(f"{service}_claims"), min_size=1, max_size=2)
    try:
        await db.migrate(pool, before)
        patient = uuid.uuid4()
        with as_agency(ALL_AGENCIES):
            await pool.execute(insert, patient, "agency-b")
        with as_agency("agency-a"):  # a session that sees one agency's rows only
            await db.migrate(pool, migrations)
        with as_agency(ALL_AGENCIES):
            claims = dict(await pool.fetch("SELECT patient_id, agency_id FROM patient_agencies"))
        assert claims == {patient: "agency-b"}
    finally:
        await pool.close()
