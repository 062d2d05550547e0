"""How an agency's referrals went (``GET /v1/referrals/summary``): the real query over referral's database
and the fake store's count alike, for referrals in every state, of one period, and another agency's
never counted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.testing.batches import service_pool
from referral import main
from referral.loop.store import LoopStore

from .conftest import FakeLoopStore

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = T + timedelta(days=10)


def referral(
    status: str, *, agency: str = "agency-a", made_days: float = 0, **changes: Any
) -> dict[str, Any]:
    made = T + timedelta(days=made_days)
    return {
        "id": uuid.uuid4(),
        "patient_id": uuid.uuid4(),
        "agency_id": agency,
        "plan_id": uuid.uuid4(),
        "intervention_id": uuid.uuid4(),
        "need": "food-insecurity",
        "program_id": "prg-food",
        "receiving_agency_id": "agency-food",
        "status": status,
        "service_request_id": uuid.uuid4(),
        "created_at": made,
        "updated_at": made,
        "made_at": None if status == "draft" else made,
        "response_due_at": None if status == "draft" else made + timedelta(days=2),
        "outcome_due_at": None if status == "draft" else made + timedelta(days=14),
        "accepted_at": None,
        "closed_at": None,
        "outcome": None,
        **changes,
    }


def rows() -> list[dict[str, Any]]:
    accepted = {"accepted_at": T + timedelta(hours=6)}
    rejected = referral("rejected", closed_at=T + timedelta(hours=3))
    # Rejected, then sent on to the next program and delivered there: one need.
    rerouted = {"intervention_id": rejected["intervention_id"], "replaces_referral_id": rejected["id"]}
    return [
        referral("draft"),
        referral("requested", made_days=1),  # answer due day 3: overdue on day 10
        referral("requested", made_days=9),  # answer due day 11
        referral("accepted", **accepted),  # outcome due day 14
        referral("in-progress", made_days=-20, **{"accepted_at": T - timedelta(days=19)}),  # outcome overdue
        rejected,
        referral(
            "completed",
            **accepted,
            **rerouted,
            closed_at=T + timedelta(days=2),
            outcome={"service_delivered": True},
        ),
        referral(
            "completed",
            **accepted,
            closed_at=T + timedelta(days=4),
            outcome={"enrollment_status": "enrolled"},
        ),
        referral(
            "completed", **accepted, closed_at=T + timedelta(days=1), outcome={"service_delivered": False}
        ),
        referral("failed", **accepted, closed_at=T + timedelta(days=3)),
        referral("cancelled", closed_at=T + timedelta(days=1)),
        referral("entered-in-error"),
        referral("completed", agency="agency-b", **accepted, outcome={"service_delivered": True}),
    ]


EVER = {
    "made": 11,
    "needs_referred": 10,  # the rejected referral and the one delivered after it were for one need
    "needs_served": 2,
    "waiting_for_consent": 1,
    "open": 4,
    "answer_overdue": 1,
    "outcome_overdue": 1,
    "accepted": 6,
    "rejected": 1,
    "delivered": 2,
    "not_delivered": 2,
    "cancelled": 1,
    "hours_to_accept_median": 6.0,
    "hours_to_deliver_median": 72.0,  # two days and four
}


async def test_the_real_summary_and_the_fakes_agree_for_every_state_and_a_period(database_factory):
    pool = await service_pool(database_factory, "referral_summary", Path(main.__file__).parent / "migrations")
    fake = FakeLoopStore()
    try:
        with as_agency(ALL_AGENCIES):
            async with pool.acquire() as conn:
                for row in rows():
                    columns = ", ".join(row)
                    values = ", ".join(f"${i}" for i in range(1, len(row) + 1))
                    await conn.execute(f"INSERT INTO referrals ({columns}) VALUES ({values})", *row.values())
                    fake.referrals[row["id"]] = row
                real = LoopStore(conn)
                ever = dict(await real.summary("agency-a", None, None, NOW))
                week = dict(await real.summary("agency-a", T + timedelta(days=1), T + timedelta(days=8), NOW))
                received = dict(await real.summary("agency-food", None, None, NOW, received=True))
        assert ever == EVER
        assert await fake.summary("agency-a", None, None, NOW) == EVER
        # Made from day 1 up to day 8: only the referral made on day 1 (sent, unanswered).
        assert week == await fake.summary("agency-a", T + timedelta(days=1), T + timedelta(days=8), NOW)
        # Sent to the program's agency: every agency's but the draft, which was never sent.
        assert received == await fake.summary("agency-food", None, None, NOW, received=True)
        assert (received["made"], received["waiting_for_consent"], received["delivered"]) == (11, 0, 3)
        assert (week["made"], week["open"], week["answer_overdue"], week["hours_to_accept_median"]) == (
            1,
            1,
            1,
            None,
        )
    finally:
        await pool.close()
