"""Scheduling from consumed events, through the real broker and database, with an injected clock."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from careloop_shared.contracts import (
    FollowUpCadence,
    FollowUpScheduled,
    Goal,
    PlanUpdated,
    ReferralMade,
    ReferralOutcome,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.events import Event, Message, new_message
from careloop_shared.rules import load_rules
from careloop_shared.runtime import running
from careloop_shared.testing import eventually, publish_message, unique_prefix
from careloop_shared.testing.fakes import FakeClock
from followup.domain.rules import RULES_FILE, FollowUpRules
from followup.main import build_app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
RULES = load_rules(FollowUpRules, RULES_FILE)


@pytest_asyncio.fixture(scope="module")
async def followup(infra, database_factory, make_settings):
    dsn = await database_factory("followup_consumers")
    app = build_app(make_settings(infra.bootstrap_servers, dsn, unique_prefix()), FakeClock(T0))
    async with running(app.state.runtime) as runtime:
        yield runtime


def plan(
    patient: uuid.UUID,
    *,
    risk: RiskLevel = RiskLevel.moderate,
    every_days: float = 0,
    version: int = 1,
    plan_id: uuid.UUID | None = None,
    status: str = "active",
) -> PlanUpdated:
    return PlanUpdated(
        patient_id=patient,
        agency_id="agency-a",
        plan_id=plan_id or uuid.UUID(int=patient.int ^ 1),
        version=version,
        status=status,
        risk_level=risk,
        goals=[
            Goal(id=uuid.uuid4(), need="food-insecurity", description="g", target="t", due=T0 + timedelta(90))
        ],
        interventions=[],
        follow_up=FollowUpCadence(every_days=every_days, priority=risk),
    )


def referral(patient: uuid.UUID, referral_id: uuid.UUID, **changes) -> ReferralMade:
    return ReferralMade(
        patient_id=patient,
        agency_id="agency-a",
        referral_id=referral_id,
        plan_id=uuid.uuid4(),
        intervention_id=uuid.uuid4(),
        need="food-insecurity",
        program_id="food-bank-1",
        receiving_agency_id="agency-food",
        status="requested",
        response_due_at=T0 + timedelta(days=3),
        **changes,
    )


async def publish(runtime, event: Event, *, at: datetime = T0, message: Message | None = None) -> Message:
    message = message or new_message(event, time=at)
    await publish_message(
        runtime.settings.kafka_bootstrap_servers, runtime.topic_for(message.event.type), message
    )
    return message


@pytest.fixture
def scheduled_rows(follow_ups):
    async def rows(runtime, patient):
        return await eventually(lambda: follow_ups(runtime, patient), what="follow-up scheduled")

    return rows


@pytest.mark.parametrize(("risk", "days"), [("urgent", 1), ("high", 7), ("moderate", 30), ("low", 90)])
async def test_a_plan_without_its_own_cadence_is_followed_up_at_the_default_for_its_risk(
    followup, risk, days, scheduled_rows, emitted
):
    patient = uuid.uuid4()
    await publish(followup, plan(patient, risk=RiskLevel(risk), every_days=0))
    [row] = await scheduled_rows(followup, patient)
    assert (row["reason"], row["status"], row["priority"]) == ("plan-cadence", "scheduled", risk)
    assert row["due_at"] == T0 + timedelta(days=days)
    assert row["overdue_at"] == row["due_at"] + RULES.grace(risk)
    [event] = await emitted(followup, patient, FollowUpScheduled.type)
    assert (event["follow_up_id"], event["rescheduled"]) == (str(row["id"]), False)


async def test_a_plan_s_own_cadence_is_used_when_it_gives_one(followup, scheduled_rows):
    patient = uuid.uuid4()
    await publish(followup, plan(patient, risk=RiskLevel.low, every_days=14))
    [row] = await scheduled_rows(followup, patient)
    assert row["due_at"] == T0 + timedelta(days=14)


async def test_plan_revision_reschedules_the_pending_follow_up_instead_of_adding_one(
    followup, scheduled_rows, emitted, follow_ups
):
    patient, plan_id = uuid.uuid4(), uuid.uuid4()
    await publish(followup, plan(patient, plan_id=plan_id, risk=RiskLevel.moderate))
    await scheduled_rows(followup, patient)
    await publish(
        followup, plan(patient, plan_id=plan_id, version=2, risk=RiskLevel.high), at=T0 + timedelta(days=2)
    )

    async def moved():
        rows = await follow_ups(followup, patient)
        return rows if rows[0]["priority"] == "high" else None

    [row] = await eventually(moved, what="follow-up rescheduled")
    # The cadence counts from the plan's start, not from the revision.
    assert (row["status"], row["due_at"]) == ("scheduled", T0 + timedelta(days=7))
    events = await emitted(followup, patient, FollowUpScheduled.type)
    assert [e["rescheduled"] for e in events] == [False, True]
    assert {e["follow_up_id"] for e in events} == {str(row["id"])}


async def test_a_revoked_plan_cancels_its_open_follow_up(followup, scheduled_rows, follow_ups):
    patient, plan_id = uuid.uuid4(), uuid.uuid4()
    await publish(followup, plan(patient, plan_id=plan_id))
    await scheduled_rows(followup, patient)
    await publish(followup, plan(patient, plan_id=plan_id, version=2, status="revoked"))

    async def cancelled():
        return [r["status"] for r in await follow_ups(followup, patient)] == ["cancelled"]

    await eventually(cancelled, what="follow-up cancelled")


async def test_referral_made_schedules_a_check_in_after_the_response_deadline(
    followup, scheduled_rows, follow_ups
):
    patient, referral_id = uuid.uuid4(), uuid.uuid4()
    await publish(followup, plan(patient, risk=RiskLevel.high))
    await scheduled_rows(followup, patient)
    await publish(followup, referral(patient, referral_id))

    async def check_in():
        return [r for r in await follow_ups(followup, patient) if r["reason"] == "referral-check-in"]

    [row] = await eventually(check_in, what="referral check-in")
    assert row["referral_id"] == referral_id
    assert row["due_at"] == RULES.referral_check_in_due(T0 + timedelta(days=3)) > T0 + timedelta(days=3)
    assert row["priority"] == "high"  # the patient's plan priority


async def test_a_completed_referral_gets_a_check_in_asking_whether_the_service_helped(
    followup, scheduled_rows, follow_ups
):
    patient, referral_id = uuid.uuid4(), uuid.uuid4()
    await publish(followup, referral(patient, referral_id))
    await scheduled_rows(followup, patient)
    completed_at = T0 + timedelta(days=2)
    await publish(
        followup,
        ReferralStatusChanged(
            patient_id=patient,
            agency_id="agency-a",
            referral_id=referral_id,
            plan_id=uuid.uuid4(),
            intervention_id=uuid.uuid4(),
            from_status="in-progress",
            to_status="completed",
            by_agency_id="agency-food",
            by_party="target",
            outcome=ReferralOutcome(service_delivered=True),
            changed_at=completed_at,
        ),
    )

    async def service_check_in():
        rows = await follow_ups(followup, patient)
        return rows if any(r["reason"] == "referral-outcome-check-in" for r in rows) else None

    rows = {r["reason"]: r for r in await eventually(service_check_in, what="service check-in")}
    assert rows["referral-outcome-check-in"]["due_at"] == RULES.service_check_in_due(completed_at)
    assert rows["referral-outcome-check-in"]["status"] == "scheduled"
    assert rows["referral-outcome-check-in"]["priority"] == RULES.referral_check_in.default_priority
    # The referral was answered: its check-in after the response deadline is no longer needed.
    assert rows["referral-check-in"]["status"] == "cancelled"


async def test_redelivered_events_schedule_nothing_twice(followup, emitted, follow_ups):
    patient, plan_id, referral_id, later_referral = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    plan_message = await publish(followup, plan(patient, plan_id=plan_id))
    await publish(followup, plan(patient), message=plan_message)  # the same ce_id again
    await publish(followup, plan(patient, plan_id=plan_id))  # the same plan version under another id
    referral_message = await publish(followup, referral(patient, referral_id))
    await publish(followup, referral(patient, referral_id), message=referral_message)
    await publish(followup, referral(patient, referral_id))  # the same referral under another id
    # Sentinels on the same topics and key, so they are read after the duplicates.
    await publish(followup, plan(patient, plan_id=plan_id, version=2))
    await publish(followup, referral(patient, later_referral))

    async def sentinels_applied():
        version = await followup.pool.fetchval(
            "SELECT version FROM patient_plans WHERE patient_id = $1", patient
        )
        rows = await follow_ups(followup, patient)
        return version == 2 and any(r["referral_id"] == later_referral for r in rows)

    await eventually(sentinels_applied, what="sentinel events processed")
    rows = await follow_ups(followup, patient)
    assert sorted(r["reason"] for r in rows) == ["plan-cadence", "referral-check-in", "referral-check-in"]
    assert len(await emitted(followup, patient, FollowUpScheduled.type)) == 3
