"""referral's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from careloop_shared.consumer import Handler
from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    PatientRegistered,
    PatientUpdated,
    PlanUpdated,
)
from careloop_shared.events import Event
from referral.loop.handlers import (
    when_consent_recorded_send_waiting_referrals,
    when_consent_revoked_stop_unanswered_referrals,
    when_patient_registered_or_updated_remember,
    when_plan_updated_make_referrals,
)

HANDLERS: dict[type[Event], Handler] = {
    PlanUpdated: when_plan_updated_make_referrals,
    PatientRegistered: when_patient_registered_or_updated_remember,
    PatientUpdated: when_patient_registered_or_updated_remember,
    ConsentRecorded: when_consent_recorded_send_waiting_referrals,
    ConsentRevoked: when_consent_revoked_stop_unanswered_referrals,
}
