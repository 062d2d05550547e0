"""The hash chain of a patient's record. Pure: no I/O.

Each entry's hash covers the previous entry's hash and the entry itself (its place in the chain, the
event's id, type, source, agency, times, correlation and causation, and its body byte for byte), so
changing, inserting or removing any entry breaks every hash after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

GENESIS = b"\x00" * 32
_FIELDS = (
    "patient_id",
    "seq",
    "event_id",
    "event_type",
    "source",
    "agency_id",
    "occurred_at",
    "correlation_id",
    "causation_id",
)


# The header is the JSON object of those fields, keys sorted, no spaces, every value a string or null,
# non-ASCII escaped: what ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` wrote for the first
# entries, assembled here without building the dict (record hashes every event of every journey).
_HEADER_KEYS = tuple((f'"{f}":', f) for f in sorted(_FIELDS))


def entry_header(entry: Mapping[str, Any]) -> str:
    values = ((key, _text(entry[field])) for key, field in _HEADER_KEYS)
    return "{" + ",".join([key + ("null" if v is None else _json_string(v)) for key, v in values]) + "}"


def entry_hash(prev_hash: bytes, entry: Mapping[str, Any]) -> bytes:
    header = entry_header(entry)
    digest = hashlib.sha256()
    digest.update(prev_hash)
    digest.update(header.encode())
    digest.update(b"\n")
    digest.update(bytes(entry["body"]))
    return digest.digest()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


@dataclass(frozen=True)
class Verification:
    entries: int
    intact: bool
    first_broken_seq: int | None = None
    problem: str | None = None
    witnessed_by: int | None = None  # the checkpoint whose signed head the chain was checked against


@dataclass(frozen=True)
class Witnessed:
    """A head of this chain signed into a checkpoint outside the database."""

    checkpoint: int
    seq: int
    hash: bytes


def verify(
    entries: Iterable[Mapping[str, Any]],
    head: Mapping[str, Any] | None,
    *,
    authentic: Callable[[Mapping[str, Any]], bool] | None = None,
    witnessed: Witnessed | None = None,
) -> Verification:
    """Recompute the chain in sequence order; report the first entry that does not hold.

    ``authentic(entry)`` checks an entry's MAC (a key the database does not hold); ``witnessed`` is the
    latest head signed into a checkpoint, which the chain must still contain.
    """
    prev, count, last_seq = GENESIS, 0, 0
    for entry in entries:
        count += 1
        seq = int(entry["seq"])
        if seq != last_seq + 1:
            return Verification(count, False, last_seq + 1, "entry missing")
        if bytes(entry["prev_hash"]) != prev:
            return Verification(count, False, seq, "does not link to the entry before it")
        if entry_hash(prev, entry) != bytes(entry["hash"]):
            return Verification(count, False, seq, "content does not match its hash")
        if authentic is not None and not authentic(entry):
            return Verification(count, False, seq, "not authenticated by the record's chain key")
        if witnessed is not None and seq == witnessed.seq and bytes(entry["hash"]) != witnessed.hash:
            return Verification(
                count, False, seq, f"differs from the head signed in checkpoint {witnessed.checkpoint}"
            )
        prev, last_seq = bytes(entry["hash"]), seq
    if head is not None and (int(head["seq"]) != last_seq or bytes(head["hash"]) != prev):
        return Verification(count, False, last_seq + 1, "entries missing at the end of the chain")
    if witnessed is not None and witnessed.seq > last_seq:
        return Verification(
            count, False, last_seq + 1, f"entries signed in checkpoint {witnessed.checkpoint} are missing"
        )
    return Verification(count, True, witnessed_by=witnessed.checkpoint if witnessed else None)
