"""Outcome notes on the real database and broker, with intake's data keys faked: the table keeps a note
sealed and never in the clear, the API reads it back, answers 503 while intake cannot give the key, and
shows the erased view (never a 500) once the patient's key is destroyed."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from careloop_shared.auth import issue_token
from careloop_shared.contracts import PatientErased
from careloop_shared.events import new_message
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import eventually, publish_message, served, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from careloop_shared.testing.keys import FakePatientKeys
from followup.main import build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
NOTE = "Quartermaine said her landlord at 12 Elm St changed the locks"
OLD_NOTE = "Zebedee's daughter Marisol drives him to the food bank"


@pytest_asyncio.fixture(scope="module")
async def followup(infra, database_factory, make_settings):
    clock, keys = FakeClock(T0), FakePatientKeys()
    dsn = await database_factory("followup_sealed_notes")
    app = build_app(make_settings(infra.bootstrap_servers, dsn, unique_prefix()), clock, keys=keys)
    async with served(app, "http://followup") as (client, runtime):
        yield client, runtime, clock, keys


@pytest.fixture
def agency() -> tuple[str, dict[str, str]]:
    name = f"agency-{uuid.uuid4().hex[:6]}"
    token = issue_token(DEV_JWT_SECRET, agency=name, role="care-manager", subject="cm-ana")
    return name, {"Authorization": "Bearer " + token}


async def due(followup, schedule, agency_id: str, patient: uuid.UUID) -> uuid.UUID:
    """A referral check-in of the patient the scheduler has marked due."""
    _, runtime, clock, _ = followup
    follow_up_id = await schedule(
        runtime,
        patient_id=patient,
        agency_id=agency_id,
        due_at=clock.now - timedelta(minutes=1),
        reason="referral-check-in",
    )

    async def marked_due() -> bool:
        return (
            await runtime.pool.fetchval("SELECT status FROM follow_ups WHERE id = $1", follow_up_id) == "due"
        )

    await eventually(marked_due, what="follow-up due")
    return follow_up_id


async def stored(runtime, follow_up_id: uuid.UUID) -> list[dict]:
    """The follow-up's outcome rows as the table holds them, each also as its whole text."""
    rows = await runtime.pool.fetch(
        "SELECT o.note, o.note_sealed, o::text AS whole FROM follow_up_outcomes o WHERE follow_up_id = $1"
        " ORDER BY attempt",
        follow_up_id,
    )
    return [dict(r) for r in rows]


async def shown_notes(client, headers, follow_up_id: uuid.UUID) -> list[str | None]:
    r = await client.get(f"/v1/follow-ups/{follow_up_id}", headers=headers)
    assert r.status_code == 200, r.text
    return [o["note"] for o in r.json()["outcomes"]]


async def test_a_note_is_kept_sealed_and_read_back_and_one_kept_before_reads_as_it_was(
    followup, schedule, agency
):
    client, runtime, _, keys = followup
    agency_id, headers = agency
    patient = uuid.uuid4()
    follow_up_id = await due(followup, schedule, agency_id, patient)

    url = f"/v1/follow-ups/{follow_up_id}/outcome"
    once = {**headers, "Idempotency-Key": f"outcome-{follow_up_id}"}
    r = await client.post(url, headers=once, json={"reached": True, "note": NOTE})
    assert r.status_code == 200, r.text
    [row] = await stored(runtime, follow_up_id)
    assert row["note"] is None and row["note_sealed"]["kid"] == f"{patient}/1"
    assert "Quartermaine" not in row["whole"] and "Elm St" not in row["whole"]
    assert keys.asked[-1] == (agency_id, patient)

    again = await client.post(url, headers=once, json={"reached": True, "note": NOTE})
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (200, "true")
    assert again.json() == r.json() and len(await stored(runtime, follow_up_id)) == 1

    assert await shown_notes(client, headers, follow_up_id) == [NOTE]

    # An outcome recorded before notes were sealed keeps its plaintext, read as it was.
    before = await due(followup, schedule, agency_id, patient)
    await runtime.pool.execute(
        "INSERT INTO follow_up_outcomes (follow_up_id, attempt, reached, goal_progress, barriers, note,"
        " recorded_by, recorded_at) VALUES ($1, 1, true, '[]', '[]', $2, 'cm-old', $3)",
        before,
        OLD_NOTE,
        T0,
    )
    asked = len(keys.asked)
    assert await shown_notes(client, headers, before) == [OLD_NOTE]
    assert len(keys.asked) == asked  # nothing sealed there: intake not asked


async def test_while_intake_cannot_give_the_key_notes_are_neither_kept_nor_read(followup, schedule, agency):
    client, runtime, _, keys = followup
    agency_id, headers = agency
    patient = uuid.uuid4()
    noted = await due(followup, schedule, agency_id, patient)
    r = await client.post(
        f"/v1/follow-ups/{noted}/outcome", headers=headers, json={"reached": True, "note": NOTE}
    )
    assert r.status_code == 200, r.text
    waiting = await due(followup, schedule, agency_id, patient)

    keys.down = True
    try:
        url = f"/v1/follow-ups/{waiting}/outcome"
        r = await client.post(url, headers=headers, json={"reached": True, "note": NOTE})
        assert (r.status_code, r.headers.get("Retry-After")) == (503, "5"), r.text
        assert "Quartermaine" not in r.text
        assert await stored(runtime, waiting) == []
        assert await runtime.pool.fetchval("SELECT status FROM follow_ups WHERE id = $1", waiting) == "due"

        read = await client.get(f"/v1/follow-ups/{noted}", headers=headers)
        assert (read.status_code, read.headers.get("Retry-After")) == (503, "5"), read.text
        assert "Quartermaine" not in read.text

        r = await client.post(url, headers=headers, json={"reached": True})  # no note: no key needed
        assert r.status_code == 200, r.text
        assert await shown_notes(client, headers, waiting) == [None]
    finally:
        keys.down = False
    assert await shown_notes(client, headers, noted) == [NOTE]


async def test_once_the_patient_s_key_is_destroyed_reads_show_the_erased_view_and_new_notes_are_refused(
    followup, schedule, agency
):
    client, runtime, _, keys = followup
    agency_id, headers = agency
    patient = uuid.uuid4()
    noted = await due(followup, schedule, agency_id, patient)
    r = await client.post(
        f"/v1/follow-ups/{noted}/outcome", headers=headers, json={"reached": True, "note": NOTE}
    )
    assert r.status_code == 200, r.text
    waiting = await due(followup, schedule, agency_id, patient)

    keys.erase(patient)  # intake erased them; followup has not heard yet
    assert await shown_notes(client, headers, noted) == [None]
    url = f"/v1/follow-ups/{waiting}/outcome"
    r = await client.post(url, headers=headers, json={"reached": True, "note": NOTE})
    assert r.status_code == 410, r.text
    assert r.json() == {"detail": "this patient was erased: no new notes about them are kept"}
    assert await stored(runtime, waiting) == []

    erased = new_message(PatientErased(patient_id=patient, agency_id=agency_id, erased_at=T0), time=T0)
    await publish_message(
        runtime.settings.kafka_bootstrap_servers, runtime.topic_for(PatientErased.type), erased
    )

    async def blanked() -> bool:
        return [(o["note"], o["note_sealed"]) for o in await stored(runtime, noted)] == [(None, None)]

    await eventually(blanked, what="the erased patient's sealed note blanked")
    assert patient in keys.forgotten
    assert await shown_notes(client, headers, noted) == [None]
    r = await client.post(url, headers=headers, json={"reached": True})
    assert r.status_code == 200, r.text
