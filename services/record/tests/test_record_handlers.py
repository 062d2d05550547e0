"""record's use case against an in-memory store: chains that link, per patient, in arrival order."""

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from careloop_shared.consumer import EventOfAnotherAgency
from careloop_shared.contracts import (
    FollowUpCadence,
    FollowUpCompleted,
    PatientAssessed,
    PatientRegistered,
    PlanUpdated,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.events import Event, ReceivedEvent
from careloop_shared.testing import phq2_positive
from careloop_shared.testing.fakes import assert_fake_matches, received, run
from record.domain.chain import GENESIS, verify
from record.domain.timeline import actor, timeline
from record.handlers import when_any_event_append_to_record
from record.store import RecordStore


def registered(patient_id: uuid.UUID, agency: str = "agency-a") -> PatientRegistered:
    return PatientRegistered(
        patient_id=patient_id, agency_id=agency, preferred_language="en", registered_at=datetime.now(UTC)
    )


def assessed(patient_id: uuid.UUID, agency: str = "agency-a") -> PatientAssessed:
    return phq2_positive(patient_id, agency, rules_version="t")


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
        assert verify(*await store.chain(patient)).intact


async def test_a_later_batch_continues_the_chain_from_its_head(ctx, store):
    patient = uuid.uuid4()
    await run(when_any_event_append_to_record, ctx, store, [received(registered(patient))])
    await run(when_any_event_append_to_record, ctx, store, [received(assessed(patient))])
    entries = await store.entries(patient)
    assert [e["seq"] for e in entries] == [1, 2]
    chained, head = await store.chain(patient)
    assert chained == entries and head is not None and head["hash"] == entries[-1]["hash"]
    assert verify(entries, head).intact


async def test_an_event_naming_another_agency_than_its_chain_is_refused(ctx, store):
    """A chain is its first event's agency's: an event for the patient naming another is refused by name,
    in a batch or alone, and nothing of its batch is appended (the consumer then applies the rest)."""
    patient = uuid.uuid4()
    await run(when_any_event_append_to_record, ctx, store, [received(registered(patient, "agency-a"))])
    for batch in (
        [received(assessed(patient, "agency-b"))],
        [received(assessed(patient, "agency-a")), received(assessed(patient, "agency-b"))],
    ):
        with pytest.raises(EventOfAnotherAgency):
            await run(when_any_event_append_to_record, ctx, store, batch)
    assert [e["agency_id"] for e in await store.entries(patient)] == ["agency-a"]
    # A new patient's chain takes the agency of its first event in the batch.
    newcomer = uuid.uuid4()
    with pytest.raises(EventOfAnotherAgency):
        batch = [received(registered(newcomer, "agency-b")), received(assessed(newcomer, "agency-a"))]
        await run(when_any_event_append_to_record, ctx, store, batch)


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


def by_person(event: Event, actor_id: str, role: str) -> ReceivedEvent:
    """The event as a person's change announces it: with the contract's actor fields, or, for a contract
    without them yet, in the body as a newer producer would publish it (the record keeps bodies as sent)."""
    if "actor_id" in type(event).model_fields:
        return received(
            type(event).model_validate({**event.model_dump(), "actor_id": actor_id, "actor_role": role})
        )
    message = received(event)
    body = json.loads(message.body) | {"actor_id": actor_id, "actor_role": role}
    return replace(message, body=json.dumps(body).encode())


def plan_updated(patient_id: uuid.UUID, changed_by_role: str | None = "care-manager") -> PlanUpdated:
    return PlanUpdated(
        patient_id=patient_id,
        agency_id="agency-a",
        plan_id=uuid.uuid4(),
        version=2,
        status="active",
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=[],
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
        reason="progress",
        changed_by_role=changed_by_role,
    )


def status_changed(patient_id: uuid.UUID, by_agency_id: str, by_party: str) -> ReferralStatusChanged:
    return ReferralStatusChanged(
        patient_id=patient_id,
        agency_id="agency-a",
        referral_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        from_status="requested",
        to_status="accepted",
        by_agency_id=by_agency_id,
        by_party=by_party,
        changed_at=datetime.now(UTC),
    )


def follow_up_completed(patient_id: uuid.UUID) -> FollowUpCompleted:
    return FollowUpCompleted(
        patient_id=patient_id,
        agency_id="agency-a",
        follow_up_id=uuid.uuid4(),
        reached=True,
        attempt=1,
        completed_at=datetime.now(UTC),
    )


async def test_the_timeline_names_the_person_who_made_each_change_and_their_role(ctx, store):
    patient = uuid.uuid4()
    batch = [
        by_person(registered(patient), "cm-ana", "care-manager"),  # intake: the body built by hand
        by_person(plan_updated(patient), "sv-sam", "supervisor"),
        by_person(status_changed(patient, "agency-food", "target"), "pr-joe", "provider"),
        by_person(status_changed(patient, "agency-a", "requester"), "cm-ana", "care-manager"),
        by_person(follow_up_completed(patient), "cm-ana", "care-manager"),
    ]
    await run(when_any_event_append_to_record, ctx, store, batch)
    items = timeline(ctx.summaries, await store.entries(patient))
    assert [i["actor"] for i in items] == [
        "care-manager cm-ana",
        "supervisor sv-sam",
        "provider pr-joe (agency-food)",  # a person of another agency is named with it
        "care-manager cm-ana",
        "care-manager cm-ana",
    ]
    assert [i["data"]["actor_id"] for i in items] == ["cm-ana", "sv-sam", "pr-joe", "cm-ana", "cm-ana"]
    assert verify(*await store.chain(patient)).intact


async def test_entries_that_name_no_person_read_as_before(ctx, store):
    patient = uuid.uuid4()
    batch = [
        received(registered(patient)),  # recorded before events named people
        received(plan_updated(patient, changed_by_role="care-manager")),
        received(plan_updated(patient, changed_by_role="system")),
        received(status_changed(patient, "agency-food", "target")),
        received(follow_up_completed(patient)),  # actor_id null: careloop did it on its own
    ]
    await run(when_any_event_append_to_record, ctx, store, batch)
    items = timeline(ctx.summaries, await store.entries(patient))
    assert [i["actor"] for i in items] == [
        "system (intake)",
        "care-manager",
        "system (careplan)",
        "target (agency-food)",
        "system (followup)",
    ]
    assert items[0]["summary"] == "Registered; prefers en, contact by -"


def test_a_person_named_without_a_role_is_named_alone():
    assert actor("/careloop/intake", {"agency_id": "agency-a", "actor_id": "cm-ana"}) == "cm-ana"
    assert actor("/careloop/intake", {"agency_id": "agency-a", "actor_id": None}) == "system (intake)"
