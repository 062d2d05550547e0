"""Event contracts, version 1. Published as JSON Schema under ``schemas/`` for analytics consumers.

One module per publishing service. Evolution rule: a ``.v1`` type only gains optional fields;
anything else is a new ``.v2`` type. Events carry pseudonymous ids and coded values only: never names,
birth dates, phone numbers, addresses or free text written about a patient.
"""

from __future__ import annotations

from careloop_shared.contracts.careplan import (
    CareTeamChanged,
    EducationProvided,
    FollowUpCadence,
    Goal,
    Intervention,
    PlanAlternativesProposed,
    PlanUpdated,
)
from careloop_shared.contracts.common import (
    ActorId,
    ActorRole,
    ContactChannel,
    ContactPreference,
    Need,
    Observation,
    Part,
    RiskLevel,
    SafeChannels,
)
from careloop_shared.contracts.followup import (
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    FollowUpScheduled,
    GoalProgress,
    ReassessmentRequested,
    TaskCause,
    TaskEscalated,
    TaskOpened,
    TaskStatusChanged,
)
from careloop_shared.contracts.intake import (
    CareManagerAssigned,
    ConsentRecorded,
    ConsentRevoked,
    PatientAssessed,
    PatientErased,
    PatientRegistered,
    PatientUpdated,
)
from careloop_shared.contracts.referral import (
    AppointmentStatusChanged,
    NetworkGapDetected,
    ReferralMade,
    ReferralOutcome,
    ReferralOverdue,
    ReferralStatusChanged,
)

__all__ = [
    "ActorId",
    "ActorRole",
    "AppointmentStatusChanged",
    "CareManagerAssigned",
    "CareTeamChanged",
    "ConsentRecorded",
    "ConsentRevoked",
    "ContactChannel",
    "ContactPreference",
    "EducationProvided",
    "FollowUpCadence",
    "FollowUpCancelled",
    "FollowUpCompleted",
    "FollowUpDue",
    "FollowUpOverdue",
    "FollowUpScheduled",
    "Goal",
    "GoalProgress",
    "Intervention",
    "Need",
    "NetworkGapDetected",
    "Observation",
    "Part",
    "PatientAssessed",
    "PatientErased",
    "PatientRegistered",
    "PatientUpdated",
    "PlanAlternativesProposed",
    "PlanUpdated",
    "ReassessmentRequested",
    "ReferralMade",
    "ReferralOutcome",
    "ReferralOverdue",
    "ReferralStatusChanged",
    "RiskLevel",
    "SafeChannels",
    "TaskCause",
    "TaskEscalated",
    "TaskOpened",
    "TaskStatusChanged",
]
