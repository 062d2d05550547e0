"""careplan's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from careloop_shared.coalesce import side_by_side
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

# Each of these changes only the patient's own rows (its preferences, its plan): different patients'
# events run side by side, their look-ups and writes sharing statements. Assessments come as a batch.
HANDLERS: dict[type[Event], Handler] = {
    PatientAssessed: when_patient_assessed_revise_plan,
    PatientRegistered: side_by_side(when_patient_details_change_personalise_plan),
    PatientUpdated: side_by_side(when_patient_details_change_personalise_plan),
    ReferralStatusChanged: side_by_side(when_referral_status_changes_track_intervention),
    FollowUpCompleted: side_by_side(when_follow_up_completed_record_progress),
    PatientErased: when_patient_erased_forget_free_text,
}
