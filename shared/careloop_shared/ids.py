"""Ids for events and rows: UUIDv7, time-ordered, so each new one lands at the right edge of its
indexes (the inbox's, the outbox's and the case record's event ids; follow-ups', referrals' and tasks'
ids) instead of on a random page of a large index. Patient ids stay random (UUIDv4): a pseudonymous id
should not tell when the patient was registered.

The ids made and read here are asyncpg's ``UUID``, the class asyncpg gives for every ``uuid`` column
read: a ``uuid.UUID`` to ``isinstance``, equal to and hashed as the standard one of the same value,
written in C. Every event a consumer reads has three ids parsed, and every id is written as text at least
once (its headers, the record's hash chain); the standard class does both in Python (README,
Performance: parsed in 0.2 µs against 0.4, written as text in 0.04 µs against 0.5).
"""

from __future__ import annotations

import hashlib
import uuid

from asyncpg.pgproto.pgproto import UUID as _UUID
from pydantic import TypeAdapter, ValidationError
from uuid_utils import uuid7

_ANY_FORM = TypeAdapter(uuid.UUID)


def new_id() -> uuid.UUID:
    """A new UUIDv7 (RFC 9562): milliseconds since the epoch, then random bits."""
    return _UUID(uuid7().bytes)


def parse_id(text: str) -> uuid.UUID:
    """A UUID written as text (hyphenated, braced, ``urn:uuid:`` or 32 hex digits); ``ValueError``
    naming no value if it is not one.

    The canonical form (lower case, hyphenated), which every careloop producer writes, is parsed in C;
    any other goes through pydantic-core, which is stricter than ``uuid.UUID`` only where that one is
    lax by accident (a sign or a space in place of the first digit). asyncpg's parser alone would take
    hyphens anywhere, so its result counts only when it reads back as the text given."""
    try:
        parsed = _UUID(text)
    except (TypeError, ValueError):
        pass
    else:
        if str(parsed) == text:
            return parsed
    try:
        return written_in_c(_ANY_FORM.validate_python(text))
    except ValidationError:
        raise ValueError("not a UUID") from None  # pydantic's message would quote the input


def written_in_c(value: uuid.UUID) -> uuid.UUID:
    """The same UUID as asyncpg's class (for a field validated by pydantic, which gives the standard
    one): worth it for an id written as text more than once, as every event's patient id is."""
    return value if type(value) is _UUID else _UUID(value.bytes)


class NameBased:
    """``uuid.uuid5(namespace, name)``, as asyncpg's class, with the namespace's share of the SHA-1 hash
    computed once: 1.9 µs an id against 4.0 (careplan mints one per goal and intervention each time it
    drafts a plan; followup and referral, their tasks' and events' ids)."""

    def __init__(self, namespace: uuid.UUID) -> None:
        self._hashed = hashlib.sha1(namespace.bytes, usedforsecurity=False)

    def __call__(self, name: str) -> uuid.UUID:
        digest = self._hashed.copy()
        digest.update(name.encode())
        raw = bytearray(digest.digest()[:16])
        raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
        raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 9562 variant
        return _UUID(bytes(raw))
