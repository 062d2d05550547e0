"""Contacts a care manager arranges with the patient: a one-off follow-up at a time they agreed, for a
coded purpose, reaching them by a channel their plan allows; and calling one off. Pure: no I/O.

An arranged contact falls due, opens a follow-up task and takes an outcome as any follow-up does; it
does not recur, and it is not the plan's to move or cancel; a person may move it, call it off, or change how
it reaches the patient or what it is for. Its channel is the plan's or in person
(``ArrangedContact.channels_for``): for a patient at risk at home the plan's channel is the one they
marked safe, so no arranged call may go around it, and a later plan that changes the channel moves an
arranged contact that no longer fits it (``channel_after_plan``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from followup.domain import announcements as announce
from followup.domain.announcements import Announcement
from followup.domain.follow_up import ARRANGED_CONTACT, OPEN, Actor, FollowUp, InvalidInput, NotOutstanding
from followup.domain.rules import FollowUpRules
from followup.domain.scheduling import in_body, new_follow_up, time_problems


class NotArranged(NotOutstanding):
    """Only a contact a care manager arranged may be called off or changed; careloop's own follow-ups end
    with what they follow (the plan, the referral) and reach the patient as the plan says."""


@dataclass(frozen=True)
class Arrangement:
    row: dict[str, Any]  # the follow-up to insert
    announcement: Announcement


def arrange_contact(
    rules: FollowUpRules,
    now: datetime,
    *,
    patient_id: uuid.UUID,
    agency_id: str,
    due_at: datetime,
    channel: str,
    purpose: str,
    plan_channel: str | None,
    plan_priority: str | None,
    by: Actor,
) -> Arrangement:
    """A contact at ``due_at``, at the priority of the patient's plan (the rules' default before one)."""
    arranged = rules.arranged_contact
    problems: list[dict[str, Any]] = []
    if purpose not in arranged.purposes:
        problems.append({"loc": in_body("purpose"), "msg": "unknown purpose code"})
    allowed = arranged.channels_for(plan_channel)
    if channel not in allowed:
        problems.append(
            {"loc": in_body("channel"), "msg": f"must be one of {', '.join(allowed)} for this patient"}
        )
    problems += time_problems(due_at, now, arranged.max_days_ahead)
    if problems:
        raise InvalidInput(problems)
    row = new_follow_up(
        rules,
        now,
        patient_id=patient_id,
        agency_id=agency_id,
        reason=ARRANGED_CONTACT,
        priority=plan_priority or arranged.default_priority,
        due_at=due_at.astimezone(UTC),  # as the database gives it back, so the event reads the same
        channel=channel,
        purpose=purpose,
    )
    return Arrangement(row, announce.scheduled(FollowUp.from_row(row), by=by))


@dataclass(frozen=True)
class ContactChange:
    """What calling off or changing an arranged contact writes to its row, and its announcement."""

    changes: dict[str, Any]
    announcement: Announcement


def cancel_contact(
    rules: FollowUpRules, follow_up: FollowUp, reason: str, now: datetime, *, by: Actor
) -> ContactChange:
    """Call off an open arranged contact for a coded reason; its follow-up task, if due, closes with it."""
    if reason not in rules.arranged_contact.cancel_reasons:
        raise InvalidInput([{"loc": in_body("reason"), "msg": "unknown cancel reason code"}])
    if follow_up.reason != ARRANGED_CONTACT:
        raise NotArranged("only an arranged contact can be called off")
    if follow_up.status not in OPEN:
        raise NotOutstanding(f"follow-up is {follow_up.status}")
    cancelled = replace(follow_up, status="cancelled")
    return ContactChange(
        changes={"status": "cancelled"},
        announcement=announce.cancelled(cancelled, reason, now, by=by),
    )


def change_arrangement(
    rules: FollowUpRules,
    follow_up: FollowUp,
    *,
    channel: str | None,
    purpose: str | None,
    plan_channel: str | None,
    by: Actor,
) -> ContactChange | None:
    """An open arranged contact reached another way (one its plan allows) or for another purpose, at the
    same time; None when nothing named differs from what it is."""
    if follow_up.reason != ARRANGED_CONTACT:
        raise NotArranged("only an arranged contact's way or purpose can be changed")
    if follow_up.status not in OPEN:
        raise NotOutstanding(f"follow-up is {follow_up.status}")
    arranged, problems = rules.arranged_contact, []
    if purpose is not None and purpose not in arranged.purposes:
        problems.append({"loc": in_body("purpose"), "msg": "unknown purpose code"})
    allowed = arranged.channels_for(plan_channel)
    if channel is not None and channel not in allowed:
        problems.append(
            {"loc": in_body("channel"), "msg": f"must be one of {', '.join(allowed)} for this patient"}
        )
    if problems:
        raise InvalidInput(problems)
    changed = replace(follow_up, channel=channel or follow_up.channel, purpose=purpose or follow_up.purpose)
    if changed == follow_up:
        return None
    changes = {"channel": changed.channel, "purpose": changed.purpose}
    return ContactChange(changes, announce.revised(changed, by=by))


def channel_after_plan(
    rules: FollowUpRules, follow_up_reason: str, current: str | None, plan: str | None
) -> str | None:
    """The channel an open follow-up takes when the plan's becomes ``plan``: the plan's, except that an
    arranged contact keeps its own while the plan still allows it."""
    if follow_up_reason == ARRANGED_CONTACT and current in rules.arranged_contact.channels_for(plan):
        return current
    return plan
