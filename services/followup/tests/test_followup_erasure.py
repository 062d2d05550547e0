"""Erasure on the real database and broker: intake's PatientErased blanks the patient's notes (sealed
with their data key, faked here) and only theirs, a redelivery changes nothing, and the API keeps no new
note about them (410)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from careloop_shared.contracts import PatientErased
from careloop_shared.events import new_message
from careloop_shared.patient_keys import Erased, open_for
from careloop_shared.testing import bearer, eventually, publish_message, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from followup.domain.follow_up import REFERRAL_CHECK_IN
from followup.main import build_app
from followup.notes import note_field

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
NOTE = "Quartermaine said her landlord at 12 Elm St changed the locks"
OTHER_NOTE = "Zebedee's daughter Marisol drives him to the food bank"
SEALED = "<still kept sealed; its key destroyed>"


@pytest_asyncio.fixture(scope="module")
async def followup(infra, database_factory, make_settings):
    clock, keys = FakeClock(T0), FakePatientKeys()
    dsn = await database_factory("followup_erasure")
    app = build_app(make_settings(infra.bootstrap_servers, dsn, unique_prefix()), clock, keys=keys)
    async with served(app, "http://followup") as (client, runtime):
        yield client, runtime, clock, keys


async def due(runtime, schedule, clock, agency: str, patient: uuid.UUID, **kw) -> uuid.UUID:
    """A follow-up of the patient the scheduler has marked due."""
    follow_up_id = await schedule(
        runtime, patient_id=patient, agency_id=agency, due_at=clock.now - timedelta(minutes=1), **kw
    )

    async def marked_due() -> bool:
        status = await runtime.pool.fetchval("SELECT status FROM follow_ups WHERE id = $1", follow_up_id)
        return status == "due"

    await eventually(marked_due, what="follow-up due")
    return follow_up_id


async def notes(runtime, keys, patient: uuid.UUID) -> list[str | None]:
    """The patient's notes as the table keeps them: sealed (opened here; SEALED once the key is gone),
    never in the clear."""
    rows = await runtime.pool.fetch(
        "SELECT f.id, f.agency_id, o.note, o.note_sealed FROM follow_up_outcomes o"
        " JOIN follow_ups f ON f.id = o.follow_up_id WHERE f.patient_id = $1"
        " ORDER BY o.recorded_at, o.attempt",
        patient,
    )
    assert all(r["note"] is None for r in rows)
    kept: list[str | None] = []
    for r in rows:
        if r["note_sealed"] is None:
            kept.append(None)
            continue
        try:
            kept.append(await open_for(keys, r["agency_id"], patient, note_field(r["id"]), r["note_sealed"]))
        except Erased:
            kept.append(SEALED)
    return kept


async def processed(runtime, event_id: uuid.UUID) -> bool:
    return bool(await runtime.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event_id))


async def test_erasure_blanks_only_the_patient_s_notes_once_and_refuses_new_ones(followup, schedule):
    client, runtime, clock, keys = followup
    agency = f"agency-{uuid.uuid4().hex[:6]}"
    headers = bearer(agency)
    erased, other = uuid.uuid4(), uuid.uuid4()
    noted = {}
    for patient, note in ((erased, NOTE), (other, OTHER_NOTE)):
        noted[patient] = await due(runtime, schedule, clock, agency, patient)
        body = {"reached": True, "barriers": ["cost"], "note": note}
        r = await client.post(f"/v1/follow-ups/{noted[patient]}/outcome", headers=headers, json=body)
        assert r.status_code == 200, r.text
    check_in = await due(runtime, schedule, clock, agency, erased, reason=REFERRAL_CHECK_IN)
    assert await notes(runtime, keys, erased) == [NOTE]

    keys.erase(erased)  # what intake's erasure does first, then it announces it
    erasure = new_message(
        PatientErased(patient_id=erased, agency_id=agency, erased_at=T0, actor_role="supervisor"), time=T0
    )
    topic = runtime.topic_for(PatientErased.type)
    await publish_message(runtime.settings.kafka_bootstrap_servers, topic, erasure)

    async def blanked() -> bool:
        return await notes(runtime, keys, erased) == [None]

    await eventually(blanked, what="the erased patient's note blanked")
    assert await notes(runtime, keys, other) == [OTHER_NOTE]
    outcome = await runtime.pool.fetchrow(
        "SELECT reached, barriers FROM follow_up_outcomes WHERE follow_up_id = $1",
        noted[erased],
    )
    assert (outcome["reached"], outcome["barriers"]) == (True, ["cost"])  # the codes stay

    # Redelivered, then announced again under another id (same patient: same partition, read after it).
    await publish_message(runtime.settings.kafka_bootstrap_servers, topic, erasure)
    again = new_message(PatientErased(patient_id=erased, agency_id=agency, erased_at=T0 + timedelta(days=1)))
    await publish_message(runtime.settings.kafka_bootstrap_servers, topic, again)
    await eventually(lambda: processed(runtime, again.envelope.id), what="the second announcement handled")
    assert (
        await runtime.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", erasure.envelope.id)
        == 1
    )
    erased_rows = await runtime.pool.fetch(
        "SELECT agency_id, erased_at FROM erased_patients WHERE patient_id = ANY($1::uuid[])", [erased, other]
    )
    assert [tuple(r) for r in erased_rows] == [(agency, T0)]  # one row, the first erasure's time
    assert (await notes(runtime, keys, erased), await notes(runtime, keys, other)) == ([None], [OTHER_NOTE])
    assert set(keys.forgotten) == {erased}  # its cached key dropped (once per announcement handled)

    # Over the API: the blanked note reads as none, the other patient's is there.
    shown = {p: (await client.get(f"/v1/follow-ups/{f}", headers=headers)).json() for p, f in noted.items()}
    assert [o["note"] for o in shown[erased]["outcomes"]] == [None]
    assert [o["note"] for o in shown[other]["outcomes"]] == [OTHER_NOTE]

    # A new note about the erased patient is refused; the outcome without it is recorded.
    url = f"/v1/follow-ups/{check_in}/outcome"
    r = await client.post(url, headers=headers, json={"reached": True, "note": NOTE})
    assert r.status_code == 410, r.text
    assert NOTE not in r.text and "Quartermaine" not in r.text
    assert r.json()["detail"] == "this patient was erased: no new notes about them are kept"
    assert await notes(runtime, keys, erased) == [None]
    r = await client.post(url, headers=headers, json={"reached": True, "barriers": ["cost"]})
    assert r.status_code == 200, r.text
    assert r.json()["follow_up"]["status"] == "completed"
    assert await notes(runtime, keys, erased) == [None, None]
