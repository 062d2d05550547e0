"""Ids for events and rows: UUIDv7, time-ordered, so each new one lands at the right edge of its
indexes (the inbox's, the outbox's and the case record's event ids; follow-ups', referrals' and tasks'
ids) instead of on a random page of a large index. Patient ids stay random (UUIDv4): a pseudonymous id
should not tell when the patient was registered."""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    """A new UUIDv7 (RFC 9562): milliseconds since the epoch, then random bits; a standard ``uuid.UUID``."""
    return uuid7()
