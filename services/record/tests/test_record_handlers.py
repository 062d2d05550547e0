"""record's use case against an in-memory store: chains that link, per patient, in arrival order."""

import uuid
from datetime import UTC, datetime

from careloop_shared.contracts import Need, PatientAssessed, PatientRegistered, RiskLevel
from careloop_shared.testing.fakes import assert_fake_matches, received, run
from record.domain.chain import GENESIS, verify
from record.domain.timeline import timeline
from record.handlers import when_any_event_append_to_record
from record.store import RecordStore


def registered(patient_id: uuid.UUID, agency: str = "agency-a") -> PatientRegistered:
    return PatientRegistered(
        patient_id=patient_id, agency_id=agency, preferred_language="en", registered_at=datetime.now(UTC)
    )


def assessed(patient_id: uuid.UUID, agency: str = "agency-a") -> PatientAssessed:
    return PatientAssessed(
        patient_id=patient_id,
        agency_id=agency,
        assessment_id=uuid.uuid4(),
        instrument="phq-2",
        rules_version="t",
        total_score=4,
        needs=[Need(code="depression")],
        risk_level=RiskLevel.moderate,
        assessed_at=datetime.now(UTC),
    )


def test_the_fake_store_answers_like_the_real_one(store):
    assert_fake_matches(RecordStore, type(store))


async def test_a_batch_links_each_patients_events_to_their_own_chain(ctx, store, clock):
    ann, bob = uuid.uuid4(), uuid.uuid4()
    batch = [received(registered(ann)), received(registered(bob)), received(assessed(ann))]
    await run(when_any_event_append_to_record, ctx, store, batch)

    ann_entries = await store.entries(ann)
    assert [e["seq"] for e in ann_entries] == [1, 2]
    assert ann_entries[0]["prev_hash"] == GENESIS
    assert ann_entries[1]["prev_hash"] == ann_entries[0]["hash"]
    assert [e["event_id"] for e in ann_entries] == [batch[0].envelope.id, batch[2].envelope.id]
    assert all(e["recorded_at"] == clock.now for e in store.rows)
    for patient in (ann, bob):
        assert verify(await store.entries(patient), await store.head(patient)).intact


async def test_a_later_batch_continues_the_chain_from_its_head(ctx, store):
    patient = uuid.uuid4()
    await run(when_any_event_append_to_record, ctx, store, [received(registered(patient))])
    await run(when_any_event_append_to_record, ctx, store, [received(assessed(patient))])
    entries = await store.entries(patient)
    assert [e["seq"] for e in entries] == [1, 2]
    assert (await store.head(patient))["hash"] == entries[-1]["hash"]
    assert verify(entries, await store.head(patient)).intact


async def test_the_body_is_kept_byte_for_byte_and_read_back_as_a_summarised_timeline(ctx, store):
    patient = uuid.uuid4()
    event = received(assessed(patient))
    await run(when_any_event_append_to_record, ctx, store, [event])
    [entry] = await store.entries(patient)
    assert entry["body"] == event.body
    [item] = timeline(ctx.summaries, await store.entries(patient))
    assert item["type"] == PatientAssessed.type
    assert "depression" in item["summary"]
    assert item["actor"] == "system (intake)"
