"""A patient's erasure in referral's real database: PatientErased in through Kafka blanks the notes
written about the patient and no one else's, a redelivery changes nothing, the API refuses new notes
about them with 410, and a note being written while the erasure arrives is blanked once committed."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from careloop_shared.auth import issue_token
from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpCadence,
    Intervention,
    PatientErased,
    PlanUpdated,
    RiskLevel,
)
from careloop_shared.db import as_agency
from careloop_shared.events import Event, Message, new_message
from careloop_shared.runtime import running
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import eventually, publish_message, unique_prefix
from referral.config import ReferralSettings
from referral.domain.commands import ChangeReferralStatus
from referral.erasure.store import ERASURE_LOCK
from referral.loop.handlers import change_referral_status
from referral.main import build_app

pytestmark = pytest.mark.integration

HOME = "agency-home"
ADMIN = {"Authorization": "Bearer " + issue_token(DEV_JWT_SECRET, agency="agency-network", role="admin")}
ERASED_AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def auth(agency: str, role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(DEV_JWT_SECRET, agency=agency, role=role, subject="s-1")}


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


class Referral:
    def __init__(self, client: httpx.AsyncClient, runtime, bootstrap: str) -> None:
        self.client, self.runtime, self.bootstrap = client, runtime, bootstrap

    async def publish(self, event: Event, message: Message | None = None) -> Message:
        message = message or new_message(event)
        await publish_message(self.bootstrap, self.runtime.topic_for(event.type), message)
        return message

    async def program(self, category: str, agency: str) -> str:
        org_id, service_id = unique("org"), unique("svc")
        org = {"id": org_id, "agency_id": agency, "name": "Test org"}
        assert (await self.client.post("/v1/organizations", json=org, headers=ADMIN)).status_code == 201
        body = {"id": service_id, "organization_id": org_id, "name": "Program", "program_category": category}
        r = await self.client.post("/v1/services", json={**body, "languages": ["en"]}, headers=ADMIN)
        assert r.status_code == 201, r.text
        return service_id

    async def status(self, referral_id: uuid.UUID, agency: str, **body) -> httpx.Response:
        path = f"/v1/referrals/{referral_id}/status"
        return await self.client.post(path, json=body, headers=auth(agency, "provider"))

    async def notes(self, referral_id: uuid.UUID) -> list[str | None]:
        rows = await self.runtime.pool.fetch(
            "SELECT note FROM referral_status_history WHERE referral_id = $1 ORDER BY position", referral_id
        )
        return [r["note"] for r in rows]

    async def handled(self, message: Message) -> None:
        async def seen():
            return await self.runtime.pool.fetchval(
                "SELECT true FROM inbox WHERE event_id = $1", message.envelope.id
            )

        await eventually(seen, timeout=20, what="the event handled")


@pytest_asyncio.fixture(scope="module")
async def referral(infra, database_factory):
    settings = ReferralSettings(
        database_url=await database_factory("referral_erasure"),
        kafka_bootstrap_servers=infra.bootstrap_servers,
        topic_prefix=unique_prefix(),
        consumer_backoff_s=0.01,
        relay_poll_interval_s=0.2,
    )
    app = build_app(settings, clock=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    async with running(app.state.runtime) as runtime:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://referral") as client:
            yield Referral(client, runtime, infra.bootstrap_servers)


async def accepted_with_note(
    svc: Referral, category: str, receiving: str
) -> tuple[uuid.UUID, Intervention, uuid.UUID]:
    """A patient of HOME referred to ``receiving``'s program, accepted there with a note naming them."""
    patient_id = uuid.uuid4()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    item = Intervention(
        id=uuid.uuid4(),
        need="food-insecurity",
        kind="referral",
        program_category=category,
        needs_referral=True,
    )
    consent = ConsentRecorded(
        patient_id=patient_id,
        agency_id=HOME,
        consent_id=uuid.uuid4(),
        purpose="referral",
        agencies=[],
        program_categories=[category],
        period_start=at,
        recorded_at=at,
    )
    plan = PlanUpdated(
        patient_id=patient_id,
        agency_id=HOME,
        plan_id=uuid.uuid5(patient_id, "plan"),
        version=1,
        status="active",
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=[item],
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
        preferred_language="en",
    )
    await svc.publish(consent)
    await svc.handled(await svc.publish(plan))

    async def requested():
        return await svc.runtime.pool.fetchval(
            "SELECT id FROM referrals WHERE intervention_id = $1 AND status = 'requested'", item.id
        )

    referral_id = await eventually(requested, timeout=20, what="referral sent")
    r = await svc.status(referral_id, receiving, status="accepted", note=f"Called {patient_id}'s daughter")
    assert r.status_code == 200, r.text
    return patient_id, item, referral_id


async def test_an_erasure_blanks_the_patients_notes_only_and_new_notes_are_refused_with_410(referral):
    svc, category, receiving = referral, unique("cat"), unique("agency")
    await svc.program(category, receiving)
    erased, item, referral_id = await accepted_with_note(svc, category, receiving)
    kept, _, other_id = await accepted_with_note(svc, category, receiving)

    first = await svc.publish(PatientErased(patient_id=erased, agency_id=HOME, erased_at=ERASED_AT))
    await svc.handled(first)
    assert await svc.notes(referral_id) == [None, None]
    assert await svc.notes(other_id) == [None, f"Called {kept}'s daughter"]
    history = await svc.runtime.pool.fetch(
        "SELECT from_status, to_status, by_subject FROM referral_status_history WHERE referral_id = $1"
        " ORDER BY position",
        referral_id,
    )
    assert [tuple(h) for h in history] == [(None, "requested", None), ("requested", "accepted", "s-1")]

    # The same event again, then another erasure of the patient (the retention rules', say): nothing moves.
    await svc.publish(PatientErased(patient_id=erased, agency_id=HOME, erased_at=ERASED_AT), first)
    later = PatientErased(patient_id=erased, agency_id=HOME, erased_at=datetime(2026, 11, 2, tzinfo=UTC))
    await svc.handled(await svc.publish(later))
    assert await svc.notes(referral_id) == [None, None]
    assert await svc.notes(other_id) == [None, f"Called {kept}'s daughter"]
    erasures = await svc.runtime.pool.fetch(
        "SELECT erased_at FROM erased_patients WHERE patient_id = $1", erased
    )
    assert [e["erased_at"] for e in erasures] == [ERASED_AT]

    # The receiving agency (it sees the erasure through the referral) may move it, but not write about them.
    refused = await svc.status(referral_id, receiving, status="in-progress", note=f"{erased} moved house")
    assert refused.status_code == 410, refused.text
    assert refused.json() == {
        "detail": "the patient's data was erased: no new notes about them are kept",
        "erased_at": ERASED_AT.isoformat(),
    }
    assert await svc.notes(referral_id) == [None, None]
    moved = await svc.status(referral_id, receiving, status="in-progress")
    assert moved.status_code == 200, moved.text
    assert await svc.notes(referral_id) == [None, None, None]
    assert (await svc.status(other_id, receiving, status="in-progress", note="Seen")).status_code == 200

    # Nor may the patient's own agency, referring them anew by hand with a note.
    closed = await svc.status(referral_id, receiving, status="failed", reason="client-declined")
    assert closed.status_code == 200, closed.text
    chosen = await svc.program(category, unique("agency"))
    body = {"patient_id": str(erased), "intervention_id": str(item.id), "service_id": chosen}
    headers = auth(HOME, "care-manager")
    by_hand = await svc.client.post(
        "/v1/referrals", json={**body, "note": "ask for her son"}, headers=headers
    )
    assert by_hand.status_code == 410, by_hand.text
    assert str(erased) not in by_hand.text
    made = await svc.client.post("/v1/referrals", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert [h["note"] for h in made.json()["history"]] == [None]


async def test_a_note_being_written_when_the_erasure_arrives_is_blanked_once_committed(referral):
    svc, category, receiving = referral, unique("cat"), unique("agency")
    await svc.program(category, receiving)
    patient_id, _, referral_id = await accepted_with_note(svc, category, receiving)
    writing = ChangeReferralStatus(
        receiving, referral_id, "in-progress", "s-1", "provider", note="written as the erasure arrives"
    )
    runtime = svc.runtime

    async def erasure_waits():  # for the patient's erasure lock (erasure/store.py), in this database
        return await runtime.pool.fetchval(
            "SELECT true FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2 AND"
            " classid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            ERASURE_LOCK,
        )

    with as_agency(receiving):
        async with runtime.uow() as uow:
            await change_referral_status(runtime.context, uow, writing)
            erased = await svc.publish(
                PatientErased(patient_id=patient_id, agency_id=HOME, erased_at=ERASED_AT)
            )
            await eventually(erasure_waits, timeout=20, what="the erasure waiting for the note's transaction")
    await svc.handled(erased)
    assert await svc.notes(referral_id) == [None, None, None]
