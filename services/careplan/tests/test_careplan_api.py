"""careplan against its real database and broker: events in, versions and API out."""

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from careloop_shared.contracts import (
    ContactChannel,
    ContactPreference,
    FollowUpCompleted,
    GoalProgress,
    Need,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.events import new_message
from careloop_shared.testing import bearer, eventually, publish_message, served, settings_for
from careloop_shared.testing.keys import FakePatientKeys
from careplan.config import CareplanSettings
from careplan.main import build_app

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def careplan(infra, database_factory):
    settings = settings_for(
        CareplanSettings, infra, await database_factory("careplan_api"), consumer_backoff_s=0.01
    )
    app = build_app(settings, keys=FakePatientKeys())
    async with served(app, "http://careplan") as (client, runtime):
        yield client, runtime


class Patient:
    def __init__(self, careplan, infra) -> None:
        self.client, self.runtime = careplan
        self.bootstrap = infra.bootstrap_servers
        self.id = uuid.uuid4()
        self.agency = f"agency-{uuid.uuid4().hex[:6]}"
        self.headers = bearer(self.agency)

    async def send(self, event, message=None):
        message = message or new_message(event)
        await publish_message(self.bootstrap, self.runtime.topic_for(event.type), message)
        return message

    async def assessed(self, needs, risk="moderate", instrument="ahc-hrsn", flags=()):
        return await self.send(
            PatientAssessed(
                patient_id=self.id,
                agency_id=self.agency,
                assessment_id=uuid.uuid4(),
                instrument=instrument,
                rules_version="test",
                needs=[Need(code=n) for n in needs],
                risk_level=RiskLevel(risk),
                urgent_flags=list(flags),
                assessed_at=datetime.now(UTC),
            )
        )

    async def plan(self) -> dict:
        r = await self.client.get(f"/v1/patients/{self.id}/care-plan", headers=self.headers)
        return r.json() if r.status_code == 200 else {}

    async def at_version(self, version: int) -> dict:
        async def probe():
            current = await self.plan()
            return current if current.get("version", 0) >= version else None

        return await eventually(probe, what=f"plan version {version}")

    async def post(self, path: str, body=None, **headers) -> httpx.Response:
        return await self.client.post(
            f"/v1/patients/{self.id}{path}", json=body, headers={**self.headers, **headers}
        )

    async def outbox(self, event_type: str) -> list[dict]:
        rows = await self.runtime.pool.fetch(
            "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2 ORDER BY position",
            str(self.id),
            event_type,
        )
        return [json.loads(r["payload"]) for r in rows]


@pytest.fixture
def patient(careplan, infra) -> Patient:
    return Patient(careplan, infra)


async def test_assessment_creates_an_active_plan_and_a_reassessment_a_new_version(patient):
    await patient.assessed(["food-insecurity"], "moderate")
    first = await patient.at_version(1)
    assert first["status"] == "active"
    assert first["reason"] == "assessment:ahc-hrsn"
    await patient.assessed(["food-insecurity", "transportation-insecurity"], "high")
    second = await patient.at_version(2)
    assert [g["need"] for g in second["document"]["goals"]] == [
        "food-insecurity",
        "transportation-insecurity",
    ]
    old = (
        await patient.client.get(f"/v1/patients/{patient.id}/care-plan/versions/1", headers=patient.headers)
    ).json()
    assert [g["need"] for g in old["document"]["goals"]] == ["food-insecurity"]
    versions = (
        await patient.client.get(f"/v1/patients/{patient.id}/care-plan/versions", headers=patient.headers)
    ).json()
    assert [v["version"] for v in versions["items"]] == [1, 2]
    changes = (
        await patient.client.get(
            f"/v1/patients/{patient.id}/care-plan/diff?from=1&to=2", headers=patient.headers
        )
    ).json()["changes"]
    assert [g["need"] for g in changes["goals"]["added"]] == ["transportation-insecurity"]
    assert changes["plan"]["risk_level"] == {"from": "moderate", "to": "high"}
    events = await patient.outbox("careloop.careplan.plan_updated.v1")
    assert [e["version"] for e in events] == [1, 2]
    assert events[1]["follow_up"] == {"every_days": 7.0, "priority": "high", "channel": "phone"}


async def test_needs_from_different_instruments_add_up_and_a_phq9_supersedes_a_phq2(patient):
    await patient.assessed(["food-insecurity"], "moderate", "ahc-hrsn")
    await patient.assessed(["depression"], "moderate", "phq-2")
    plan = await patient.at_version(2)
    assert sorted(g["need"] for g in plan["document"]["goals"]) == ["depression", "food-insecurity"]
    await patient.assessed([], "low", "phq-9")  # the PHQ-9 finds no depression after all
    plan = await patient.at_version(3)
    assert [g["need"] for g in plan["document"]["goals"]] == ["food-insecurity"]


async def test_redelivered_assessment_makes_no_second_version(patient):
    message = await patient.assessed(["depression"], "moderate", "phq-2")
    await patient.send(message.event, message)
    sentinel = await patient.send(
        PatientUpdated(
            patient_id=patient.id,
            agency_id=patient.agency,
            preferred_language="es",
            contact_preference=ContactPreference.text,
            changed_fields=["preferred_language"],
            updated_at=datetime.now(UTC),
        )
    )
    assert sentinel is not None
    plan = await patient.at_version(2)  # the language change is the second version, not the duplicate
    assert plan["reason"] == "preferences-changed"
    assert len(await patient.outbox("careloop.careplan.plan_updated.v1")) == 2


async def test_language_preference_personalises_the_plan(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    await patient.at_version(1)
    await patient.send(
        PatientUpdated(
            patient_id=patient.id,
            agency_id=patient.agency,
            preferred_language="es",
            contact_preference=ContactPreference.do_not_contact,
            changed_fields=["preferred_language"],
            updated_at=datetime.now(UTC),
        )
    )
    plan = (await patient.at_version(2))["document"]
    assert plan["preferred_language"] == "es"
    assert plan["follow_up"]["channel"] == "in-person-only"
    assert "interpreter-services" in [i["program_category"] for i in plan["interventions"]]
    [event] = (await patient.outbox("careloop.careplan.plan_updated.v1"))[1:]
    assert (event["preferred_language"], event["contact_preference"]) == ("es", "do-not-contact")


async def test_urgent_flag_produces_an_urgent_safety_intervention(patient):
    await patient.assessed(["depression"], "urgent", "phq-9", flags=["suicidal-ideation"])
    plan = (await patient.at_version(1))["document"]
    assert plan["interventions"][0]["service_code"] == "urgent-safety-evaluation"
    assert plan["follow_up"]["priority"] == "urgent"


async def test_concurrent_edits_are_detected_not_overwritten(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    await patient.at_version(1)
    first = await patient.post("/care-plan/status", {"status": "on-hold", "expected_version": 1})
    stale = await patient.post("/care-plan/status", {"status": "completed", "expected_version": 1})
    assert first.status_code == 200 and first.json() == {"plan_version": 2}
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    assert (await patient.plan())["status"] == "on-hold"
    illegal = await patient.post("/care-plan/status", {"status": "draft", "expected_version": 2})
    assert illegal.status_code == 409


async def test_a_care_manager_moves_a_safety_step_and_a_goal_by_hand(patient):
    await patient.assessed(["depression"], "high", "phq-9", flags=["suicidal-ideation"])
    plan = await patient.at_version(1)
    safety = next(i for i in plan["document"]["interventions"] if i["need"] == "suicidal-ideation")
    referred = next(i for i in plan["document"]["interventions"] if i["needs_referral"])
    goal = plan["document"]["goals"][0]
    ana = bearer(patient.agency, subject="cm-ana")
    done = await patient.post(
        f"/care-plan/interventions/{safety['id']}/status",
        {"status": "completed", "expected_version": 1},
        **ana,
    )
    assert done.status_code == 200 and done.json() == {"plan_version": 2}
    held = await patient.post(
        f"/care-plan/goals/{goal['id']}/status",
        {"lifecycle_status": "on-hold", "achievement_status": "no-change", "expected_version": 2},
        **ana,
    )
    assert held.json() == {"plan_version": 3}
    shown = (await patient.plan())["document"]
    assert next(i for i in shown["interventions"] if i["id"] == safety["id"])["status"] == "completed"
    assert (shown["goals"][0]["lifecycle_status"], shown["goals"][0]["achievement_status"]) == (
        "on-hold",
        "no-change",
    )
    [*_, announced] = await patient.outbox("careloop.careplan.plan_updated.v1")
    assert (announced["version"], announced["reason"], announced["actor_id"]) == (3, "progress", "cm-ana")
    refused = {
        "a referral's": await patient.post(
            f"/care-plan/interventions/{referred['id']}/status",
            {"status": "completed", "expected_version": 3},
        ),
        "not in the plan": await patient.post(
            f"/care-plan/interventions/{uuid.uuid4()}/status", {"status": "completed", "expected_version": 3}
        ),
        "not a status": await patient.post(
            f"/care-plan/interventions/{safety['id']}/status", {"status": "done", "expected_version": 3}
        ),
        "nothing said": await patient.post(f"/care-plan/goals/{goal['id']}/status", {"expected_version": 3}),
        "stale": await patient.post(
            f"/care-plan/goals/{goal['id']}/status", {"lifecycle_status": "active", "expected_version": 2}
        ),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "a referral's": 409,
        "not in the plan": 404,
        "not a status": 422,
        "nothing said": 422,
        "stale": 409,
    }
    assert (await patient.plan())["version"] == 3


async def test_necessity_met_adds_the_service_and_not_met_proposes_alternatives(patient):
    await patient.assessed(["depression"], "high", "phq-9")
    plan = await patient.at_version(1)
    not_met = await patient.post(
        "/service-requests", {"service_code": "home-health-visits", "expected_version": 1}
    )
    assert not_met.status_code == 201
    body = not_met.json()
    assert (body["decision"], body["failed_criteria"]) == ("not-met", ["community-referral-tried-first"])
    assert body["alternatives"] == ["community-health-worker-visits", "telehealth-check-ins"]
    [proposed] = await patient.outbox("careloop.careplan.plan_alternatives_proposed.v1")
    assert proposed["failed_criteria"] == ["community-referral-tried-first"]
    wrong = await patient.post(
        f"/service-requests/{body['service_request_id']}/choice",
        {"alternative": "home-health-visits", "expected_version": 1},
    )
    assert wrong.status_code == 409
    chosen = await patient.post(
        f"/service-requests/{body['service_request_id']}/choice",
        {"alternative": "telehealth-check-ins", "expected_version": 1},
    )
    assert chosen.json() == {"plan_version": 2}
    plan = await patient.plan()
    assert plan["reason"] == "alternative-chosen"
    assert "telehealth-check-ins" in [i["service_code"] for i in plan["document"]["interventions"]]

    # The community referral gets going; now home health visits meet every criterion.
    referral = next(i for i in plan["document"]["interventions"] if i["kind"] == "referral")
    await patient.send(
        ReferralStatusChanged(
            patient_id=patient.id,
            agency_id=patient.agency,
            referral_id=uuid.uuid4(),
            plan_id=plan["plan_id"],
            intervention_id=referral["id"],
            from_status="accepted",
            to_status="in-progress",
            by_agency_id="agency-bh",
            by_party="target",
            changed_at=datetime.now(UTC),
        )
    )
    await patient.at_version(3)
    met = await patient.post(
        "/service-requests", {"service_code": "home-health-visits", "expected_version": 3}
    )
    assert (met.json()["decision"], met.json()["plan_version"]) == ("met", 4)
    # Both services reach a provider: PlanUpdated asks referral for a program of each one's category.
    announced = (await patient.outbox("careloop.careplan.plan_updated.v1"))[-1]
    assert [
        (i["service_code"], i["needs_referral"], i["program_category"], i["need"])
        for i in announced["interventions"]
        if i["kind"] == "clinical"
    ] == [
        ("telehealth-check-ins", True, "telehealth", "clinical-service"),
        ("home-health-visits", True, "home-health", "clinical-service"),
    ]
    history = (
        await patient.client.get(f"/v1/patients/{patient.id}/service-requests", headers=patient.headers)
    ).json()
    assert [(r["service_code"], r["met"], r["chosen_alternative"]) for r in history] == [
        ("home-health-visits", False, "telehealth-check-ins"),
        ("home-health-visits", True, None),
    ]
    unknown = await patient.post("/service-requests", {"service_code": "moon-visit", "expected_version": 4})
    assert unknown.status_code == 422


async def test_care_team_members_contribute_and_events_never_name_them(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    plan = await patient.at_version(1)
    added = await patient.post(
        "/care-team",
        {
            "name": "Rosalind Okonkwo-Brandt",
            "relationship": "family",
            "role": "primary-support",
            "contact": "+1 555 0142",
        },
    )
    assert added.status_code == 201
    member = added.json()
    note = await patient.post(
        "/care-plan/contributions",
        {
            "member_id": member["id"],
            "kind": "note",
            "note": "Rosalind drives her on Tuesdays",
            "expected_version": 1,
        },
    )
    assert note.json() == {"plan_version": 1}
    goal_id = plan["document"]["goals"][0]["id"]
    agreed = await patient.post(
        "/care-plan/contributions",
        {"member_id": member["id"], "kind": "agreed-goal", "goal_id": goal_id, "expected_version": 1},
    )
    assert agreed.json() == {"plan_version": 2}
    assert (await patient.plan())["document"]["goals"][0]["lifecycle_status"] == "accepted"
    pref = await patient.post(
        "/care-plan/contributions",
        {
            "member_id": member["id"],
            "kind": "preference",
            "preference": {"preferred_language": "pt"},
            "expected_version": 2,
        },
    )
    assert pref.json() == {"plan_version": 3}
    assert (await patient.plan())["document"]["preferred_language"] == "pt"
    raised = {"member_id": member["id"], "kind": "stated-need", "expected_version": 3}
    unknown = await patient.post("/care-plan/contributions", {**raised, "need": "space-travel"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "need"]
    missing = await patient.post("/care-plan/contributions", raised)
    assert missing.status_code == 422
    stated = await patient.post("/care-plan/contributions", {**raised, "need": "utility-insecurity"})
    assert stated.json() == {"plan_version": 4}
    assert [g["need"] for g in (await patient.plan())["document"]["goals"]] == [
        "depression",
        "utility-insecurity",
    ]
    shown = await patient.client.get(
        f"/v1/patients/{patient.id}/care-team/contributions", headers=patient.headers
    )
    last = shown.json()["items"][-1]
    assert (last["kind"], last["need"]) == ("stated-need", "utility-insecurity")
    await patient.assessed(["depression"], "high", "phq-9")  # a later screening keeps the stated need
    later = await patient.at_version(5)
    assert [g["need"] for g in later["document"]["goals"]] == ["depression", "utility-insecurity"]
    withdrawn = {**raised, "kind": "need-withdrawn", "need": "utility-insecurity", "expected_version": 5}
    taken_out = await patient.post("/care-plan/contributions", withdrawn)
    assert taken_out.json() == {"plan_version": 6}, taken_out.text
    assert [g["need"] for g in (await patient.plan())["document"]["goals"]] == ["depression"]
    again = await patient.post("/care-plan/contributions", {**withdrawn, "expected_version": 6})
    assert again.status_code == 409 and "nothing to withdraw" in again.json()["detail"]
    changed = await patient.client.patch(
        f"/v1/patients/{patient.id}/care-team/{member['id']}",
        json={"role": "decision-maker"},
        headers=patient.headers,
    )
    assert changed.json()["role"] == "decision-maker"
    removed = await patient.client.delete(
        f"/v1/patients/{patient.id}/care-team/{member['id']}", headers=patient.headers
    )
    assert removed.status_code == 200
    team = (await patient.client.get(f"/v1/patients/{patient.id}/care-team", headers=patient.headers)).json()
    assert [m["status"] for m in team] == ["inactive"]
    events = await patient.outbox("careloop.careplan.care_team_changed.v1")
    assert [e["change"] for e in events] == ["added", "changed", "removed"]
    everything = json.dumps([*events, *await patient.outbox("careloop.careplan.plan_updated.v1")])
    assert "Rosalind" not in everything and "555 0142" not in everything and "Tuesdays" not in everything


async def test_a_goal_in_the_patient_s_own_words_joins_the_plan_and_its_words_never_leave_careplan(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    await patient.at_version(1)
    added = await patient.post(
        "/care-team", {"name": "Mia Brandt", "relationship": "family", "role": "primary-support"}
    )
    words = "Walk Mia to school again by spring"
    own = {"member_id": added.json()["id"], "kind": "personal-goal", "expected_version": 1}
    for bad in ({}, {"note": "   "}, {"note": words, "due": "2020-01-01T09:00:00+00:00"}):
        refused = await patient.post("/care-plan/contributions", {**own, **bad})
        assert refused.status_code == 422, bad
        assert words not in refused.text
    wrong_kind = {"member_id": own["member_id"], "kind": "note", "note": "x", "expected_version": 1}
    assert (
        await patient.post("/care-plan/contributions", {**wrong_kind, "due": "2030-01-01T09:00:00Z"})
    ).status_code == 422
    due = "2027-03-01T12:00:00+00:00"
    made = await patient.post(
        "/care-plan/contributions", {**own, "note": words, "need": "food-insecurity", "due": due}
    )
    assert made.json() == {"plan_version": 2}
    goals = (await patient.plan())["document"]["goals"]
    [goal] = [g for g in goals if g["description"] == "personal-goal"]
    assert (goal["need"], goal["lifecycle_status"], datetime.fromisoformat(goal["due"])) == (
        "food-insecurity",
        "accepted",
        datetime.fromisoformat(due),
    )
    shown = await patient.client.get(
        f"/v1/patients/{patient.id}/care-team/contributions", headers=patient.headers
    )
    last = shown.json()["items"][-1]
    assert (last["kind"], last["goal_id"], last["note"]) == ("personal-goal", goal["id"], words)
    await patient.post("/care-plan/contributions", {**wrong_kind, "expected_version": 2})  # a note
    mine = await patient.client.get(
        f"/v1/patients/{patient.id}/care-team/contributions?kind=personal-goal", headers=patient.headers
    )
    assert [(c["kind"], c["note"]) for c in mine.json()["items"]] == [("personal-goal", words)]
    odd = await patient.client.get(
        f"/v1/patients/{patient.id}/care-team/contributions?kind=wish", headers=patient.headers
    )
    assert odd.status_code == 422
    await patient.assessed(["depression"], "high", "phq-9")  # a later screening keeps it
    later = await patient.at_version(3)
    assert goal["id"] in [g["id"] for g in later["document"]["goals"]]
    stored = await patient.runtime.pool.fetchval(
        "SELECT sealed_note::text FROM contributions WHERE id = $1", uuid.UUID(goal["id"])
    )
    assert stored is not None and words not in stored
    anew = "Walk Mia to school twice a week"
    reword = {**own, "kind": "goal-reworded", "expected_version": 3}
    no_goal = await patient.post("/care-plan/contributions", {**reword, "note": anew})
    assert no_goal.status_code == 422 and anew not in no_goal.text
    library = next(g["id"] for g in later["document"]["goals"] if g["description"] != "personal-goal")
    coded = await patient.post("/care-plan/contributions", {**reword, "note": anew, "goal_id": library})
    assert coded.status_code == 409 and anew not in coded.text
    put = await patient.post("/care-plan/contributions", {**reword, "note": anew, "goal_id": goal["id"]})
    assert put.json() == {"plan_version": 3}  # the plan has only the goal's code: no new version
    both = await patient.client.get(
        f"/v1/patients/{patient.id}/care-team/contributions?kind=personal-goal&kind=goal-reworded",
        headers=patient.headers,
    )
    assert [(c["kind"], c["goal_id"], c["note"]) for c in both.json()["items"]] == [
        ("personal-goal", goal["id"], words),
        ("goal-reworded", goal["id"], anew),
    ]
    everything = json.dumps(await patient.outbox("careloop.careplan.plan_updated.v1"))
    assert words not in everything and "Mia" not in everything
    assert (await patient.plan())["version"] == 3


async def test_education_given_is_an_event_and_completes_the_intervention(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    plan = await patient.at_version(1)
    education = next(i for i in plan["document"]["interventions"] if i["kind"] == "education")
    path = f"/care-plan/interventions/{education['id']}/education"
    unknown = await patient.post(path, {"materials": ["edu-depression-en", "edu-leaflet"]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "materials", 1]
    wrong_channel = await patient.post(path, {"channel": "pigeon"})
    assert wrong_channel.status_code == 422
    r = await patient.post(path, {"channel": "in-person", "teach_back_confirmed": True})
    assert r.json() == {"plan_version": 2}
    [event] = await patient.outbox("careloop.careplan.education_provided.v1")
    shown = (
        await patient.client.get("/v1/education/materials/edu-depression-en", headers=patient.headers)
    ).json()
    assert (event["materials"], event["language"], event["material_versions"]) == (
        ["edu-depression-en"],
        "en",
        [shown["version"]],
    )
    assert (event["channel"], event["teach_back_confirmed"]) == ("in-person", True)
    row = await patient.runtime.pool.fetchrow(
        "SELECT material_versions, channel, teach_back_confirmed FROM education_records"
        " WHERE patient_id = $1",
        patient.id,
    )
    assert dict(row) == {
        "material_versions": [shown["version"]],
        "channel": "in-person",
        "teach_back_confirmed": True,
    }
    status = next(
        i for i in (await patient.plan())["document"]["interventions"] if i["id"] == education["id"]
    )
    assert status["status"] == "completed"


async def test_follow_up_progress_updates_goals_and_completes_the_plan(patient):
    await patient.assessed(["food-insecurity"], "moderate")
    plan = await patient.at_version(1)
    goal_id = plan["document"]["goals"][0]["id"]
    for version, progress in ((2, "improving"), (3, "achieved")):
        await patient.send(
            FollowUpCompleted(
                patient_id=patient.id,
                agency_id=patient.agency,
                follow_up_id=uuid.uuid4(),
                reached=True,
                attempt=1,
                goal_progress=[GoalProgress(goal_id=goal_id, progress=progress)],
                completed_at=datetime.now(UTC),
            )
        )
        plan = await patient.at_version(version)
    goal = plan["document"]["goals"][0]
    assert (goal["achievement_status"], goal["lifecycle_status"], plan["status"]) == (
        "achieved",
        "completed",
        "completed",
    )


async def test_another_agency_sees_and_changes_nothing(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    await patient.at_version(1)
    stranger = bearer("agency-stranger")
    base = f"/v1/patients/{patient.id}"
    answers = [
        await patient.client.get(f"{base}/care-plan", headers=stranger),
        await patient.client.get(f"{base}/care-plan/versions", headers=stranger),
        await patient.client.get(f"{base}/care-plan/versions/1", headers=stranger),
        await patient.client.get(f"{base}/care-plan/diff?from=1&to=1", headers=stranger),
        await patient.client.get(f"{base}/care-team", headers=stranger),
        await patient.client.post(
            f"{base}/care-team",
            json={"name": "X", "relationship": "friend", "role": "helper"},
            headers=stranger,
        ),
        await patient.client.post(
            f"{base}/care-plan/status", json={"status": "on-hold", "expected_version": 1}, headers=stranger
        ),
        await patient.client.post(
            f"{base}/service-requests",
            json={"service_code": "home-health-visits", "expected_version": 1},
            headers=stranger,
        ),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert (await patient.plan())["version"] == 1


async def test_documents_are_answered_exactly_as_stored_even_an_older_shape(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    plan = await patient.at_version(1)
    stored = await patient.runtime.pool.fetchval(
        "SELECT document FROM plan_versions WHERE plan_id = $1 AND version = 1", uuid.UUID(plan["plan_id"])
    )
    assert plan["document"] == stored
    assert plan["document"]["goals"][0]["due"].endswith("+00:00")
    # A version written before documents named languages, channels or statuses reads back as it was.
    older = {
        "library_version": "plan-library-2026.10.1",
        "risk_level": "moderate",
        "goals": [{k: g[k] for k in ("id", "need", "description", "target", "due")} for g in stored["goals"]],
        "interventions": [
            {k: i[k] for k in ("id", "need", "kind", "program_category", "needs_referral")}
            for i in stored["interventions"]
        ],
        "follow_up": {"every_days": 30, "priority": "moderate"},
    }
    await patient.runtime.pool.execute(
        "WITH v AS (INSERT INTO plan_versions (plan_id, version, status, document, reason, changed_by,"
        " created_at, agency_id) VALUES ($1, 2, 'active', $2, 'migrated', 'system', now(), $3))"
        " UPDATE plans SET version = 2 WHERE plan_id = $1",
        uuid.UUID(plan["plan_id"]),
        older,
        patient.agency,
    )
    assert (await patient.plan())["document"] == older
    changes = (
        await patient.client.get(
            f"/v1/patients/{patient.id}/care-plan/diff?from=2&to=1", headers=patient.headers
        )
    ).json()["changes"]
    assert changes["plan"]["preferred_language"] == {"from": None, "to": "en"}
    education = next(i for i in older["interventions"] if i["kind"] == "education")
    r = await patient.post(
        f"/care-plan/interventions/{education['id']}/education", {"materials": ["edu-depression-en"]}
    )
    assert r.json() == {"plan_version": 3}
    [event] = await patient.outbox("careloop.careplan.education_provided.v1")
    assert event["language"] == "en"
    assert (await patient.plan())["document"]["interventions"][1] == {**education, "status": "completed"}


async def test_each_change_names_the_person_who_made_it_in_the_record_and_its_event(patient):
    await patient.assessed(["depression"], "high", "phq-9")
    plan = await patient.at_version(1)
    ana, sam = bearer(patient.agency, subject="cm-ana"), bearer(patient.agency, "supervisor", "sv-sam")
    status = await patient.post("/care-plan/status", {"status": "on-hold", "expected_version": 1}, **ana)
    assert status.json() == {"plan_version": 2}
    versions = await patient.client.get(f"/v1/patients/{patient.id}/care-plan/versions", headers=sam)
    assert [(v["changed_by"], v["changed_by_subject"]) for v in versions.json()["items"]] == [
        ("system", None),
        ("care-manager", "cm-ana"),
    ]
    current = (await patient.client.get(f"/v1/patients/{patient.id}/care-plan", headers=sam)).json()
    assert (current["changed_by"], current["changed_by_subject"]) == ("care-manager", "cm-ana")
    updates = await patient.outbox("careloop.careplan.plan_updated.v1")
    assert [(e["changed_by_role"], e["actor_id"], e["actor_role"]) for e in updates] == [
        ("system", None, None),
        ("care-manager", "cm-ana", "care-manager"),
    ]

    member = (
        await patient.post(
            "/care-team", {"name": "Rosalind", "relationship": "family", "role": "helper"}, **ana
        )
    ).json()
    changed = await patient.client.patch(
        f"/v1/patients/{patient.id}/care-team/{member['id']}", json={"role": "driver"}, headers=sam
    )
    assert (changed.json()["created_by_subject"], changed.json()["updated_by_subject"]) == (
        "cm-ana",
        "sv-sam",
    )
    team_events = await patient.outbox("careloop.careplan.care_team_changed.v1")
    assert [(e["change"], e["actor_id"], e["actor_role"]) for e in team_events] == [
        ("added", "cm-ana", "care-manager"),
        ("changed", "sv-sam", "supervisor"),
    ]
    history = await patient.runtime.pool.fetch(
        "SELECT change, changed_by_subject FROM care_team_changes WHERE member_id = $1 ORDER BY changed_at",
        uuid.UUID(member["id"]),
    )
    assert [tuple(r) for r in history] == [("added", "cm-ana"), ("changed", "sv-sam")]
    note = {"member_id": member["id"], "kind": "note", "note": "n", "expected_version": 2}
    assert (await patient.post("/care-plan/contributions", note, **sam)).status_code == 201
    assert (
        await patient.runtime.pool.fetchval(
            "SELECT recorded_by_subject FROM contributions WHERE member_id = $1", uuid.UUID(member["id"])
        )
        == "sv-sam"
    )

    requested = await patient.post(
        "/service-requests", {"service_code": "home-health-visits", "expected_version": 2}, **ana
    )
    request_id = requested.json()["service_request_id"]
    choice = {"alternative": "telehealth-check-ins", "expected_version": 2}
    assert (await patient.post(f"/service-requests/{request_id}/choice", choice, **sam)).status_code == 200
    [request] = (await patient.client.get(f"/v1/patients/{patient.id}/service-requests", headers=ana)).json()
    assert (
        request["requested_by_subject"],
        request["requested_by_role"],
        request["chosen_by_subject"],
        request["chosen_by_role"],
    ) == ("cm-ana", "care-manager", "sv-sam", "supervisor")
    [proposed] = await patient.outbox("careloop.careplan.plan_alternatives_proposed.v1")
    assert proposed["actor_id"] == "cm-ana"

    education = next(i for i in plan["document"]["interventions"] if i["kind"] == "education")
    assert (await patient.post(f"/care-plan/interventions/{education['id']}/education", {}, **ana)).is_success
    [given] = await patient.outbox("careloop.careplan.education_provided.v1")
    assert (given["actor_id"], given["actor_role"]) == ("cm-ana", "care-manager")
    assert (
        await patient.runtime.pool.fetchval(
            "SELECT recorded_by_subject FROM education_records WHERE patient_id = $1", patient.id
        )
        == "cm-ana"
    )


async def test_every_read_of_plan_content_or_the_care_team_is_audited_with_the_person_and_refusals_too(
    patient,
):
    await patient.assessed(["depression"], "high", "phq-9")
    plan = await patient.at_version(1)
    version_1 = f"{plan['plan_id']}/v1"
    base = f"/v1/patients/{patient.id}"
    ana = bearer(patient.agency, subject="cm-ana")
    member = (
        await patient.post(
            "/care-team", {"name": "Rosalind", "relationship": "family", "role": "helper"}, **ana
        )
    ).json()
    decided = await patient.post(
        "/service-requests", {"service_code": "home-health-visits", "expected_version": 1}, **ana
    )
    request_id = decided.json()["service_request_id"]
    for path in ("/care-plan", "/care-plan/versions", "/care-plan/versions/1", "/care-plan/diff?from=1&to=1"):
        assert (await patient.client.get(base + path, headers=ana)).status_code == 200
    assert (await patient.client.get(f"{base}/care-team", headers=ana)).status_code == 200
    assert (await patient.client.get(f"{base}/service-requests", headers=ana)).status_code == 200
    eve = bearer("agency-elsewhere", subject="cm-eve")
    assert (await patient.client.get(f"{base}/care-plan", headers=eve)).status_code == 404
    al = bearer(patient.agency, role="analyst", subject="an-al")
    assert (await patient.client.get(f"{base}/care-team", headers=al)).status_code == 403

    supervisor = bearer(patient.agency, role="supervisor", subject="sv-sam")
    trail = await patient.client.get(f"/v1/audit?patient_id={patient.id}&limit=200", headers=supervisor)
    assert trail.status_code == 200, trail.text
    seen = [
        (
            e["subject"],
            e["outcome"],
            e["what"],
            e["entity_id"],
            e["route"].removeprefix("GET /v1/patients/{patient_id}"),
        )
        for e in trail.json()["items"]
    ]
    assert [s for s in seen if s[0] == "cm-ana"] == [
        ("cm-ana", "allowed", "care-team", member["id"], "POST /v1/patients/{patient_id}/care-team"),
        (
            "cm-ana",
            "allowed",
            "service-request",
            request_id,
            "POST /v1/patients/{patient_id}/service-requests",
        ),
        ("cm-ana", "allowed", "plan", version_1, "/care-plan"),
        ("cm-ana", "allowed", "plan", version_1, "/care-plan/versions"),
        ("cm-ana", "allowed", "plan", version_1, "/care-plan/versions/{version}"),
        ("cm-ana", "allowed", "plan", version_1, "/care-plan/diff"),
        ("cm-ana", "allowed", "care-team", member["id"], "/care-team"),
        ("cm-ana", "allowed", "service-request", request_id, "/service-requests"),
    ]
    assert ("cm-eve", "denied", "plan", None, "/care-plan") in seen
    assert ("an-al", "denied", "care-team", None, "/care-team") in seen
    entry = next(e for e in trail.json()["items"] if e["subject"] == "cm-ana")
    assert (entry["source"], entry["role"], entry["patient_agency_id"]) == (
        "careplan",
        "care-manager",
        patient.agency,
    )
    # Nobody outside the agency was shown anything.
    disclosures = await patient.client.get(
        f"/v1/audit/disclosures?patient_id={patient.id}", headers=supervisor
    )
    assert disclosures.status_code == 200 and disclosures.json()["items"] == []
    # A care manager may not read the audit log; another agency's supervisor finds no such patient.
    assert (await patient.client.get(f"/v1/audit?patient_id={patient.id}", headers=ana)).status_code == 403
    other = bearer("agency-elsewhere", role="supervisor")
    assert (await patient.client.get(f"/v1/audit?patient_id={patient.id}", headers=other)).status_code == 404


async def test_education_materials_are_read_by_topic_or_id_in_a_language_or_else_in_english(careplan):
    client, _ = careplan
    for role in ("care-manager", "provider", "analyst", "admin"):
        listed = await client.get("/v1/education/materials?limit=200", headers=bearer("agency-x", role))
        assert listed.status_code == 200, role
    topics = {t["topic"]: t["materials"] for t in listed.json()["items"]}
    assert len(topics) == 10 and {m["language"] for m in topics["crisis-line"]} == {"en", "es"}
    for_need = await client.get(
        "/v1/education/materials?need=food-insecurity&language=es", headers=bearer("a")
    )
    [food] = for_need.json()["items"]
    assert (food["topic"], [m["material_id"] for m in food["materials"]]) == (
        "food-benefits",
        ["edu-food-benefits-es"],
    )
    spanish = (await client.get("/v1/education/materials/depression?language=es", headers=bearer("a"))).json()
    assert (spanish["material_id"], spanish["language"], spanish["fell_back"], spanish["note"]) == (
        "edu-depression-es",
        "es",
        False,
        None,
    )
    assert spanish["markdown"].startswith("# La depresión") and spanish["version"] and spanish["title"]
    by_id = (await client.get("/v1/education/materials/edu-safety-planning-so", headers=bearer("a"))).json()
    assert (by_id["material_id"], by_id["requested_language"], by_id["fell_back"]) == (
        "edu-safety-planning-en",
        "so",
        True,
    )
    assert by_id["note"] == "not available in so; shown in en"
    missing = await client.get("/v1/education/materials/moon-landing", headers=bearer("a"))
    assert missing.status_code == 404
    assert (await client.get("/v1/education/materials")).status_code == 401


async def test_care_team_contributions_are_read_back_with_who_recorded_each_and_audited(patient):
    await patient.assessed(["depression"], "moderate", "phq-2")
    plan = await patient.at_version(1)
    ana, sam = bearer(patient.agency, subject="cm-ana"), bearer(patient.agency, "supervisor", "sv-sam")
    member = (
        await patient.post(
            "/care-team", {"name": "Rosalind", "relationship": "family", "role": "primary-support"}, **ana
        )
    ).json()
    base = f"/v1/patients/{patient.id}/care-team/contributions"
    assert (await patient.client.get(base, headers=ana)).json()["items"] == []
    note = {
        "member_id": member["id"],
        "kind": "note",
        "note": "drives her on Tuesdays",
        "expected_version": 1,
    }
    assert (await patient.post("/care-plan/contributions", note, **ana)).status_code == 201
    goal = {"member_id": member["id"], "kind": "agreed-goal", "goal_id": plan["document"]["goals"][0]["id"]}
    assert (await patient.post("/care-plan/contributions", {**goal, "expected_version": 1}, **sam)).is_success
    read = await patient.client.get(f"{base}?limit=1", headers=ana)
    assert read.status_code == 200 and read.json()["next_offset"] == 1
    contributions = (await patient.client.get(base, headers=ana)).json()["items"]
    assert [
        (
            c["kind"],
            c["note"],
            c["member_role"],
            c["recorded_by_subject"],
            c["recorded_by_role"],
            c["plan_version"],
        )
        for c in contributions
    ] == [
        ("note", "drives her on Tuesdays", "primary-support", "cm-ana", "care-manager", 1),
        ("agreed-goal", None, "primary-support", "sv-sam", "supervisor", 1),
    ]
    assert contributions[1]["goal_id"] == goal["goal_id"]
    assert (await patient.client.get(base, headers=bearer("agency-elsewhere"))).status_code == 404
    assert (await patient.client.get(base, headers=bearer(patient.agency, "analyst"))).status_code == 403
    trail = await patient.client.get(f"/v1/audit?patient_id={patient.id}&limit=200", headers=sam)
    shown = [
        (e["subject"], e["what"], e["entity_id"])
        for e in trail.json()["items"]
        if e["route"] == "GET /v1/patients/{patient_id}/care-team/contributions" and e["outcome"] == "allowed"
    ]
    assert shown == [
        ("cm-ana", "contribution", None),  # the empty list
        ("cm-ana", "contribution", contributions[0]["id"]),  # the page of one
        ("cm-ana", "contribution", contributions[0]["id"]),
        ("cm-ana", "contribution", contributions[1]["id"]),
    ]


async def test_an_interpersonal_safety_need_is_followed_up_only_through_a_channel_marked_safe(patient):
    await patient.send(
        PatientRegistered(
            patient_id=patient.id,
            agency_id=patient.agency,
            preferred_language="en",
            contact_preference=ContactPreference.text,
            safe_channels=[ContactChannel.email, ContactChannel.phone],
            registered_at=datetime.now(UTC),
        )
    )
    await patient.assessed(["intimate-partner-violence", "food-insecurity"], "high")
    plan = await patient.at_version(1)
    assert plan["document"]["follow_up"]["channel"] == "phone"  # text preferred, not safe; phone first
    await patient.send(
        PatientUpdated(
            patient_id=patient.id,
            agency_id=patient.agency,
            preferred_language="en",
            contact_preference=ContactPreference.text,
            changed_fields=["safe_channels"],
            safe_channels=None,
            updated_at=datetime.now(UTC),
        )
    )
    plan = await patient.at_version(2)
    assert plan["document"]["follow_up"]["channel"] == "in-person-only"
    updates = await patient.outbox("careloop.careplan.plan_updated.v1")
    assert [e["follow_up"]["channel"] for e in updates] == ["phone", "in-person-only"]
    stored = await patient.runtime.pool.fetchval(
        "SELECT safe_channels FROM patients WHERE patient_id = $1", patient.id
    )
    assert stored is None
