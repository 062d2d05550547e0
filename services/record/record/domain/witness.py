"""Keys the record database does not hold: entry MACs and signed checkpoints. Pure: no I/O.

A hash chain alone proves nothing against someone who can write the database: they can change an entry
and recompute every hash after it and the head. So:

- each entry also carries an HMAC-SHA256 of its hash under a *chain key* from configuration (never in
  the database); the key's id is stored with the MAC so keys can be rotated (new entries take the
  first key of the ring, older ones verify with theirs);
- every so often the heads of the chains that moved are written into a *checkpoint*, signed with an
  Ed25519 key from configuration, numbered and linked to the checkpoint before it, and published
  outside the record database (a Kafka topic kept forever and a directory of files). A chain that no
  longer contains a head it once had signed was rewritten, even by someone holding the chain key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from careloop_shared.crypto import KeyProblem, parse_key_ring

MIN_KEY_BYTES = 32


def parse_keys(text: str, setting: str) -> dict[str, bytes]:
    """``kid:base64,kid:base64`` -> {kid: key}, in the order given (the first is the current one); the
    lengths are judged by the key's use (an HMAC key, a raw Ed25519 key)."""
    return parse_key_ring(text, setting, key_bytes=None)


@dataclass(frozen=True)
class ChainKeys:
    """The chain keys: the first authenticates new entries, every one verifies its own."""

    ring: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not self.ring:
            raise KeyProblem("RECORD_CHAIN_KEYS: no key given")
        for kid, key in self.ring.items():
            if len(key) < MIN_KEY_BYTES:
                raise KeyProblem(f"RECORD_CHAIN_KEYS: key {kid!r} is shorter than {MIN_KEY_BYTES} bytes")

    @property
    def current(self) -> str:
        return next(iter(self.ring))

    def mac(self, entry_hash: bytes, kid: str | None = None) -> tuple[str, bytes]:
        kid = kid or self.current
        return kid, hmac.new(self.ring[kid], entry_hash, hashlib.sha256).digest()

    def authentic(self, entry_hash: bytes, kid: str | None, mac: bytes | None) -> bool:
        if kid is None or mac is None or kid not in self.ring:
            return False
        return hmac.compare_digest(self.mac(entry_hash, kid)[1], bytes(mac))


@dataclass(frozen=True)
class SigningKeys:
    """The checkpoint signing key (private, for the writer) and every public key a verifier accepts."""

    key_id: str | None
    private: Ed25519PrivateKey | None
    public: Mapping[str, Ed25519PublicKey]

    @classmethod
    def from_settings(cls, signing: str | None, public: str | None) -> SigningKeys:
        private_key, kid = None, None
        publics: dict[str, Ed25519PublicKey] = {}
        if signing:
            ring = parse_keys(signing, "RECORD_CHECKPOINT_SIGNING_KEY")
            if len(ring) != 1:
                raise KeyProblem("RECORD_CHECKPOINT_SIGNING_KEY: exactly one kid:base64 key")
            kid, raw = next(iter(ring.items()))
            try:
                private_key = Ed25519PrivateKey.from_private_bytes(raw)
            except ValueError:
                raise KeyProblem("RECORD_CHECKPOINT_SIGNING_KEY: not a raw 32-byte Ed25519 key") from None
            publics[kid] = private_key.public_key()
        for pkid, raw in (parse_keys(public, "RECORD_CHECKPOINT_PUBLIC_KEYS") if public else {}).items():
            try:
                publics[pkid] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError:
                problem = f"RECORD_CHECKPOINT_PUBLIC_KEYS: {pkid!r} is not a raw Ed25519 key"
                raise KeyProblem(problem) from None
        return cls(kid, private_key, publics)


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Head:
    patient_id: uuid.UUID
    seq: int
    hash: bytes


def _by_patient(head: Head) -> uuid.UUID:
    return head.patient_id


def make_checkpoint(
    keys: SigningKeys, number: int, at: datetime, previous: bytes | None, heads: Sequence[Head]
) -> dict[str, Any]:
    """Checkpoint ``number``: the given heads (sorted by patient), linked to the previous checkpoint's
    digest, signed. Its JSON is what is published; ``digest`` of it links the next one."""
    if keys.private is None or keys.key_id is None:
        raise KeyProblem("RECORD_CHECKPOINT_SIGNING_KEY is not set: this process cannot sign checkpoints")
    body = {
        "checkpoint": number,
        "at": at.isoformat(),
        "previous": previous.hex() if previous else None,
        "key_id": keys.key_id,
        "heads": [[str(h.patient_id), h.seq, h.hash.hex()] for h in sorted(heads, key=_by_patient)],
    }
    signature = keys.private.sign(_canonical(body))
    return {**body, "signature": base64.b64encode(signature).decode()}


def digest(checkpoint: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(_canonical(checkpoint)).digest()


def signature_holds(keys: SigningKeys, checkpoint: Mapping[str, Any]) -> bool:
    public = keys.public.get(str(checkpoint.get("key_id")))
    if public is None:
        return False
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    try:
        public.verify(base64.b64decode(str(checkpoint.get("signature", ""))), _canonical(body))
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_head(checkpoint: Mapping[str, Any], patient_id: uuid.UUID) -> tuple[int, bytes] | None:
    for pid, seq, hash_hex in checkpoint.get("heads", []):
        if pid == str(patient_id):
            return int(seq), bytes.fromhex(hash_hex)
    return None


@dataclass(frozen=True)
class WitnessCheck:
    checkpoints: int
    intact: bool
    problem: str | None = None
    checkpoint: int | None = None


def check_series(keys: SigningKeys, checkpoints: Iterable[Mapping[str, Any]]) -> WitnessCheck:
    """Checkpoints in number order: each signed by a known key, numbered one after the other and linked
    to the digest of the one before it (so none was dropped or replaced)."""
    count, previous, last = 0, None, 0
    for checkpoint in checkpoints:
        count += 1
        number = int(checkpoint["checkpoint"])
        if not signature_holds(keys, checkpoint):
            return WitnessCheck(count, False, "signature does not hold", number)
        if number != last + 1:
            return WitnessCheck(count, False, f"checkpoint {last + 1} missing", number)
        if checkpoint.get("previous") != (previous.hex() if previous else None):
            return WitnessCheck(count, False, "does not link to the checkpoint before it", number)
        previous, last = digest(checkpoint), number
    return WitnessCheck(count, True)
