"""How follow-ups may reach a patient: their contact preference, and for an interpersonal-safety need
only a channel the patient marked safe. Pure: no I/O.

For a patient whose plan has such a need (an abuser may read their texts or answer their phone), a
channel the patient has not marked safe is never used: the preferred channel if it is safe, else the
first safe one in the library's order, else in person only. Not having said which channels are safe
counts as none being safe, for those needs only; every other plan follows the contact preference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from careloop_shared.rules import Rule

# The follow-up channel when careplan knows no contact preference.
DEFAULT_CHANNEL = "phone"
DO_NOT_CONTACT = "do-not-contact"


class InterpersonalSafety(Rule):
    """Which needs make contact a safety question, and which safe channel to use first."""

    needs: list[str]  # need codes, e.g. intimate-partner-violence
    safe_channel_order: list[str]  # contact channels (phone, text, email, in-person), first used first
    no_safe_channel: str = "in-person-only"  # the follow-up channel when none is safe


def follow_up_channel_for(channel: str | None, channels: Mapping[str, str]) -> str:
    """The follow-up channel for a contact preference or a contact channel, through the library's table
    (e.g. do-not-contact and in-person both mean in-person-only)."""
    if not channel:
        return DEFAULT_CHANNEL
    return channels.get(channel, channel)


def follow_up_channel(
    *,
    contact_preference: str | None,
    needs: Sequence[str],
    safe_channels: Sequence[str] | None,
    safety: InterpersonalSafety,
    channels: Mapping[str, str],
) -> str:
    """The channel the plan's follow-ups use."""
    preferred = follow_up_channel_for(contact_preference, channels)
    if contact_preference == DO_NOT_CONTACT or not set(needs) & set(safety.needs):
        return preferred
    safe = set(safe_channels or ())
    if preferred in {follow_up_channel_for(c, channels) for c in safe}:
        return preferred
    first_safe = next((c for c in safety.safe_channel_order if c in safe), None)
    return follow_up_channel_for(first_safe, channels) if first_safe else safety.no_safe_channel
