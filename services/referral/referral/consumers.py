"""referral's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from careloop_shared.coalesce import side_by_side
from careloop_shared.consumer import Handler
from careloop_shared.contracts import (
    ConsentRecorded,
    ConsentRevoked,
    PatientErased,
    PatientRegistered,
    PatientUpdated,
    PlanUpdated,
)
from careloop_shared.events import Event
from referral.erasure.handlers import when_patient_erased_forget_notes
from referral.loop.handlers import (
    when_consent_revoked_stop_unanswered_referrals,
    when_consents_recorded_send_waiting_referrals,
    when_patient_registered_or_updated_remember,
    when_plan_updated_make_referrals,
)

# A plan's referrals and what intake says of a patient (their erasure too) touch only that patient's rows
# (the directory is read, not written): different patients' events run side by side. Consents come as a
# batch (recorded together, the referrals they release sent one consent at a time); revocations one at a time.
HANDLERS: dict[type[Event], Handler] = {
    PlanUpdated: side_by_side(when_plan_updated_make_referrals),
    PatientRegistered: side_by_side(when_patient_registered_or_updated_remember),
    PatientUpdated: side_by_side(when_patient_registered_or_updated_remember),
    PatientErased: side_by_side(when_patient_erased_forget_notes),
    ConsentRecorded: when_consents_recorded_send_waiting_referrals,
    ConsentRevoked: when_consent_revoked_stop_unanswered_referrals,
}
