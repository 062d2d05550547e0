"""referral against its real database and broker: events in through Kafka, HTTP in-process."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jsonschema
import pytest
import pytest_asyncio

from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    FollowUpCadence,
    Intervention,
    PatientRegistered,
    PlanUpdated,
    RiskLevel,
)
from careloop_shared.events import REGISTRY, Event, Message, new_message
from careloop_shared.schemas import path_of
from careloop_shared.testing import bearer, eventually, publish_message, served, settings_for
from careloop_shared.testing.keys import FakePatientKeys
from referral.config import ReferralSettings
from referral.directory.handlers import load_seed_directory
from referral.main import build_app

pytestmark = pytest.mark.integration

MADE = "careloop.referral.referral_made.v1"
CHANGED = "careloop.referral.referral_status_changed.v1"
GAP = "careloop.referral.network_gap_detected.v1"
OVERDUE = "careloop.referral.referral_overdue.v1"
ADMIN = bearer("agency-network", "admin")


class Clock:
    """The service's clock, moved by the tests instead of waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(scope="module")
async def referral(infra, database_factory):
    clock = Clock()
    settings = settings_for(
        ReferralSettings,
        infra,
        await database_factory("referral"),
        consumer_backoff_s=0.01,
        overdue_tick_s=0.05,
        relay_poll_interval_s=0.2,
    )
    app = build_app(settings, clock=clock, keys=FakePatientKeys())
    async with served(app, "http://referral") as (client, runtime):
        yield Service(client, runtime, clock, infra.bootstrap_servers)


class Service:
    def __init__(self, client, runtime, clock, bootstrap) -> None:
        self.client, self.runtime, self.clock, self.bootstrap = client, runtime, clock, bootstrap

    async def publish(self, event: Event) -> Message:
        message = new_message(event)
        await publish_message(self.bootstrap, self.runtime.topic_for(event.type), message)
        return message

    async def program(self, category: str, *, agency: str | None = None, **service) -> str:
        """A new organization with one service in ``category``; returns the service id."""
        org_id = unique("org")
        agency = agency or unique("agency")
        r = await self.client.post(
            "/v1/organizations", json={"id": org_id, "agency_id": agency, "name": "Test org"}, headers=ADMIN
        )
        assert r.status_code == 201, r.text
        service_id = service.pop("id", None) or unique("svc")
        body = {
            "id": service_id,
            "organization_id": org_id,
            "name": "Test program",
            "program_category": category,
            "languages": ["en", "es"],
            **service,
        }
        r = await self.client.post("/v1/services", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
        return service_id

    async def referrals_of(self, intervention_id: uuid.UUID) -> list:
        return await self.runtime.pool.fetch(
            "SELECT * FROM referrals WHERE intervention_id = $1 ORDER BY created_at", intervention_id
        )

    async def outbox(self, patient_id: uuid.UUID, event_type: str | None = None) -> list[dict]:
        rows = await self.runtime.pool.fetch(
            "SELECT event_type, payload FROM outbox WHERE key = $1 ORDER BY position", str(patient_id)
        )
        return [
            {"type": r["event_type"], **json.loads(r["payload"])}
            for r in rows
            if event_type is None or r["event_type"] == event_type
        ]

    async def referral_for(self, intervention_id: uuid.UUID, status: str | None = None):
        async def probe():
            rows = await self.referrals_of(intervention_id)
            return rows if rows and (status is None or rows[-1]["status"] == status) else None

        return (await eventually(probe, timeout=20, what=f"referral {status or ''}"))[-1]


def plan(
    patient_id: uuid.UUID,
    agency: str,
    *interventions: Intervention,
    version: int = 1,
    language: str | None = "es",
) -> PlanUpdated:
    return PlanUpdated(
        patient_id=patient_id,
        agency_id=agency,
        plan_id=uuid.uuid5(patient_id, "plan"),
        version=version,
        status="active",
        risk_level=RiskLevel.moderate,
        goals=[],
        interventions=list(interventions),
        follow_up=FollowUpCadence(every_days=30, priority=RiskLevel.moderate),
        preferred_language=language,
    )


def intervention(category: str, need: str = "food-insecurity") -> Intervention:
    return Intervention(
        id=uuid.uuid4(), need=need, kind="referral", program_category=category, needs_referral=True
    )


def consent(patient_id: uuid.UUID, agency: str, **kw) -> ConsentRecorded:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return ConsentRecorded(
        patient_id=patient_id,
        agency_id=agency,
        consent_id=kw.pop("consent_id", uuid.uuid4()),
        purpose=kw.pop("purpose", "referral"),
        agencies=kw.pop("agencies", []),
        program_categories=kw.pop("program_categories", []),
        period_start=at,
        recorded_at=at,
        **kw,
    )


async def consented_patient(svc: Service, agency: str, category: str) -> uuid.UUID:
    patient_id = uuid.uuid4()
    recorded = consent(patient_id, agency, program_categories=[category])
    await svc.publish(recorded)

    async def stored():
        return await svc.runtime.pool.fetchval("SELECT true FROM consents WHERE id = $1", recorded.consent_id)

    await eventually(stored, what="consent stored")
    return patient_id


async def made_referral(svc: Service, category: str, agency: str = "agency-home") -> tuple[dict, uuid.UUID]:
    patient_id = await consented_patient(svc, agency, category)
    item = intervention(category)
    await svc.publish(plan(patient_id, agency, item))
    return dict(await svc.referral_for(item.id, "requested")), patient_id


async def set_status(svc: Service, referral_id, agency: str, **body) -> httpx.Response:
    return await svc.client.post(f"/v1/referrals/{referral_id}/status", json=body, headers=bearer(agency))


# --- matching -------------------------------------------------------------------------------------


async def test_plan_update_refers_to_the_best_program_for_the_patients_language_and_area(referral):
    svc, category = referral, unique("cat")
    await svc.program(category, id=unique("a-english"), languages=["en"])
    await svc.program(category, id=unique("b-elsewhere"), eligibility={"postal_prefixes": ["100"]})
    best = await svc.program(category, id=unique("c-local"), eligibility={"postal_prefixes": ["941"]})
    await svc.program(category, id=unique("d-full"), capacity={"status": "no-capacity"})
    patient_id = await consented_patient(svc, "agency-home", category)
    await svc.publish(
        PatientRegistered(
            patient_id=patient_id,
            agency_id="agency-home",
            preferred_language="es",
            registered_at=svc.clock(),
            postal_area="941",
        )
    )
    await eventually(
        lambda: svc.runtime.pool.fetchval("SELECT true FROM patients WHERE patient_id = $1", patient_id)
    )
    item = intervention(category)
    await svc.publish(plan(patient_id, "agency-home", item))
    made = await svc.referral_for(item.id, "requested")
    assert made["program_id"] == best
    [event] = await svc.outbox(patient_id, MADE)
    assert (event["program_id"], event["status"], event["intervention_id"]) == (
        best,
        "requested",
        str(item.id),
    )
    assert event["response_due_at"].startswith("2026-11-04")  # two business days
    assert event["service_request_id"] == str(made["service_request_id"])


async def test_the_summary_counts_the_agencys_referrals_of_a_period_and_nobody_elses(referral):
    svc, category = referral, unique("cat")
    await svc.program(category, id=unique("summed"))
    agency = unique("agency")
    patient_id = await consented_patient(svc, agency, category)
    item = intervention(category)
    await svc.publish(plan(patient_id, agency, item))
    await svc.referral_for(item.id, "requested")

    async def summary(query: str = "", who: str = agency, role: str = "supervisor") -> httpx.Response:
        return await svc.client.get(f"/v1/referrals/summary{query}", headers=bearer(who, role))

    ever = await summary()
    assert ever.status_code == 200, ever.text
    assert (ever.json()["made"], ever.json()["open"], ever.json()["delivered"]) == (1, 1, 0)
    assert ever.json()["since"] is None
    later = await summary("?since=2999-01-01T00:00:00Z")
    assert later.json()["made"] == 0
    assert (await summary(who=unique("agency"))).json()["made"] == 0  # another agency's, not counted
    assert (await summary("?since=0.5")).status_code == 422  # a time is written as one
    assert (await summary(role="analyst")).status_code == 403
    assert (await summary("?side=received")).json()["made"] == 0  # none was sent to the referring agency
    assert (await summary("?side=both")).status_code == 422

    async def listed(query: str) -> httpx.Response:
        return await svc.client.get(f"/v1/referrals?patient_id={patient_id}&{query}", headers=bearer(agency))

    assert len((await listed("status=requested&status=accepted")).json()["items"]) == 1  # any of them
    assert (await listed("status=completed&status=failed")).json()["items"] == []
    assert (await listed("status=done")).status_code == 422


async def test_redelivered_and_repeated_plan_updates_make_no_duplicate_referral(referral):
    svc, category = referral, unique("cat")
    await svc.program(category)
    patient_id = await consented_patient(svc, "agency-home", category)
    item = intervention(category)
    first = await svc.publish(plan(patient_id, "agency-home", item))
    await publish_message(
        svc.bootstrap, svc.runtime.topic_for(PlanUpdated.type), first
    )  # the same event again
    await svc.publish(plan(patient_id, "agency-home", item, version=2))  # a new version, same intervention
    sentinel = intervention(category)
    await svc.publish(plan(patient_id, "agency-home", item, sentinel, version=3))
    await svc.referral_for(sentinel.id)
    assert len(await svc.referrals_of(item.id)) == 1
    made = await svc.outbox(patient_id, MADE)
    assert sorted(e["intervention_id"] for e in made) == sorted([str(item.id), str(sentinel.id)])


async def test_a_plan_naming_another_patients_intervention_is_refused_by_name_and_its_batch_goes_on(
    referral, monkeypatch
):
    """careplan gives each intervention an id of its own: a plan naming one another patient's plan holds, or
    one id twice, is not careplan's. It is dead-lettered at once by name, not tried again, and the plans
    polled with it are applied."""
    from careloop_shared.metrics import REGISTRY
    from careloop_shared.testing.batches import delivered

    svc, category = referral, unique("cat")
    await svc.program(category)
    held, holder = await made_referral(svc, category)
    taken = held["intervention_id"]
    twice = intervention(category)
    forged = plan(uuid.uuid4(), "agency-home", Intervention(**{**twice.model_dump(), "id": taken}))
    doubled = plan(uuid.uuid4(), "agency-home", twice, twice)
    others = [await consented_patient(svc, "agency-home", category) for _ in range(2)]
    items = [intervention(category) for _ in others]
    topic = svc.runtime.topic_for(PlanUpdated.type)
    labels = {"service_name": svc.runtime.spec.name, "topic": topic, "reason": "failed"}
    retries_before = REGISTRY.get_sample_value("careloop_consumer_retries_total", labels) or 0
    messages = [
        new_message(e)
        for e in (
            plan(others[0], "agency-home", items[0]),
            forged,
            doubled,
            plan(others[1], "agency-home", items[1]),
        )
    ]
    consumer, sizes = svc.runtime.consumer, []
    apply = consumer._apply

    async def counted(events, **kw):
        sizes.append(len(events))
        return await apply(events, **kw)

    monkeypatch.setattr(consumer, "_apply", counted)
    await consumer.process([delivered(m, 970_000 + n, topic) for n, m in enumerate(messages)])
    # Each refusal named its event: the rest applied together again, not one event a transaction.
    assert sizes == [4, 3, 2]

    ids = [m.envelope.id for m in messages]
    outcomes = dict(
        await svc.runtime.pool.fetch(
            "SELECT event_id, outcome FROM inbox WHERE event_id = ANY($1::uuid[])", ids
        )
    )
    assert [outcomes.get(i) for i in ids] == ["processed", "dead-lettered", "dead-lettered", "processed"]
    assert (REGISTRY.get_sample_value("careloop_consumer_retries_total", labels) or 0) == retries_before
    for item in items:
        assert (await svc.referral_for(item.id))["status"] == "requested"
    holds = "SELECT patient_id FROM plan_interventions WHERE intervention_id = $1"
    assert await svc.runtime.pool.fetchval(holds, taken) == holder
    assert await svc.runtime.pool.fetchval(holds, twice.id) is None
    unknown = "SELECT count(*) FROM plans WHERE patient_id = ANY($1::uuid[])"
    assert await svc.runtime.pool.fetchval(unknown, [forged.patient_id, doubled.patient_id]) == 0


async def test_without_consent_the_referral_waits_and_is_made_when_consent_arrives(referral):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    patient_id, item = uuid.uuid4(), intervention(category)
    await svc.publish(plan(patient_id, "agency-home", item))
    waiting = await svc.referral_for(item.id, "draft")
    assert waiting["status_reason"] == "awaiting-consent"
    assert await svc.outbox(patient_id, MADE) == []
    # The receiving agency knows nothing of it yet; the referring agency sees why it waits.
    assert (
        await svc.client.get(f"/v1/referrals/{waiting['id']}", headers=bearer(receiving))
    ).status_code == 404
    listed = await svc.client.get(f"/v1/referrals?receiving_agency={receiving}", headers=bearer(receiving))
    assert listed.json()["items"] == []
    mine = (await svc.client.get(f"/v1/referrals/{waiting['id']}", headers=bearer("agency-home"))).json()
    assert (mine["status"], mine["status_reason"]) == ("draft", "awaiting-consent")

    other = consent(patient_id, "agency-home", program_categories=["something-else"])
    await svc.publish(other)
    await svc.publish(consent(patient_id, "agency-home", agencies=[receiving]))
    sent = await svc.referral_for(item.id, "requested")
    assert sent["id"] == waiting["id"] and sent["response_due_at"] is not None
    [made] = await svc.outbox(patient_id, MADE)
    assert made["referral_id"] == str(sent["id"])
    [changed] = await svc.outbox(patient_id, CHANGED)
    assert (changed["from_status"], changed["to_status"], changed["by_party"]) == (
        "draft",
        "requested",
        "requester",
    )
    seen = await svc.client.get(f"/v1/referrals?receiving_agency={receiving}", headers=bearer(receiving))
    assert [r["id"] for r in seen.json()["items"]] == [str(sent["id"])]


async def test_a_consent_for_another_category_or_purpose_does_not_release_the_referral(referral):
    svc, category = referral, unique("cat")
    await svc.program(category)
    patient_id, item = uuid.uuid4(), intervention(category)
    await svc.publish(consent(patient_id, "agency-home", program_categories=["unrelated"]))
    await svc.publish(plan(patient_id, "agency-home", item))
    await svc.referral_for(item.id, "draft")
    sentinel = consent(patient_id, "agency-home", purpose="care-coordination", program_categories=[category])
    await svc.publish(sentinel)
    await eventually(
        lambda: svc.runtime.pool.fetchval("SELECT true FROM consents WHERE id = $1", sentinel.consent_id)
    )
    assert (await svc.referrals_of(item.id))[0]["status"] == "draft"  # wrong purpose


async def test_a_program_of_the_patients_own_agency_needs_no_consent(referral):
    svc, category = referral, unique("cat")
    await svc.program(category, agency="agency-own")
    patient_id, item = uuid.uuid4(), intervention(category)
    await svc.publish(plan(patient_id, "agency-own", item))
    made = await svc.referral_for(item.id, "requested")
    assert made["consent_id"] is None


async def test_revoked_consent_cancels_referrals_not_yet_answered(referral):
    svc, category = referral, unique("cat")
    await svc.program(category)
    patient_id, item = uuid.uuid4(), intervention(category)
    recorded = consent(patient_id, "agency-home", program_categories=[category])
    await svc.publish(recorded)
    await eventually(
        lambda: svc.runtime.pool.fetchval("SELECT true FROM consents WHERE id = $1", recorded.consent_id)
    )
    await svc.publish(plan(patient_id, "agency-home", item))
    await svc.referral_for(item.id, "requested")
    await svc.publish(
        ConsentRevoked(
            patient_id=patient_id,
            agency_id="agency-home",
            consent_id=recorded.consent_id,
            revoked_at=svc.clock(),
        )
    )
    cancelled = await svc.referral_for(item.id, "cancelled")
    assert cancelled["status_reason"] == "consent-revoked"
    [changed] = await svc.outbox(patient_id, CHANGED)
    assert (changed["to_status"], changed["reason"]) == ("cancelled", "consent-revoked")


async def test_no_eligible_program_reports_a_network_gap_once_with_need_area_and_language(referral):
    svc, category = referral, unique("cat")
    await svc.program(category, languages=["en"])  # not in the patient's language, no interpreter
    patient_id, item = uuid.uuid4(), intervention(category)
    await svc.publish(
        PatientRegistered(
            patient_id=patient_id,
            agency_id="agency-home",
            preferred_language="so",
            registered_at=svc.clock(),
            postal_area="100",
        )
    )
    await eventually(
        lambda: svc.runtime.pool.fetchval("SELECT true FROM patients WHERE patient_id = $1", patient_id)
    )
    await svc.publish(plan(patient_id, "agency-home", item, language=None))
    await svc.publish(plan(patient_id, "agency-home", item, version=2, language=None))
    sentinel = intervention("food-assistance")
    await svc.publish(plan(patient_id, "agency-home", sentinel, version=3, language=None))

    async def sentinel_seen():
        return await svc.runtime.pool.fetchval(
            "SELECT true FROM network_gaps WHERE intervention_id = $1", sentinel.id
        ) or await svc.referrals_of(sentinel.id)

    await eventually(sentinel_seen, what="third plan processed")
    gaps = [g for g in await svc.outbox(patient_id, GAP) if g["intervention_id"] == str(item.id)]
    assert len(gaps) == 1
    assert (gaps[0]["need"], gaps[0]["program_category"], gaps[0]["postal_area"], gaps[0]["language"]) == (
        "food-insecurity",
        category,
        "100",
        "so",
    )
    assert await svc.referrals_of(item.id) == []


# --- the closed loop ------------------------------------------------------------------------------


async def test_receiving_agency_moves_the_referral_through_its_lifecycle_and_each_change_is_an_event(
    referral,
):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    made, patient_id = await made_referral(svc, category)
    rid = made["id"]

    wrong = await set_status(svc, rid, "agency-home", status="accepted")
    assert (wrong.status_code, wrong.json()["detail"]) == (403, "only the receiving agency may set accepted")
    illegal = await set_status(svc, rid, receiving, status="completed", outcome={"service_delivered": True})
    assert (illegal.status_code, illegal.json()["detail"]) == (
        409,
        "a requested referral cannot become completed",
    )
    stranger = await set_status(svc, rid, "agency-stranger", status="accepted")
    assert stranger.status_code == 404

    steps = [
        {"status": "accepted", "note": "Called the client on Tuesday"},
        {"status": "in-progress"},
        {"status": "on-hold", "reason": "waitlist"},
        {"status": "in-progress"},
    ]
    for body in steps:
        r = await set_status(svc, rid, receiving, **body)
        assert r.status_code == 200, r.text
    no_reason = await set_status(svc, rid, receiving, status="on-hold")
    assert no_reason.status_code == 422
    assert no_reason.json()["detail"][0]["loc"] == ["body", "reason"]
    no_outcome = await set_status(svc, rid, receiving, status="completed")
    assert no_outcome.status_code == 422 and no_outcome.json()["detail"][0]["loc"] == ["body", "outcome"]
    done = await set_status(
        svc,
        rid,
        receiving,
        status="completed",
        outcome={"service_delivered": True, "enrollment_status": "enrolled"},
    )
    assert done.status_code == 200
    after = await set_status(svc, rid, receiving, status="in-progress")
    assert after.status_code == 409

    detail = (await svc.client.get(f"/v1/referrals/{rid}", headers=bearer("agency-home"))).json()
    assert [(h["from_status"], h["to_status"], h["by_party"]) for h in detail["history"]] == [
        (None, "requested", "requester"),
        ("requested", "accepted", "target"),
        ("accepted", "in-progress", "target"),
        ("in-progress", "on-hold", "target"),
        ("on-hold", "in-progress", "target"),
        ("in-progress", "completed", "target"),
    ]
    assert detail["history"][1]["note"] == "Called the client on Tuesday"
    assert detail["outcome"]["enrollment_status"] == "enrolled"
    changes = await svc.outbox(patient_id, CHANGED)
    assert [c["to_status"] for c in changes] == [
        "accepted",
        "in-progress",
        "on-hold",
        "in-progress",
        "completed",
    ]
    assert changes[2]["reason"] == "waitlist" and changes[-1]["outcome"]["service_delivered"] is True
    assert all(c["by_agency_id"] == receiving for c in changes)
    assert "Tuesday" not in json.dumps(changes)


async def test_referring_agency_cancels_with_a_reason_and_may_mark_entered_in_error(referral):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    made, _ = await made_referral(svc, category)
    assert (await set_status(svc, made["id"], "agency-home", status="cancelled")).status_code == 422
    cancelled = await set_status(
        svc, made["id"], "agency-home", status="cancelled", reason="withdrawn-by-referrer"
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["referral"]["status_reason"] == "withdrawn-by-referrer"
    assert (await set_status(svc, made["id"], receiving, status="entered-in-error")).status_code == 403
    assert (await set_status(svc, made["id"], "agency-home", status="entered-in-error")).status_code == 200


async def test_bad_status_input_is_refused_without_echoing_it(referral):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    made, _ = await made_referral(svc, category)
    for body in (
        {"status": "rejected", "reason": "Marisol was rude"},
        {"status": "Marisol"},
        {"status": "accepted", "surprise": "Marisol"},
    ):
        r = await set_status(svc, made["id"], receiving, **body)
        assert r.status_code in (409, 422), r.text
        assert "Marisol" not in r.text


async def test_status_change_with_the_same_idempotency_key_is_applied_once(referral):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    made, patient_id = await made_referral(svc, category)
    headers = {**bearer(receiving), "Idempotency-Key": "accept-1"}
    url = f"/v1/referrals/{made['id']}/status"
    first = await svc.client.post(url, json={"status": "accepted"}, headers=headers)
    again = await svc.client.post(url, json={"status": "accepted"}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert len(await svc.outbox(patient_id, CHANGED)) == 1


async def test_rejection_for_no_capacity_reroutes_to_the_next_best_program_linked_to_the_first(referral):
    svc, category = referral, unique("cat")
    first_agency, second_agency = unique("agency"), unique("agency")
    first = await svc.program(category, id=unique("a-first"), agency=first_agency)
    second = await svc.program(category, id=unique("b-second"), agency=second_agency)
    made, patient_id = await made_referral(svc, category)
    assert made["program_id"] == first
    r = await set_status(svc, made["id"], first_agency, status="rejected", reason="no-capacity")
    assert r.status_code == 200, r.text
    new_id = r.json()["rerouted_to"]
    rerouted = (await svc.client.get(f"/v1/referrals/{new_id}", headers=bearer(second_agency))).json()
    assert (rerouted["program_id"], rerouted["status"]) == (second, "requested")
    assert rerouted["replaces_referral_id"] == str(made["id"])
    assert rerouted["service_request_id"] == str(made["service_request_id"])
    made_events = await svc.outbox(patient_id, MADE)
    assert [e["replaces_referral_id"] for e in made_events] == [None, str(made["id"])]
    # Rejected again, nothing left to try: the need is a gap in the network.
    r = await set_status(svc, new_id, second_agency, status="rejected", reason="not-eligible")
    assert r.json()["rerouted_to"] is None
    assert [g["need"] for g in await svc.outbox(patient_id, GAP)] == ["food-insecurity"]


async def test_rejection_for_another_reason_does_not_reroute(referral):
    svc, category = referral, unique("cat")
    first_agency = unique("agency")
    await svc.program(category, id=unique("a-first"), agency=first_agency)
    await svc.program(category, id=unique("b-second"))
    made, _ = await made_referral(svc, category)
    r = await set_status(svc, made["id"], first_agency, status="rejected", reason="client-declined")
    assert r.status_code == 200 and r.json()["rerouted_to"] is None
    assert len(await svc.referrals_of(made["intervention_id"])) == 1


async def test_agencies_see_their_own_referrals_and_those_sent_to_them_only(referral):
    svc, category_a, category_b = referral, unique("cat"), unique("cat")
    agency_a, agency_b = unique("agency"), unique("agency")
    await svc.program(category_a, agency=agency_a)
    await svc.program(category_b, agency=agency_b)
    patient_id = uuid.uuid4()
    await svc.publish(consent(patient_id, "agency-home", agencies=[agency_a, agency_b]))
    a, b = intervention(category_a), intervention(category_b)
    await svc.publish(plan(patient_id, "agency-home", a, b))
    ref_a = await svc.referral_for(a.id, "requested")
    ref_b = await svc.referral_for(b.id, "requested")

    async def ids(agency: str, query: str) -> list[str]:
        r = await svc.client.get(f"/v1/referrals?{query}", headers=bearer(agency))
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert sorted(await ids("agency-home", f"patient_id={patient_id}")) == sorted(
        [str(ref_a["id"]), str(ref_b["id"])]
    )
    assert await ids(agency_a, f"patient_id={patient_id}") == [str(ref_a["id"])]
    assert await ids(agency_a, f"receiving_agency={agency_a}") == [str(ref_a["id"])]
    assert await ids(agency_a, f"receiving_agency={agency_b}") == []
    assert await ids("agency-stranger", f"patient_id={patient_id}") == []
    hidden = await svc.client.get(f"/v1/referrals/{ref_b['id']}", headers=bearer(agency_a))
    assert hidden.status_code == 404
    page = (
        await svc.client.get(f"/v1/referrals?patient_id={patient_id}&limit=1", headers=bearer("agency-home"))
    ).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 1


async def test_a_provider_sees_and_answers_only_the_referrals_sent_to_its_agency(referral):
    svc, category = referral, unique("cat")
    # One agency that both refers (its care managers) and receives (its providers).
    both = unique("agency")
    await svc.program(category, agency=both)
    patient_id = await consented_patient(svc, both, category)
    own = intervention(category)
    await svc.publish(plan(patient_id, both, own))
    mine = await svc.referral_for(own.id, "requested")
    sent, _ = await made_referral(svc, category)  # from agency-home to the same program

    async def seen(role: str) -> list[str]:
        r = await svc.client.get("/v1/referrals", headers=bearer(both, role))
        assert r.status_code == 200, r.text
        return sorted(x["id"] for x in r.json()["items"])

    assert await seen("care-manager") == sorted([str(mine["id"]), str(sent["id"])])
    assert await seen("provider") == sorted([str(mine["id"]), str(sent["id"])])  # both were sent to it
    from_home = await svc.client.get("/v1/referrals", headers=bearer("agency-home", "provider"))
    assert str(sent["id"]) not in {x["id"] for x in from_home.json()["items"]}  # made by home, not sent to it
    refused = await svc.client.post(
        f"/v1/referrals/{sent['id']}/status",
        json={"status": "entered-in-error"},
        headers=bearer("agency-home", "provider"),
    )
    assert refused.status_code == 404
    accepted = await svc.client.post(
        f"/v1/referrals/{sent['id']}/status", json={"status": "accepted"}, headers=bearer(both, "provider")
    )
    assert accepted.status_code == 200 and accepted.json()["referral"]["status"] == "accepted"
    analyst = await svc.client.get("/v1/referrals", headers=bearer(both, "analyst"))
    assert analyst.status_code == 403 and analyst.json()["missing_permission"] == "referral:read"


# --- deadlines ------------------------------------------------------------------------------------


async def test_unanswered_referral_is_flagged_overdue_once_per_deadline(referral):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    made, patient_id = await made_referral(svc, category)
    svc.clock.advance(timedelta(days=2, hours=1))  # Wednesday 10:00: past the two business days

    async def overdue(deadline: str) -> list:
        return [e for e in await svc.outbox(patient_id, OVERDUE) if e["deadline"] == deadline]

    [response] = await eventually(lambda: overdue("response"), what="response overdue")
    assert (response["referral_id"], response["receiving_agency_id"]) == (str(made["id"]), receiving)
    assert (await set_status(svc, made["id"], receiving, status="accepted")).status_code == 200
    svc.clock.advance(timedelta(days=13))
    await eventually(lambda: overdue("outcome"), what="outcome overdue")
    svc.clock.advance(timedelta(days=1))
    sentinel, _ = await made_referral(svc, category)  # the loop has ticked many times by now
    svc.clock.advance(timedelta(days=3))
    await eventually(
        lambda: svc.runtime.pool.fetchval(
            "SELECT response_overdue_at IS NOT NULL FROM referrals WHERE id = $1", sentinel["id"]
        ),
        what="sentinel overdue",
    )
    assert len(await overdue("response")) == 1 and len(await overdue("outcome")) == 1
    detail = (await svc.client.get(f"/v1/referrals/{made['id']}", headers=bearer("agency-home"))).json()
    assert detail["response_overdue"] and detail["outcome_overdue"]


# --- quality and the directory ----------------------------------------------------------------------


async def test_quality_figures_are_computed_from_the_referral_history(referral):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    service_id = await svc.program(category, agency=receiving)
    patient_id = uuid.uuid4()
    await svc.publish(consent(patient_id, "agency-home", agencies=[receiving]))
    items = [intervention(category) for _ in range(4)]
    await svc.publish(plan(patient_id, "agency-home", *items))
    refs = [(await svc.referral_for(i.id, "requested"))["id"] for i in items]

    svc.clock.advance(timedelta(hours=2))
    assert (await set_status(svc, refs[0], receiving, status="accepted")).status_code == 200
    svc.clock.advance(timedelta(hours=2))
    assert (await set_status(svc, refs[1], receiving, status="accepted")).status_code == 200
    await set_status(svc, refs[2], receiving, status="rejected", reason="client-declined")
    await set_status(
        svc,
        refs[0],
        receiving,
        status="completed",
        outcome={"service_delivered": True, "enrollment_status": "enrolled"},
    )
    await set_status(svc, refs[1], receiving, status="failed", reason="unable-to-contact")

    got = (await svc.client.get(f"/v1/services/{service_id}", headers=bearer("agency-home"))).json()
    assert got["quality"] == {
        "referrals": 4,
        "acceptance_rate": round(2 / 3, 4),
        "median_hours_to_accept": 3.0,
        "completion_rate": 0.5,
        "closed_with_outcome_rate": 0.5,
    }


async def test_directory_is_seeded_searchable_and_changed_only_by_its_owner_or_an_administrator(referral):
    svc = referral
    seeded = await svc.client.get("/v1/services/prg-food-bank-central", headers=bearer("agency-home"))
    assert seeded.status_code == 200 and seeded.json()["receiving_agency_id"] == "agency-food-bank"
    orgs = (await svc.client.get("/v1/organizations?limit=200", headers=bearer("agency-home"))).json()[
        "items"
    ]
    assert {"org-food-bank", "org-community-health"} <= {o["id"] for o in orgs}

    category, owner = unique("cat"), unique("agency")
    local = await svc.program(
        category, agency=owner, languages=["vi"], eligibility={"postal_prefixes": ["941"]}
    )
    await svc.program(category, languages=["en"], eligibility={"postal_prefixes": ["100"]})

    async def found(query: str) -> list[str]:
        r = await svc.client.get(
            f"/v1/services?program_category={category}&{query}", headers=bearer("agency-home")
        )
        assert r.status_code == 200, r.text
        return [s["id"] for s in r.json()["items"]]

    assert await found("language=vi&postal_code=94110") == [local]
    assert await found("language=vi&postal_code=10001") == []
    assert await found(f"receiving_agency_id={owner}") == [local]  # an agency's own programs
    assert await found("receiving_agency_id=agency-nowhere") == []

    capacity = {"status": "waitlist", "notes": "about 10 waiting"}
    refused = await svc.client.post(
        f"/v1/services/{local}/capacity", json=capacity, headers=bearer("agency-other", "provider")
    )
    assert refused.status_code == 403
    # The directory is its providers' and administrators' business, not a care manager's.
    no_role = await svc.client.post(f"/v1/services/{local}/capacity", json=capacity, headers=bearer(owner))
    assert no_role.status_code == 403 and no_role.json()["missing_permission"] == "directory:change"
    updated = await svc.client.post(
        f"/v1/services/{local}/capacity", json=capacity, headers=bearer(owner, "provider", "pr-pia")
    )
    assert updated.status_code == 200 and updated.json()["capacity"] == capacity
    shown = (await svc.client.get(f"/v1/services/{local}", headers=bearer("agency-home"))).json()
    assert (shown["capacity_changed_by"], shown["capacity_changed_by_role"], shown["changed_by"]) == (
        "pr-pia",
        "provider",
        "pr-pia",
    )
    assert seeded.json()["changed_by"] is None  # the seed is nobody's change
    assert await found("capacity=waitlist") == [local]

    # A seed reload upserts by id but leaves what an organisation changed through the API.
    food = await svc.client.post(
        "/v1/services/prg-food-bank-central/capacity", json={"status": "no-capacity"}, headers=ADMIN
    )
    assert food.status_code == 200
    async with svc.runtime.uow() as uow:  # the seed loaded again, as on every start
        await load_seed_directory(svc.runtime.context, uow)
    again = (await svc.client.get("/v1/services/prg-food-bank-central", headers=ADMIN)).json()
    assert again["capacity"]["status"] == "no-capacity"
    await svc.client.post(
        "/v1/services/prg-food-bank-central/capacity", json={"status": "capacity"}, headers=ADMIN
    )

    bad = await svc.client.post(
        "/v1/services",
        json={
            "id": "Bad Id Marisol",
            "organization_id": "org-food-bank",
            "name": "x",
            "program_category": "x",
        },
        headers=ADMIN,
    )
    assert bad.status_code == 422 and "Marisol" not in bad.text
    unknown = await svc.client.post(
        "/v1/services",
        json={"id": unique("svc"), "organization_id": "org-nowhere", "name": "x", "program_category": "x"},
        headers=ADMIN,
    )
    assert unknown.status_code == 422
    not_mine = await svc.client.post(
        "/v1/organizations",
        json={"id": "org-food-bank", "agency_id": "agency-x", "name": "Mine now"},
        headers=bearer("agency-x"),
    )
    assert not_mine.status_code == 403

    # An address no link or parser could use is refused at its field, and nothing is saved.
    org_id = unique("org")
    for field, value in [
        ("url", "https://\U0010053e\x10]"),
        ("url", "https://user:pw@example.org"),
        ("email", "a\x10@b.org"),
    ]:
        odd = await svc.client.post(
            "/v1/organizations",
            json={"id": org_id, "agency_id": "agency-home", "name": "Odd", field: value},
            headers=ADMIN,
        )
        assert odd.status_code == 422 and odd.json()["detail"][0]["loc"] == ["body", field], (value, odd.text)
    assert (await svc.client.get(f"/v1/organizations/{org_id}", headers=ADMIN)).status_code == 404
    kept = {
        "url": "https://xn--bcher-kva.example:8443/caf\u00e9?a=1#b",
        "email": "ana.lopez+food@example.org",
    }
    saved = await svc.client.post(
        "/v1/organizations",
        json={"id": org_id, "agency_id": "agency-home", "name": "Fine", **kept},
        headers=ADMIN,
    )
    assert saved.status_code == 201 and {k: saved.json()[k] for k in kept} == kept


# --- referrals made by hand -------------------------------------------------------------------------


async def plan_known(svc: Service, patient_id: uuid.UUID, version: int = 1) -> None:
    async def stored():
        return await svc.runtime.pool.fetchval(
            "SELECT true FROM plans WHERE patient_id = $1 AND version >= $2", patient_id, version
        )

    await eventually(stored, what="plan remembered")


async def refer_by_hand(svc: Service, agency: str = "agency-home", subject: str = "cm-ana", **body):
    jsonable = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in body.items()}
    return await svc.client.post("/v1/referrals", json=jsonable, headers=bearer(agency, subject=subject))


async def test_a_referral_by_hand_without_consent_waits_is_sent_when_consent_arrives_and_is_accepted(
    referral,
):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    chosen = await svc.program(category, agency=receiving)
    patient_id = uuid.uuid4()
    item = Intervention(id=uuid.uuid4(), need="food-insecurity", kind="clinical", needs_referral=False)
    await svc.publish(plan(patient_id, "agency-home", item))
    await plan_known(svc, patient_id)

    r = await refer_by_hand(
        svc, patient_id=patient_id, intervention_id=item.id, service_id=chosen, note="Prefers mornings"
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["status"], made["status_reason"], made["choice"]) == ("draft", "awaiting-consent", "by-hand")
    assert [(h["to_status"], h["by_subject"], h["note"]) for h in made["history"]] == [
        ("draft", "cm-ana", "Prefers mornings")
    ]
    assert await svc.outbox(patient_id, MADE) == []
    hidden = await svc.client.get(f"/v1/referrals/{made['id']}", headers=bearer(receiving, "provider"))
    assert hidden.status_code == 404  # the receiving agency learns of it only once it is sent

    await svc.publish(consent(patient_id, "agency-home", agencies=[receiving]))
    sent = await svc.referral_for(item.id, "requested")
    assert str(sent["id"]) == made["id"] and sent["program_id"] == chosen
    [announced] = await svc.outbox(patient_id, MADE)
    assert (announced["referral_id"], announced["actor_id"], announced["actor_role"]) == (
        made["id"],
        "cm-ana",
        "care-manager",
    )
    assert "mornings" not in json.dumps(await svc.outbox(patient_id))
    accepted = await svc.client.post(
        f"/v1/referrals/{made['id']}/status",
        json={"status": "accepted"},
        headers=bearer(receiving, "provider"),
    )
    assert accepted.status_code == 200 and accepted.json()["referral"]["status"] == "accepted"
    [changed_to_requested, changed_to_accepted] = await svc.outbox(patient_id, CHANGED)
    assert (changed_to_requested["to_status"], changed_to_accepted["to_status"]) == ("requested", "accepted")
    trail = await svc.runtime.pool.fetch(
        "SELECT subject, route FROM audit_log WHERE patient_id = $1 ORDER BY position", patient_id
    )
    assert (trail[0]["subject"], trail[0]["route"]) == ("cm-ana", "POST /v1/referrals")


async def test_a_choice_by_hand_cancels_the_automatic_referral_and_replaces_it(referral):
    svc, category = referral, unique("cat")
    first_agency, second_agency = unique("agency"), unique("agency")
    automatic = await svc.program(category, id=unique("a-first"), agency=first_agency)
    chosen = await svc.program(category, id=unique("b-chosen"), agency=second_agency)
    full = await svc.program(category, id=unique("c-full"), capacity={"status": "no-capacity"})
    made, patient_id = await made_referral(svc, category)
    assert made["program_id"] == automatic
    await plan_known(svc, patient_id)
    ask = {"patient_id": patient_id, "intervention_id": made["intervention_id"]}

    refused = await refer_by_hand(svc, **ask, service_id=full)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["type"] == "not_taking_referrals"
    stranger = await refer_by_hand(svc, "agency-stranger", subject="cm-eve", **ask, service_id=chosen)
    assert stranger.status_code == 404
    denied = await svc.runtime.pool.fetch(
        "SELECT subject, what, outcome_detail FROM audit_log WHERE patient_id = $1 AND outcome = 'denied'",
        patient_id,
    )
    assert [tuple(d) for d in denied] == [("cm-eve", "referral", "no care plan of this patient is known")]
    not_in_plan = await refer_by_hand(
        svc, patient_id=patient_id, intervention_id=uuid.uuid4(), service_id=chosen
    )
    assert (not_in_plan.status_code, not_in_plan.json()["detail"][0]["loc"]) == (
        422,
        ["body", "intervention_id"],
    )
    analyst = await svc.client.post(
        "/v1/referrals",
        json={**{k: str(v) for k, v in ask.items()}, "service_id": chosen},
        headers=bearer("agency-home", "analyst"),
    )
    assert analyst.status_code == 403 and analyst.json()["missing_permission"] == "referral:make"

    r = await refer_by_hand(svc, **ask, service_id=chosen, priority="urgent")
    assert r.status_code == 201, r.text
    new = r.json()
    assert (new["status"], new["program_id"], new["replaces_referral_id"], new["priority"]) == (
        "requested",
        chosen,
        str(made["id"]),
        "urgent",
    )
    assert new["service_request_id"] == str(made["service_request_id"])
    old = (await svc.client.get(f"/v1/referrals/{made['id']}", headers=bearer("agency-home"))).json()
    assert (old["status"], old["status_reason"]) == ("cancelled", "overridden-by-care-manager")
    [cancelled] = await svc.outbox(patient_id, CHANGED)
    assert (cancelled["referral_id"], cancelled["reason"], cancelled["actor_id"]) == (
        str(made["id"]),
        "overridden-by-care-manager",
        "cm-ana",
    )
    [_, replacing] = await svc.outbox(patient_id, MADE)
    assert (replacing["referral_id"], replacing["replaces_referral_id"], replacing["actor_id"]) == (
        new["id"],
        str(made["id"]),
        "cm-ana",
    )
    again = await refer_by_hand(svc, **ask, service_id=automatic)
    assert again.status_code == 409 and again.json()["referral_id"] == new["id"]  # a person's own choice


async def test_an_approved_service_intervention_is_referred_to_the_seeded_home_health_program(referral):
    svc = referral
    patient_id = await consented_patient(svc, "agency-home", "home-health")
    approved = Intervention(
        id=uuid.uuid4(),
        need="clinical-service",
        kind="clinical",
        program_category="home-health",
        needs_referral=True,
        service_code="home-health-visits",
    )
    await svc.publish(plan(patient_id, "agency-home", approved))
    made = await svc.referral_for(approved.id, "requested")
    assert (made["program_id"], made["receiving_agency_id"]) == (
        "prg-home-health-visits",
        "agency-home-health-partners",
    )
    [event] = await svc.outbox(patient_id, MADE)
    assert (event["need"], event["program_category"]) == ("clinical-service", "home-health")


# --- network gaps and recruitment -------------------------------------------------------------------


async def test_a_gap_is_reported_and_activating_a_recruited_prospect_refers_the_waiting_patient(referral):
    svc, category = referral, unique("cat")
    recruited = unique("agency")
    patient_id, item = uuid.uuid4(), intervention(category)
    await svc.publish(
        PatientRegistered(
            patient_id=patient_id,
            agency_id="agency-home",
            preferred_language="so",
            registered_at=svc.clock(),
            postal_area="100",
        )
    )
    await svc.publish(consent(patient_id, "agency-home", agencies=[recruited]))
    await eventually(
        lambda: svc.runtime.pool.fetchval("SELECT true FROM patients WHERE patient_id = $1", patient_id)
    )
    await svc.publish(plan(patient_id, "agency-home", item, language=None))
    await eventually(
        lambda: svc.runtime.pool.fetchval(
            "SELECT true FROM network_gaps WHERE intervention_id = $1", item.id
        ),
        what="gap recorded",
    )

    analyst = bearer("agency-network", "analyst", "an-al")
    report = await svc.client.get(f"/v1/network-gaps?program_category={category}", headers=analyst)
    assert report.status_code == 200, report.text
    [group] = report.json()["items"]
    assert group == {
        "need": "food-insecurity",
        "program_category": category,
        "postal_area": "100",
        "language": "so",
        "patients_waiting": 1,
        "interventions_waiting": 1,
        "oldest_waiting_since": svc.clock().isoformat().replace("+00:00", "Z"),
    }
    assert str(patient_id) not in report.text
    no_role = await svc.client.get("/v1/network-gaps", headers=bearer("agency-home"))
    assert no_role.status_code == 403 and no_role.json()["missing_permission"] == "network-gap:read"

    admin = bearer("agency-network", "admin", "adm-ada")
    prospect_id = unique("sunrise")
    body = {
        "id": prospect_id,
        "name": "Sunrise Somali Community Pantry",
        "program_categories": [category],
        "needs": ["food-insecurity"],
        "languages": ["so", "en"],
        "postal_prefixes": ["10"],
        "notes": "Met at the county fair",
    }
    added = await svc.client.post("/v1/prospects", json=body, headers=admin)
    assert added.status_code == 201, added.text
    assert (added.json()["status"], added.json()["owner_id"]) == ("prospect", "adm-ada")
    moves = ["contacted", "onboarding"]
    for status in moves:
        r = await svc.client.post(
            f"/v1/prospects/{prospect_id}/status", json={"status": status}, headers=admin
        )
        assert r.status_code == 200, r.text
    early = await svc.client.post(
        f"/v1/prospects/{prospect_id}/status", json={"status": "active"}, headers=admin
    )
    assert early.status_code == 422  # no agency to answer its referrals yet
    updated = await svc.client.post("/v1/prospects", json={**body, "agency_id": recruited}, headers=admin)
    assert updated.status_code == 200 and updated.json()["status"] == "onboarding"

    supervisor = bearer("agency-home", "supervisor", "sv-sam")
    active = await svc.client.post(
        f"/v1/prospects/{prospect_id}/status", json={"status": "active"}, headers=supervisor
    )
    assert active.status_code == 200, active.text
    service_id = f"{prospect_id}-{category}"
    assert (active.json()["referred"], active.json()["service_ids"]) == (1, [service_id])
    made = await svc.referral_for(item.id, "requested")
    assert (made["program_id"], made["receiving_agency_id"]) == (service_id, recruited)
    [event] = await svc.outbox(patient_id, MADE)
    assert (event["intervention_id"], event["actor_id"]) == (str(item.id), "sv-sam")
    after = await svc.client.get(f"/v1/network-gaps?program_category={category}", headers=analyst)
    assert after.json()["items"] == []

    shown = (await svc.client.get(f"/v1/services/{service_id}", headers=admin)).json()
    assert (shown["receiving_agency_id"], shown["changed_by"], shown["languages"]) == (
        recruited,
        "sv-sam",
        ["so", "en"],
    )
    detail = (await svc.client.get(f"/v1/prospects/{prospect_id}", headers=admin)).json()
    assert [(h["to_status"], h["by_subject"]) for h in detail["history"]] == [
        ("prospect", "adm-ada"),
        ("contacted", "adm-ada"),
        ("onboarding", "adm-ada"),
        ("active", "sv-sam"),
    ]
    listed = await svc.client.get(f"/v1/prospects?status=active&program_category={category}", headers=admin)
    assert [p["id"] for p in listed.json()["items"]] == [prospect_id]
    care_manager = await svc.client.get("/v1/prospects", headers=bearer("agency-home"))
    assert care_manager.status_code == 403 and care_manager.json()["missing_permission"] == "prospect:read"
    final = await svc.client.post(
        f"/v1/prospects/{prospect_id}/status", json={"status": "declined", "reason": "other"}, headers=admin
    )
    assert final.status_code == 409

    # Its provider turns the patient away and nothing else can take them: the gap opens again, waiting
    # from now, reported again but announced once.
    svc.clock.advance(timedelta(hours=1))
    rejected = await svc.client.post(
        f"/v1/referrals/{made['id']}/status",
        json={"status": "rejected", "reason": "no-capacity"},
        headers=bearer(recruited, "provider"),
    )
    assert rejected.status_code == 200 and rejected.json()["rerouted_to"] is None
    [reopened] = (
        await svc.client.get(f"/v1/network-gaps?program_category={category}", headers=analyst)
    ).json()["items"]
    assert (reopened["patients_waiting"], reopened["oldest_waiting_since"]) == (
        1,
        svc.clock().isoformat().replace("+00:00", "Z"),
    )
    assert len(await svc.outbox(patient_id, GAP)) == 1


async def test_a_gap_recorded_before_its_routing_details_were_kept_is_referred_from_the_plan_known_since(
    referral,
):
    svc, category = referral, unique("cat")
    patient_id, item = uuid.uuid4(), intervention(category)
    await svc.runtime.pool.execute(  # as migration 004 left a gap recorded before it
        "INSERT INTO network_gaps (intervention_id, patient_id, need, program_category, detected_at)"
        " VALUES ($1, $2, 'food-insecurity', $3, $4)",
        item.id,
        patient_id,
        category,
        svc.clock(),
    )
    await svc.publish(plan(patient_id, "agency-own", item))  # no program yet: the gap stays as it was
    await plan_known(svc, patient_id)
    assert await svc.runtime.pool.fetchval(
        "SELECT agency_id IS NULL AND plan_id IS NULL FROM network_gaps WHERE intervention_id = $1", item.id
    )
    admin = bearer("agency-network", "admin", "adm-ada")
    prospect_id = unique("own")
    body = {
        "id": prospect_id,
        "name": "Own pantry",
        "agency_id": "agency-own",
        "program_categories": [category],
    }
    assert (await svc.client.post("/v1/prospects", json=body, headers=admin)).status_code == 201
    for status in ("contacted", "onboarding", "active"):
        r = await svc.client.post(
            f"/v1/prospects/{prospect_id}/status", json={"status": status}, headers=admin
        )
        assert r.status_code == 200, r.text
    assert r.json()["referred"] == 1
    made = await svc.referral_for(item.id, "requested")  # the patient's own agency: no consent needed
    assert (made["agency_id"], made["plan_id"]) == ("agency-own", uuid.uuid5(patient_id, "plan"))


# --- the audit log --------------------------------------------------------------------------------


async def test_every_read_of_a_referral_is_audited_with_the_person_and_the_receiving_agency_as_a_disclosure(
    referral,
):
    svc, category = referral, unique("cat")
    receiving = unique("agency")
    await svc.program(category, agency=receiving)
    made, patient_id = await made_referral(svc, category)
    rid = made["id"]
    # The receiving agency's provider answers; the answer shows the referral, its history's notes.
    accepted = await svc.client.post(
        f"/v1/referrals/{rid}/status",
        json={"status": "accepted", "note": "Called the client"},
        headers=bearer(receiving, "provider", "pr-pat"),
    )
    assert accepted.status_code == 200, accepted.text
    reader = bearer("agency-home", subject="cm-ana")
    detail = await svc.client.get(f"/v1/referrals/{rid}", headers=reader)
    assert [(h["by_subject"], h["by_role"]) for h in detail.json()["history"]] == [
        (None, None),  # made by careloop from the plan
        ("pr-pat", "provider"),
    ]
    listed = await svc.client.get(f"/v1/referrals?patient_id={patient_id}", headers=reader)
    assert [r["id"] for r in listed.json()["items"]] == [str(rid)]
    [changed] = await svc.outbox(patient_id, CHANGED)
    assert (changed["actor_id"], changed["actor_role"]) == ("pr-pat", "provider")

    stranger = await svc.client.get(
        f"/v1/referrals/{rid}", headers=bearer("agency-stranger", subject="cm-eve")
    )
    analyst = await svc.client.get(f"/v1/referrals/{rid}", headers=bearer("agency-home", "analyst", "an-al"))
    assert (stranger.status_code, analyst.status_code) == (404, 403)

    supervisor = bearer("agency-home", "supervisor", "sv-sam")
    trail = await svc.client.get(f"/v1/audit?patient_id={patient_id}", headers=supervisor)
    assert trail.status_code == 200, trail.text
    seen = [(e["subject"], e["agency_id"], e["route"]) for e in trail.json()["items"]]
    assert seen == [
        ("pr-pat", receiving, "POST /v1/referrals/{referral_id}/status"),
        ("cm-ana", "agency-home", "GET /v1/referrals/{referral_id}"),
        ("cm-ana", "agency-home", "GET /v1/referrals"),
    ]
    assert all(
        (e["what"], e["entity_id"], e["outcome"], e["source"], e["patient_agency_id"])
        == ("referral", str(rid), "allowed", "referral", "agency-home")
        for e in trail.json()["items"]
    )
    # Shown to the receiving agency: in the patient's accounting of disclosures; the own agency's reads not.
    disclosures = await svc.client.get(f"/v1/audit/disclosures?patient_id={patient_id}", headers=supervisor)
    assert [e["subject"] for e in disclosures.json()["items"]] == ["pr-pat"]
    # Refusals are audited by the kernel under the referral's id (the path names no patient).
    denied = await svc.runtime.pool.fetch(
        "SELECT subject, outcome_detail FROM audit_log WHERE entity_id = $1 AND outcome = 'denied'"
        " ORDER BY position",
        str(rid),
    )
    assert [(d["subject"], d["outcome_detail"]) for d in denied] == [
        ("cm-eve", "referral not found"),
        ("an-al", "referral:read"),
    ]
    # The audit log answers to the patient's own agency only.
    other = bearer(receiving, "supervisor", "sv-other")
    assert (await svc.client.get(f"/v1/audit?patient_id={patient_id}", headers=other)).status_code == 404


async def test_emitted_events_validate_against_the_published_schemas(referral):
    svc = referral
    rows = await svc.runtime.pool.fetch("SELECT event_type, payload FROM outbox")
    assert {r["event_type"] for r in rows} == {MADE, CHANGED, GAP, OVERDUE}
    for r in rows:
        body = json.loads(r["payload"])
        jsonschema.validate(body, json.loads(path_of(r["event_type"]).read_text()))
        assert REGISTRY[r["event_type"]].model_validate(body)


async def test_an_address_saved_under_the_looser_rule_before_is_still_shown_and_activation_names_it(referral):
    """Web and e-mail addresses were once held only to "no spaces"; rows saved then are shown as they are,
    and a prospect with one is refused activation at that field until it is saved again."""
    svc, category = referral, unique("cat")
    service_id = await svc.program(category)
    org_id = (await svc.client.get(f"/v1/services/{service_id}", headers=ADMIN)).json()["organization_id"]
    legacy_url, legacy_email = "https://a\x10b]/x", "x\x10@y.org"
    prospect_id = unique("prospect")
    body = {
        "id": prospect_id,
        "name": "Legacy",
        "agency_id": unique("agency"),
        "program_categories": [category],
    }
    assert (await svc.client.post("/v1/prospects", json=body, headers=ADMIN)).status_code == 201
    for status in ("contacted", "onboarding"):
        moved = await svc.client.post(
            f"/v1/prospects/{prospect_id}/status", json={"status": status}, headers=ADMIN
        )
        assert moved.status_code == 200, moved.text
    pool = svc.runtime.pool
    await pool.execute(
        "UPDATE organizations SET url = $2, email = $3 WHERE id = $1", org_id, legacy_url, legacy_email
    )
    contact = {"url": legacy_url, "email": legacy_email}
    await pool.execute("UPDATE services SET contact = $2 WHERE id = $1", service_id, contact)
    await pool.execute("UPDATE prospects SET url = $2 WHERE id = $1", prospect_id, legacy_url)

    org = await svc.client.get(f"/v1/organizations/{org_id}", headers=ADMIN)
    assert org.status_code == 200 and (org.json()["url"], org.json()["email"]) == (legacy_url, legacy_email)
    listed = await svc.client.get("/v1/organizations?limit=200", headers=ADMIN)
    assert listed.status_code == 200
    shown = await svc.client.get(f"/v1/services/{service_id}", headers=ADMIN)
    assert shown.status_code == 200 and shown.json()["contact"]["url"] == legacy_url
    found = await svc.client.get(f"/v1/services?program_category={category}", headers=ADMIN)
    assert found.status_code == 200 and [s["id"] for s in found.json()["items"]] == [service_id]
    prospect = await svc.client.get(f"/v1/prospects/{prospect_id}", headers=ADMIN)
    assert prospect.status_code == 200 and prospect.json()["url"] == legacy_url

    refused = await svc.client.post(
        f"/v1/prospects/{prospect_id}/status", json={"status": "active"}, headers=ADMIN
    )
    assert refused.status_code == 422 and [p["loc"] for p in refused.json()["detail"]] == [
        ["prospect", "url"]
    ]
    assert "\x10" not in refused.text and "a\\u0010b" not in refused.text
    still = await svc.client.get(f"/v1/prospects/{prospect_id}", headers=ADMIN)
    assert still.json()["status"] == "onboarding"
    again = await svc.client.post(
        "/v1/prospects", json={**body, "url": "https://legacy.example.org"}, headers=ADMIN
    )
    assert again.status_code == 200, again.text
    active = await svc.client.post(
        f"/v1/prospects/{prospect_id}/status", json={"status": "active"}, headers=ADMIN
    )
    assert active.status_code == 200, active.text
