"""referral's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from functools import partial

from careloop_shared.consumer import Handler
from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    PatientRegistered,
    PatientUpdated,
    PlanUpdated,
)
from careloop_shared.events import Event
from referral.handlers import (
    Referrals,
    when_consent_recorded_send_waiting_referrals,
    when_consent_revoked_stop_unanswered_referrals,
    when_patient_registered_or_updated_remember,
    when_plan_updated_make_referrals,
)


def handlers(ctx: Referrals) -> dict[type[Event], Handler]:
    return {
        PlanUpdated: partial(when_plan_updated_make_referrals, ctx),
        PatientRegistered: when_patient_registered_or_updated_remember,
        PatientUpdated: when_patient_registered_or_updated_remember,
        ConsentRecorded: partial(when_consent_recorded_send_waiting_referrals, ctx),
        ConsentRevoked: partial(when_consent_revoked_stop_unanswered_referrals, ctx),
    }
