"""followup's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from functools import partial

from careloop_shared.consumer import Handler
from careloop_shared.contracts import PlanUpdated, ReferralMade, ReferralStatusChanged
from careloop_shared.events import Event
from followup.domain.rules import FollowUpRules
from followup.domain.schedule import Clock
from followup.handlers import (
    when_plan_updated_schedule_follow_up,
    when_referral_made_schedule_check_in,
    when_referral_status_changed,
)


def handlers(rules: FollowUpRules, clock: Clock) -> dict[type[Event], Handler]:
    return {
        PlanUpdated: partial(when_plan_updated_schedule_follow_up, rules, clock),
        ReferralMade: partial(when_referral_made_schedule_check_in, rules, clock),
        ReferralStatusChanged: partial(when_referral_status_changed, rules, clock),
    }
