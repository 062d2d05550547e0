"""careplan's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from careloop_shared.consumer import Handler
from careloop_shared.contracts import (
    FollowUpCompleted,
    PatientAssessed,
    PatientErased,
    PatientRegistered,
    PatientUpdated,
    ReferralStatusChanged,
)
from careloop_shared.events import Event
from careplan.erasure.handlers import when_patient_erased_forget_free_text
from careplan.plans.handlers import (
    when_follow_up_completed_record_progress,
    when_patient_assessed_revise_plan,
    when_patient_details_change_personalise_plan,
    when_referral_status_changes_track_intervention,
)

HANDLERS: dict[type[Event], Handler] = {
    PatientAssessed: when_patient_assessed_revise_plan,
    PatientRegistered: when_patient_details_change_personalise_plan,
    PatientUpdated: when_patient_details_change_personalise_plan,
    ReferralStatusChanged: when_referral_status_changes_track_intervention,
    FollowUpCompleted: when_follow_up_completed_record_progress,
    PatientErased: when_patient_erased_forget_free_text,
}
