"""careplan's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from functools import partial

from careloop_shared.consumer import Handler
from careloop_shared.contracts import (
    FollowUpCompleted,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    ReferralStatusChanged,
)
from careloop_shared.events import Event
from careplan.handlers import (
    Planning,
    when_follow_up_completed_record_progress,
    when_patient_assessed_revise_plan,
    when_patient_details_change_personalise_plan,
    when_referral_status_changes_track_intervention,
)


def handlers(planning: Planning) -> dict[type[Event], Handler]:
    return {
        PatientAssessed: partial(when_patient_assessed_revise_plan, planning),
        PatientRegistered: partial(when_patient_details_change_personalise_plan, planning),
        PatientUpdated: partial(when_patient_details_change_personalise_plan, planning),
        ReferralStatusChanged: partial(when_referral_status_changes_track_intervention, planning),
        FollowUpCompleted: partial(when_follow_up_completed_record_progress, planning),
    }
