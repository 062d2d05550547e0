"""followup's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from careloop_shared.consumer import Handler
from careloop_shared.contracts import PlanUpdated, ReferralMade, ReferralStatusChanged
from careloop_shared.events import Event
from followup.handlers import (
    when_plan_updated_schedule_follow_up,
    when_referral_made_schedule_check_in,
    when_referral_status_changed,
)

HANDLERS: dict[type[Event], Handler] = {
    PlanUpdated: when_plan_updated_schedule_follow_up,
    ReferralMade: when_referral_made_schedule_check_in,
    ReferralStatusChanged: when_referral_status_changed,
}
