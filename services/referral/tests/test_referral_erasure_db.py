"""Notes about a patient in referral's real database, with the real client of intake's key release over
a stand-in for intake: a note is stored sealed (no plaintext in the row) and read back opened, the key
asked for the patient's agency before any connection is taken; intake out of reach answers 503. On the
patient's erasure (PatientErased in through Kafka) the notes about the patient and no one else's are
blanked, a redelivery changes nothing, reads show no note, the API refuses new notes about them with
410, and a note being written while the erasure arrives is blanked once committed."""

import base64
import os
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from careloop_shared.auth import verify_token
from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpCadence,
    Intervention,
    PatientErased,
    PlanUpdated,
    RiskLevel,
)
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.events import Event, Message, new_message
from careloop_shared.patient_keys import HttpPatientKeys
from careloop_shared.runtime import running
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import bearer, client_of, eventually, publish_message, settings_for
from referral.config import ReferralSettings
from referral.domain.commands import ChangeReferralStatus
from referral.erasure.store import ERASURE_LOCK
from referral.loop.handlers import change_referral_status
from referral.main import build_app

pytestmark = pytest.mark.integration

HOME = "agency-home"
ADMIN = bearer("agency-network", "admin")
ERASED_AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def auth(agency: str, role: str) -> dict[str, str]:
    return bearer(agency, role, "s-1")


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


class Intake:
    """intake's key release as referral's client meets it over HTTP: a key per patient, destroyed on
    erasure, or no answer at all; each ask noted with the pooled connections referral held meanwhile."""

    def __init__(self) -> None:
        self.keys: dict[uuid.UUID, bytes] = {}
        self.erased: set[uuid.UUID] = set()
        self.down = False
        self.asked: list[tuple[str, str, uuid.UUID, int]] = []  # service, agency, patient, connections
        self.pool = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        caller = verify_token(token, DEV_JWT_SECRET, issuer=ReferralSettings().jwt_issuer)
        patient_id = uuid.UUID(request.url.path.split("/")[3])  # /v1/patients/{id}/data-key
        held = self.pool.get_size() - self.pool.get_idle_size()
        self.asked.append((caller.subject, caller.agency_id, patient_id, held))
        if self.down:
            return httpx.Response(503)
        if patient_id in self.erased:
            return httpx.Response(410)
        key = base64.b64encode(self.keys.setdefault(patient_id, os.urandom(32))).decode()
        return httpx.Response(200, json={"patient_id": str(patient_id), "kid": f"{patient_id}/1", "key": key})


class Referral:
    def __init__(self, client: httpx.AsyncClient, runtime, bootstrap: str, intake: Intake) -> None:
        self.client, self.runtime, self.bootstrap, self.intake = client, runtime, bootstrap, intake

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

    async def stored(self, referral_id: uuid.UUID) -> list[tuple[str | None, str | None]]:
        """Each history entry's note as the table holds it: in the clear, and sealed (as text)."""
        rows = await self.runtime.pool.fetch(
            "SELECT note, note_sealed::text AS sealed FROM referral_status_history WHERE referral_id = $1"
            " ORDER BY position",
            referral_id,
        )
        return [(r["note"], r["sealed"]) for r in rows]

    async def notes(self, referral_id: uuid.UUID) -> list[str | None]:
        """The notes the table holds in the clear, a sealed one as ``"sealed"``."""
        return [note if sealed is None else "sealed" for note, sealed in await self.stored(referral_id)]

    async def shown(
        self, referral_id: uuid.UUID, agency: str, role: str = "care-manager"
    ) -> list[str | None]:
        r = await self.client.get(f"/v1/referrals/{referral_id}", headers=auth(agency, role))
        assert r.status_code == 200, r.text
        return [h["note"] for h in r.json()["history"]]

    async def handled(self, message: Message) -> None:
        async def seen():
            return await self.runtime.pool.fetchval(
                "SELECT true FROM inbox WHERE event_id = $1", message.envelope.id
            )

        await eventually(seen, timeout=20, what="the event handled")


@pytest_asyncio.fixture(scope="module")
async def referral(infra, database_factory):
    settings = settings_for(
        ReferralSettings,
        infra,
        await database_factory("referral_erasure"),
        consumer_backoff_s=0.01,
        relay_poll_interval_s=0.2,
        overdue_tick_s=3600,  # no periodic step holds a pooled connection while intake is asked
    )
    intake = Intake()
    keys = HttpPatientKeys(
        base_url="http://intake",
        service="referral",
        jwt_secret=DEV_JWT_SECRET,
        jwt_issuer=settings.jwt_issuer,
        transport=httpx.MockTransport(intake),
    )
    app = build_app(settings, clock=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC), keys=keys)
    async with running(app.state.runtime) as runtime:
        intake.pool = runtime.pool
        async with client_of(app, "http://referral") as client:
            yield Referral(client, runtime, infra.bootstrap_servers, intake)
    await keys.aclose()


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
    # Consent first, handled: on another topic it could reach referral after the plan, whose referral
    # would then be drafted and released by it (one more history entry than the assertions count).
    await svc.handled(await svc.publish(consent))
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

    svc.intake.erased.add(erased)  # intake destroyed the key, then announced the erasure
    first = await svc.publish(PatientErased(patient_id=erased, agency_id=HOME, erased_at=ERASED_AT))
    await svc.handled(first)
    assert await svc.notes(referral_id) == [None, None]
    assert await svc.shown(referral_id, HOME) == [None, None]
    assert await svc.notes(other_id) == [None, "sealed"]
    assert await svc.shown(other_id, HOME) == [None, f"Called {kept}'s daughter"]
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
    assert await svc.notes(other_id) == [None, "sealed"]
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


async def test_a_note_is_stored_sealed_and_read_opened_with_the_key_of_the_patients_agency(referral):
    svc, category, receiving = referral, unique("cat"), unique("agency")
    await svc.program(category, receiving)

    patient_id, _, referral_id = await accepted_with_note(svc, category, receiving)

    [(clear, sealed)] = (await svc.stored(referral_id))[1:]
    assert clear is None and sealed is not None
    assert "daughter" not in sealed and "Called" not in sealed  # the row holds ciphertext only
    note = f"Called {patient_id}'s daughter"
    assert await svc.shown(referral_id, HOME) == [None, note]  # the patient's agency
    assert await svc.shown(referral_id, receiving, "provider") == [None, note]  # the agency that wrote it
    # Asked once (then kept), by referral, for the patient's agency though the provider wrote and read it.
    assert [a[:3] for a in svc.intake.asked if a[2] == patient_id] == [("referral", HOME, patient_id)]

    # Asked again once the key kept ran out: before the request takes a pooled connection for its work.
    svc.runtime.context.keys.forget(patient_id)
    await eventually(lambda: _idle(svc), timeout=20, what="referral's pool idle")
    moved = await svc.status(referral_id, receiving, status="in-progress", note="Seen at home")
    assert moved.status_code == 200, moved.text
    assert [h["note"] for h in moved.json()["referral"]["history"]] == [None, note, "Seen at home"]
    assert svc.intake.asked[-1] == ("referral", HOME, patient_id, 0)
    assert [a for a in svc.intake.asked if a[2] == patient_id][2:] == []


async def test_while_intake_cannot_answer_notes_are_neither_written_nor_read_503(referral):
    svc, category, receiving = referral, unique("cat"), unique("agency")
    await svc.program(category, receiving)
    patient_id, _, referral_id = await accepted_with_note(svc, category, receiving)
    stored = await svc.stored(referral_id)
    svc.runtime.context.keys.forget(patient_id)  # as when the client's cache period ran out
    svc.intake.down = True
    try:
        refused = await svc.status(referral_id, receiving, status="in-progress", note="Moved to her sister's")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]
        assert str(patient_id) not in refused.text and "sister" not in refused.text
        read = await svc.client.get(f"/v1/referrals/{referral_id}", headers=auth(HOME, "care-manager"))
        assert read.status_code == 503, read.text
        assert await svc.stored(referral_id) == stored  # nothing written
    finally:
        svc.intake.down = False
    assert await svc.shown(referral_id, HOME) == [None, f"Called {patient_id}'s daughter"]


async def test_a_patient_whose_key_was_destroyed_reads_as_erased_before_referral_hears_of_it(referral):
    svc, category, receiving = referral, unique("cat"), unique("agency")
    await svc.program(category, receiving)
    patient_id, _, referral_id = await accepted_with_note(svc, category, receiving)
    svc.intake.erased.add(patient_id)
    svc.runtime.context.keys.forget(patient_id)  # the key referral kept has run out too

    assert await svc.shown(referral_id, HOME) == [None, None]  # what an erased patient shows, not a 500
    assert await svc.shown(referral_id, receiving, "provider") == [None, None]
    refused = await svc.status(referral_id, receiving, status="in-progress", note="Seen today")
    assert refused.status_code == 410, refused.text
    moved = await svc.status(referral_id, receiving, status="in-progress")
    assert moved.status_code == 200, moved.text
    assert [h["note"] for h in moved.json()["referral"]["history"]] == [None, None, None]


async def _idle(svc: Referral) -> bool:
    pool = svc.runtime.pool
    return pool.get_size() == pool.get_idle_size()


async def test_an_answer_kept_for_an_idempotent_replay_goes_with_the_patients_erasure(referral):
    """A status change's answer shows the history's notes opened; kept for a replay, it names the patient
    (referral's path does not), so the erasure deletes it and a retry runs anew (no longer a legal move)."""
    svc, category, receiving = referral, unique("cat"), unique("agency")
    await svc.program(category, receiving)
    erased, _, referral_id = await accepted_with_note(svc, category, receiving)
    path, note = f"/v1/referrals/{referral_id}/status", f"{erased} asked for mornings"
    retry = {**auth(receiving, "provider"), "Idempotency-Key": f"k-{referral_id}"}
    first = await svc.client.post(path, json={"status": "in-progress", "note": note}, headers=retry)
    assert first.status_code == 200 and note in first.text

    async def kept() -> list[str]:
        with as_agency(ALL_AGENCIES):
            rows = await svc.runtime.pool.fetch(
                "SELECT response::text AS response FROM idempotency_keys WHERE patient_id = $1", erased
            )
        return [r["response"] for r in rows]

    assert [note in response for response in await kept()] == [True]
    svc.intake.erased.add(erased)
    await svc.handled(
        await svc.publish(PatientErased(patient_id=erased, agency_id=HOME, erased_at=ERASED_AT))
    )
    assert await kept() == []
    again = await svc.client.post(path, json={"status": "in-progress", "note": note}, headers=retry)
    assert again.status_code == 409 and "Idempotent-Replayed" not in again.headers
    assert note not in again.text
