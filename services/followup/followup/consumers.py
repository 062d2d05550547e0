"""followup's Kafka subscriptions: which event goes to which use case.

The task list follows most of them: on its own (``when_event_track_tasks``), or from within the
follow-up use case of an event that does both.
"""

from __future__ import annotations

from careloop_shared.coalesce import side_by_side
from careloop_shared.consumer import Handler
from careloop_shared.contracts import (
    AppointmentStatusChanged,
    CareManagerAssigned,
    NetworkGapDetected,
    PatientAssessed,
    PatientErased,
    PatientRegistered,
    PlanAlternativesProposed,
    PlanUpdated,
    ReferralMade,
    ReferralOverdue,
    ReferralStatusChanged,
)
from careloop_shared.events import Event
from followup.caseload.handlers import (
    when_care_manager_assigned_move_caseload,
    when_patient_registered_learn_care_manager,
)
from followup.handlers import (
    when_patient_erased_blank_notes,
    when_plan_updated_schedule_follow_up,
    when_referral_made_schedule_check_in,
    when_referral_status_changed,
)
from followup.tasks.handlers import when_event_track_tasks

_BY_EVENT: dict[type[Event], Handler] = {
    PlanUpdated: when_plan_updated_schedule_follow_up,
    ReferralMade: when_referral_made_schedule_check_in,
    ReferralStatusChanged: when_referral_status_changed,
    PatientRegistered: when_patient_registered_learn_care_manager,
    CareManagerAssigned: when_care_manager_assigned_move_caseload,
    PatientAssessed: when_event_track_tasks,
    ReferralOverdue: when_event_track_tasks,
    PlanAlternativesProposed: when_event_track_tasks,
    NetworkGapDetected: when_event_track_tasks,
    AppointmentStatusChanged: when_event_track_tasks,
    PatientErased: when_patient_erased_blank_notes,
}
# Every one of them touches only the patient's own rows: different patients' events run side by side.
HANDLERS: dict[type[Event], Handler] = {event: side_by_side(handler) for event, handler in _BY_EVENT.items()}
