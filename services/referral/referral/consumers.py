"""referral's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from functools import partial

from careloop_shared.consumer import Handler
from careloop_shared.contracts import PlanUpdated
from careloop_shared.events import Event
from referral.domain.matching import Directory
from referral.handlers import when_plan_updated_make_referrals


def handlers(directory: Directory) -> dict[type[Event], Handler]:
    return {PlanUpdated: partial(when_plan_updated_make_referrals, directory)}
