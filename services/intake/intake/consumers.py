"""intake's Kafka subscriptions: which event goes to which use case."""

from __future__ import annotations

from careloop_shared.consumer import Handler
from careloop_shared.contracts import ReferralMade, ReferralStatusChanged
from careloop_shared.events import Event
from intake.referred.handlers import when_referral_made_grant_access, when_referral_status_changed_end_access

HANDLERS: dict[type[Event], Handler] = {
    ReferralMade: when_referral_made_grant_access,
    ReferralStatusChanged: when_referral_status_changed_end_access,
}
