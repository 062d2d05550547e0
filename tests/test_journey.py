"""The walking skeleton end to end: the five services as separate processes, real Kafka and PostgreSQL."""

import asyncio
import time

import httpx
import pytest
import pytest_asyncio

from careloop_shared.contracts import (
    ConsentRecorded,
    FollowUpDue,
    PatientAssessed,
    PlanUpdated,
    ReferralMade,
)
from careloop_shared.events import REGISTRY
from careloop_shared.testing import TopicReader, bearer, eventually, header, start_services
from tests.conftest import SERVICES, base_env, new_prefix

pytestmark = pytest.mark.integration

PATIENT = {
    "given_name": "Zelda",
    "family_name": "Quartermaine",
    "birth_date": "1961-07-19",
    "preferred_language": "es",
    "phone": "+1 555 0199",
}
PHQ2_POSITIVE = {"instrument": "phq-2", "answers": {"44250-9": 2, "44255-8": 2}}
PHQ9_ITEMS = (
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
)


@pytest_asyncio.fixture(scope="module")
async def platform(infra, database_factory, fast_cadence_library, log_dir):
    prefix = new_prefix()
    env = {**base_env(infra, prefix), "CAREPLAN_PLAN_LIBRARY": str(fast_cadence_library)}
    for service in SERVICES:
        env[f"{service.upper()}_DATABASE_URL"] = await database_factory(service)
    processes = start_services(SERVICES, env, log_dir)
    try:
        await asyncio.gather(*(p.wait_ready() for p in processes.values()))
        yield prefix, processes
    finally:
        for process in processes.values():
            process.stop()


async def test_assessment_flows_to_plan_referral_and_a_due_follow_up(platform, infra):
    prefix, svc = platform
    agency = bearer("agency-journey")
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(f"{svc['intake'].url}/v1/patients", json=PATIENT, headers=agency)
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        # Referring to another agency's program needs the patient's consent.
        consented = await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/consents",
            json={"purpose": "referral", "program_categories": ["behavioral-health"]},
            headers=agency,
        )
        assert consented.status_code == 201, consented.text
        assessed = await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/assessments",
            json=PHQ2_POSITIVE,
            headers=agency,
        )
        assert assessed.status_code == 202, assessed.text

        async def follow_ups(status: str) -> list:
            r = await http.get(
                f"{svc['followup'].url}/v1/follow-ups",
                params={"patient_id": patient_id, "status": status},
                headers=agency,
            )
            assert r.status_code == 200, r.text
            return r.json()["items"]

        scheduled = await eventually(lambda: follow_ups("scheduled"), timeout=30, what="follow-ups scheduled")
        assert {f["reason"] for f in scheduled} <= {"plan-cadence", "referral-check-in"}
        due = await eventually(lambda: follow_ups("due"), timeout=30, what="follow-up due")
        assert [f["reason"] for f in due] == ["plan-cadence"]

        plan = (
            await http.get(f"{svc['careplan'].url}/v1/patients/{patient_id}/care-plan", headers=agency)
        ).json()
        # Version 1 from the assessment; a registration read after it personalises a version 2.
        assert plan["version"] in (1, 2)
        assert [g["need"] for g in plan["document"]["goals"]] == ["depression"]
        referrals = (
            await http.get(
                f"{svc['referral'].url}/v1/referrals", params={"patient_id": patient_id}, headers=agency
            )
        ).json()["items"]
        # The consent covers behavioral health only: the interpreter referral waits for one.
        assert sorted((r["need"], r["status"]) for r in referrals) == [
            ("depression", "requested"),
            ("language-access", "draft"),
        ]

    types = (PatientAssessed, PlanUpdated, ReferralMade, FollowUpDue, ConsentRecorded)
    topics = [f"{prefix}{t.type}" for t in types]
    async with TopicReader(infra.bootstrap_servers, *topics) as reader:
        await reader.wait_for(
            lambda r: r.topic == topics[3] and header(r, "ce_subject") == patient_id,
            what="FollowUpDue on Kafka",
        )
        await eventually(lambda: _all_types_seen(reader, topics, patient_id), what="all events")
        mine = [r for r in reader.records if r.key.decode() == patient_id]

    by_type = {header(r, "ce_type"): r for r in mine}
    assessed_id = header(by_type[PatientAssessed.type], "ce_id")
    plan_event = next(r for r in mine if r.topic == topics[1] and header(r, "ce_causationid") == assessed_id)
    referral_event = by_type[ReferralMade.type]
    consent_event = by_type[ConsentRecorded.type]
    assert header(plan_event, "ce_causationid") == assessed_id
    assert header(plan_event, "ce_correlationid") == header(by_type[PatientAssessed.type], "ce_correlationid")
    # Made on the plan when the consent was already known there, else when the consent arrived.
    made_on = {header(plan_event, "ce_id"), header(consent_event, "ce_id")}
    assert header(referral_event, "ce_causationid") in made_on
    assert header(referral_event, "ce_correlationid") in {
        header(r, "ce_correlationid") for r in (plan_event, consent_event)
    }
    assert len([r for r in mine if r.topic == topics[3]]) == 1  # FollowUpDue exactly once
    # Events carry the pseudonymous id, never the patient's identifying details.
    wire = b"".join(r.value + b"".join(v for _, v in r.headers) for r in mine)
    for phi in ("Zelda", "Quartermaine", "1961-07-19"):
        assert phi.encode() not in wire
    for process in svc.values():
        assert "Quartermaine" not in process.log_path.read_text()


async def _all_types_seen(reader: TopicReader, topics: list[str], patient_id: str) -> bool:
    await reader.poll()
    return {r.topic for r in reader.records if r.key.decode() == patient_id} == set(topics)


async def test_another_agency_cannot_read_or_change_a_patient(platform):
    _, svc = platform
    owner, stranger = bearer("agency-owner"), bearer("agency-stranger")
    async with httpx.AsyncClient(timeout=10) as http:
        patient_id = (
            await http.post(f"{svc['intake'].url}/v1/patients", json=PATIENT, headers=owner)
        ).json()["id"]
        await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/assessments", json=PHQ2_POSITIVE, headers=owner
        )

        async def owner_sees_plan() -> bool:
            r = await http.get(f"{svc['careplan'].url}/v1/patients/{patient_id}/care-plan", headers=owner)
            return r.status_code == 200

        await eventually(owner_sees_plan, what="plan visible to its agency")

        reads = [
            await http.get(f"{svc['intake'].url}/v1/patients/{patient_id}", headers=stranger),
            await http.get(f"{svc['careplan'].url}/v1/patients/{patient_id}/care-plan", headers=stranger),
        ]
        assert [r.status_code for r in reads] == [404, 404]
        assert "Zelda" not in reads[0].text
        change = await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/assessments", json=PHQ2_POSITIVE, headers=stranger
        )
        assert change.status_code == 404
        for service, path in (("referral", "/v1/referrals"), ("followup", "/v1/follow-ups")):
            r = await http.get(
                f"{svc[service].url}{path}", params={"patient_id": patient_id}, headers=stranger
            )
            body = r.json()
            assert r.status_code == 200 and (body["items"] if isinstance(body, dict) else body) == []
        assert (
            await http.get(f"{svc['intake'].url}/v1/patients/{patient_id}", headers=owner)
        ).status_code == 200
        # No token, no data.
        assert (await http.get(f"{svc['intake'].url}/v1/patients/{patient_id}")).status_code == 401


async def test_bad_assessment_input_is_refused_without_echoing_it(platform):
    _, svc = platform
    agency = bearer("agency-input")
    async with httpx.AsyncClient(timeout=10) as http:
        patient_id = (
            await http.post(f"{svc['intake'].url}/v1/patients", json=PATIENT, headers=agency)
        ).json()["id"]
        bad = await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/assessments",
            json={"instrument": "phq-2", "answers": {"44250-9": 9, "99999-9": "Quartermaine"}},
            headers=agency,
        )
        assert bad.status_code == 422
        problems = {tuple(d["loc"]): d["msg"] for d in bad.json()["detail"]}
        assert problems[("body", "answers", "44250-9")] == "must be between 0 and 3"
        assert problems[("body", "answers", "44255-8")] == "missing"
        assert "Quartermaine" not in bad.text
        bad_patient = await http.post(
            f"{svc['intake'].url}/v1/patients", json={**PATIENT, "birth_date": "Quartermaine"}, headers=agency
        )
        assert bad_patient.status_code == 422
        assert "Quartermaine" not in bad_patient.text


async def test_the_whole_journey_appears_in_the_case_record_in_causal_order(platform):
    """Assessment, plan, referral accepted and completed, follow-up due and completed, plan updated."""
    _, svc = platform
    agency = bearer("agency-record")
    receiving = bearer("agency-community-health")  # runs the behavioral health program in the seed directory
    async with httpx.AsyncClient(timeout=10) as http:

        async def post(service: str, path: str, body: object, headers: dict[str, str] = agency) -> dict:
            r = await http.post(f"{svc[service].url}{path}", json=body, headers=headers)
            assert r.status_code in (200, 201, 202), r.text
            return r.json()

        async def get(service: str, path: str, headers: dict[str, str] = agency, **params: str) -> dict:
            r = await http.get(f"{svc[service].url}{path}", params=params, headers=headers)
            assert r.status_code in (200, 404), r.text
            return r.json() if r.status_code == 200 else {}

        patient_id = (await post("intake", "/v1/patients", {**PATIENT, "preferred_language": "en"}))["id"]
        await post(
            "intake",
            f"/v1/patients/{patient_id}/consents",
            {"purpose": "referral", "program_categories": ["behavioral-health"]},
        )
        await post("intake", f"/v1/patients/{patient_id}/assessments", PHQ2_POSITIVE)

        async def referral() -> dict | None:
            # Sent: a draft waiting for the consent (when the plan arrived first) is not the provider's yet.
            items = (await get("referral", "/v1/referrals", patient_id=patient_id)).get("items", [])
            return next((r for r in items if r["status"] == "requested"), None)

        made = await eventually(referral, what="referral made")

        async def recorded(event_type: str, field: str, value: str) -> bool:
            # record takes what one fetch brings from several topics in no particular order: the next step
            # waits until the record holds the event before it, so the order asserted below is the events'.
            entries = (await get("record", f"/v1/patients/{patient_id}/record")).get("entries", [])
            return any(e["type"] == event_type and e["data"][field] == value for e in entries)

        made_type = "careloop.referral.referral_made.v1"
        await eventually(lambda: recorded(made_type, "referral_id", made["id"]), what="the referral recorded")
        for status, extra in (
            ("accepted", {}),
            ("in-progress", {}),
            ("completed", {"outcome": {"service_delivered": True, "enrollment_status": "enrolled"}}),
        ):
            await post(
                "referral", f"/v1/referrals/{made['id']}/status", {"status": status, **extra}, receiving
            )

        async def due_follow_up() -> dict | None:
            items = (await get("followup", "/v1/follow-ups", patient_id=patient_id, status="due")).get(
                "items", []
            )
            return next((f for f in items if f["reason"] == "plan-cadence"), None)

        follow_up = await eventually(due_follow_up, what="follow-up due")
        due_type = "careloop.followup.follow_up_due.v1"
        due_id = follow_up["id"]
        await eventually(lambda: recorded(due_type, "follow_up_id", due_id), what="its coming due recorded")
        plan = await get("careplan", f"/v1/patients/{patient_id}/care-plan")
        goal_id = plan["document"]["goals"][0]["id"]
        await post(
            "followup",
            f"/v1/follow-ups/{follow_up['id']}/outcome",
            {
                "reached": True,
                "goal_progress": [{"goal_id": goal_id, "progress": "improving"}],
                "next_step": "continue-plan",
                "note": "Feels better since starting the group sessions",
            },
        )

        wanted = {
            "careloop.intake.patient_registered.v1",
            "careloop.intake.consent_recorded.v1",
            "careloop.intake.patient_assessed.v1",
            "careloop.careplan.plan_updated.v1",
            "careloop.referral.referral_made.v1",
            "careloop.referral.referral_status_changed.v1",
            "careloop.followup.follow_up_due.v1",
            "careloop.followup.follow_up_completed.v1",
        }

        seen: list = []

        async def full_record() -> list | None:
            entries = (await get("record", f"/v1/patients/{patient_id}/record")).get("entries", [])
            seen[:] = entries
            # The provider's three answers; a referral drafted because the plan arrived before the consent
            # (topics have no order between them) is released first with one more change, to requested.
            changes = [
                e
                for e in entries
                if e["type"] == "careloop.referral.referral_status_changed.v1"
                and e["data"]["by_party"] == "target"
            ]
            plan_reasons = {
                e["data"]["reason"] for e in entries if e["type"] == "careloop.careplan.plan_updated.v1"
            }
            done = wanted <= {e["type"] for e in entries} and len(changes) == 3 and "progress" in plan_reasons
            return entries if done else None

        try:
            entries = await eventually(full_record, timeout=60, what="the whole journey in the record")
        except AssertionError as missing:  # say what did arrive, to tell a slow link from a lost event
            arrived = [
                e["type"].split(".")[-2] + (f":{e['data'].get('reason')}" if "plan" in e["type"] else "")
                for e in seen
            ]
            raise AssertionError(f"{missing}; the record holds {arrived}") from None
        verified = await get("record", f"/v1/patients/{patient_id}/record/verify")
        stranger = await http.get(
            f"{svc['record'].url}/v1/patients/{patient_id}/record", headers=bearer("agency-stranger")
        )

    # Causes come before their effects, and every event is in the record exactly once.
    position = {e["event_id"]: i for i, e in enumerate(entries)}
    assert len(position) == len(entries)
    for i, entry in enumerate(entries):
        if entry["causation_id"] in position:
            assert position[entry["causation_id"]] < i, entry["summary"]
    order = [e["type"].split(".")[2] for e in entries]
    # Topics have no order between them: a plan personalised when the registration arrived late may come
    # before the assessment; what must hold is that each effect follows its own cause.
    assessed = entries[order.index("patient_assessed")]
    drafted = next(
        e
        for e in entries
        if e["causation_id"] == assessed["event_id"] and e["type"].endswith("plan_updated.v1")
    )
    made = entries[order.index("referral_made")]
    assert position[assessed["event_id"]] < position[drafted["event_id"]] < position[made["event_id"]]
    # The provider answered a referral it had been sent. (A drafted referral's release to requested is in the
    # transaction that announces it, on another topic: either may be recorded first.)
    answered = next(
        i
        for i, e in enumerate(entries)
        if e["type"].endswith("referral_status_changed.v1") and e["data"]["by_party"] == "target"
    )
    assert position[made["event_id"]] < answered
    assert order.index("follow_up_due") < order.index("follow_up_completed")
    statuses = [e["data"]["to_status"] for e in entries if e["type"].endswith("referral_status_changed.v1")]
    assert statuses in (
        ["accepted", "in-progress", "completed"],
        ["requested", "accepted", "in-progress", "completed"],
    )
    final_plan = [e for e in entries if e["type"].endswith("plan_updated.v1")][-1]
    assert any(e["data"]["reason"] == "progress" for e in entries if e["type"].endswith("plan_updated.v1"))
    assert final_plan["summary"].startswith("Care plan version")
    assert all(e["summary"] and e["actor"] for e in entries)
    # Verified a moment later: the chain holds, and may have grown (follow-ups keep falling due).
    assert verified["intact"] and verified["entries"] >= len(entries)
    assert stranger.status_code == 404
    assert "group sessions" not in str(entries) and "Quartermaine" not in str(entries)


CANARIES = ("Canaryzeb", "Phiwhistle", "555 0142", "canary.phi@example.org", "K1A0B7", "Xylophonenote")


async def test_patient_data_reaches_only_who_may_see_it_and_every_read_is_audited(platform, infra, log_dir):
    """Canary values go in everywhere a person can type them; they must come out only to the roles the
    matrix allows, never in an event, a log line or an analyst's answer, and each read names its reader."""
    prefix, svc = platform
    home, provider_agency = "agency-canary", "agency-community-health"  # runs the seed's behavioral health
    manager = bearer(home, subject="cm-ana")
    async with httpx.AsyncClient(timeout=10) as http:

        async def call(
            method: str, service: str, path: str, headers: dict, body: object = None
        ) -> httpx.Response:
            return await http.request(method, f"{svc[service].url}{path}", json=body, headers=headers)

        patient = {
            "given_name": "Canaryzeb",
            "family_name": "Phiwhistle",
            "birth_date": "1970-02-03",
            "contact_preference": "phone",
            "phone": "+1 555 0142",
            "email": "canary.phi@example.org",
            "postal_code": "K1A0B7",
        }
        r = await call("POST", "intake", "/v1/patients", manager, patient)
        assert r.status_code == 201, r.text
        patient_id = r.json()["id"]
        consent = {"purpose": "referral", "program_categories": ["behavioral-health"]}
        assert (
            await call("POST", "intake", f"/v1/patients/{patient_id}/consents", manager, consent)
        ).status_code == 201
        assessed = await call(
            "POST", "intake", f"/v1/patients/{patient_id}/assessments", manager, PHQ2_POSITIVE
        )
        assert assessed.status_code == 202

        async def referral() -> dict | None:
            r = await call("GET", "referral", f"/v1/referrals?patient_id={patient_id}", manager)
            return (r.json()["items"] or [None])[0]

        made = await eventually(referral, what="referral made")
        member = {"name": "Canaryzeb Helper", "relationship": "family", "role": "primary-support"}
        member |= {"contact": "canary.phi@example.org"}
        assert (
            await call("POST", "careplan", f"/v1/patients/{patient_id}/care-team", manager, member)
        ).status_code == 201
        accepted = await call(
            "POST",
            "referral",
            f"/v1/referrals/{made['id']}/status",
            bearer(provider_agency, "provider", subject="pr-joe"),
            {"status": "accepted", "note": "Xylophonenote: call after 5"},
        )
        assert accepted.status_code == 200, accepted.text

        # The provider sees what it needs to act on the referral, and that read is a disclosure.
        async def provider_view() -> dict | None:
            r = await call(
                "GET",
                "intake",
                f"/v1/referred-patients/{patient_id}",
                bearer(provider_agency, "provider", subject="pr-joe"),
            )
            return r.json() if r.status_code == 200 else None

        seen = await eventually(provider_view, what="the provider's view of the referred patient")
        assert (
            "Canaryzeb" in str(seen) and "555 0142" in str(seen) and "canary.phi@example.org" not in str(seen)
        )
        supervisor = bearer(home, "supervisor", subject="sv-sam")
        disclosed = (
            await call("GET", "intake", f"/v1/audit/disclosures?patient_id={patient_id}", supervisor)
        ).json()
        assert {(e["subject"], e["agency_id"], e["what"]) for e in disclosed["items"]} == {
            ("pr-joe", provider_agency, "referred-patient")
        }
        trail = (await call("GET", "intake", f"/v1/audit?patient_id={patient_id}", supervisor)).json()[
            "items"
        ]
        assert ("cm-ana", "allowed") not in {(e["subject"], e["outcome"]) for e in trail}  # she only wrote

        # An analyst is refused everything that names or describes the patient, and sees no canary.
        analyst = bearer(home, "analyst", subject="an-al")
        for service, path in (
            ("intake", f"/v1/patients/{patient_id}"),
            ("intake", f"/v1/patients/{patient_id}/assessments"),
            ("careplan", f"/v1/patients/{patient_id}/care-plan"),
            ("careplan", f"/v1/patients/{patient_id}/care-team"),
            ("referral", f"/v1/referrals/{made['id']}"),
            ("followup", f"/v1/follow-ups?patient_id={patient_id}"),
            ("record", f"/v1/patients/{patient_id}/record"),
        ):
            r = await call("GET", service, path, analyst)
            assert r.status_code == 403, (service, path, r.status_code)
        for service, path in (
            ("referral", "/v1/services?limit=200"),
            ("record", f"/v1/patients/{patient_id}/record/verify"),
        ):
            r = await call("GET", service, path, analyst)
            assert r.status_code in (200, 404) and not any(c in r.text for c in CANARIES), (service, path)

        # The case record names the people who acted.
        async def record_names_people() -> list | None:
            r = await call("GET", "record", f"/v1/patients/{patient_id}/record", manager)
            actors = {e["actor"] for e in r.json().get("entries", [])} if r.status_code == 200 else set()
            return (
                sorted(actors)
                if any("pr-joe" in a for a in actors) and any("cm-ana" in a for a in actors)
                else None
            )

        await eventually(record_names_people, what="the record naming cm-ana and pr-joe")

    # No canary in any event on any topic, body or header, nor in any service's log.
    topics = [f"{prefix}{t}" for t in REGISTRY]
    async with TopicReader(infra.bootstrap_servers, *topics) as reader:
        await eventually(lambda: _has_events_of(reader, patient_id), what="the patient's events")
        for record in reader.records:
            text = (record.value or b"").decode() + " ".join(v.decode() for _, v in record.headers)
            assert not any(c in text for c in CANARIES), record.topic
    for path in log_dir.glob("*.log"):
        text = path.read_text(errors="replace")
        assert not any(c in text for c in CANARIES), path.name


async def _has_events_of(reader: TopicReader, patient_id: str) -> bool:
    await reader.poll()
    return sum(1 for r in reader.records if r.key and r.key.decode() == patient_id) >= 6


async def test_an_item_9_answer_puts_a_safety_check_on_the_care_managers_list_at_once(platform):
    _, svc = platform
    agency = "agency-safety"
    manager = bearer(agency, subject="cm-zoe")
    phq9 = {"instrument": "phq-9", "answers": {**dict.fromkeys(PHQ9_ITEMS, 0), "44260-8": 1}}
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(f"{svc['intake'].url}/v1/patients", json=PATIENT, headers=manager)
        patient_id = created.json()["id"]
        assessed = await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/assessments", json=phq9, headers=manager
        )
        assert assessed.status_code == 202
        answered = time.monotonic()

        async def safety_check() -> dict | None:
            r = await http.get(f"{svc['followup'].url}/v1/tasks", params={"assignee": "me"}, headers=manager)
            mine = [t for t in r.json()["items"] if t["patient_id"] == patient_id]
            return next((t for t in mine if t["kind"] == "safety-check"), None)

        task = await eventually(
            safety_check, timeout=10, interval=0.02, what="a safety check on cm-zoe's list"
        )
        took = time.monotonic() - answered
    assert (task["priority"], task["status"], task["assignee_id"]) == ("stat", "open", "cm-zoe")
    assert took < 1.0, f"the safety check took {took:.2f}s to reach the list"


async def test_a_service_approved_under_medical_necessity_reaches_a_provider(platform):
    _, svc = platform
    agency = bearer("agency-necessity")
    async with httpx.AsyncClient(timeout=10) as http:
        patient_id = (
            await http.post(f"{svc['intake'].url}/v1/patients", json=PATIENT, headers=agency)
        ).json()["id"]
        consent = {"purpose": "referral", "program_categories": ["medical-equipment", "behavioral-health"]}
        await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/consents", json=consent, headers=agency
        )
        await http.post(
            f"{svc['intake'].url}/v1/patients/{patient_id}/assessments", json=PHQ2_POSITIVE, headers=agency
        )

        async def plan_version() -> int | None:
            r = await http.get(f"{svc['careplan'].url}/v1/patients/{patient_id}/care-plan", headers=agency)
            return r.json()["version"] if r.status_code == 200 else None

        version = await eventually(plan_version, what="a care plan")
        request = {"service_code": "durable-medical-equipment", "expected_version": version}
        decided = await http.post(
            f"{svc['careplan'].url}/v1/patients/{patient_id}/service-requests", json=request, headers=agency
        )
        assert decided.status_code == 201 and decided.json()["decision"] == "met", decided.text

        async def equipment_referral() -> dict | None:
            r = await http.get(
                f"{svc['referral'].url}/v1/referrals", params={"patient_id": patient_id}, headers=agency
            )
            return next((x for x in r.json()["items"] if x["program_category"] == "medical-equipment"), None)

        referral = await eventually(equipment_referral, what="a referral to a medical-equipment provider")
    assert (referral["status"], referral["need"]) == ("requested", "clinical-service")
