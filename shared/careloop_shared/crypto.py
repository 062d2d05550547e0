"""Sensitive fields sealed with a per-patient data key; data keys wrapped by a key-encryption key.

The hierarchy:
- a **key-encryption key** (KEK) from configuration (``CARELOOP_KEKS``: ``kid:base64,...``, 32-byte
  AES keys, the first wraps new data keys, every one unwraps its own), behind ``KeyWrapper`` so a KMS or
  Vault transit adapter can take its place;
- a **data key** per patient (AES-256-GCM), kept only wrapped, by the service that owns the patient
  (intake); destroying it makes every copy of what it sealed unreadable at once: in every database,
  topic, backup and replica (erasure by key destruction);
- **sealed** values: AES-GCM ciphertext of a field with the data key's id, bound by associated data to
  the patient and the field's name, so a sealed value cut from one place cannot be pasted into another.

Events keep in the clear what consumers route and analyse on (needs, risk level, codes) and carry the
sensitive parts only sealed. No function here logs a key or a plaintext.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field

ALGORITHM = "A256GCM"
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyProblem(ValueError):
    """A key setting that cannot be used; names the setting, never the key."""


class Erased(Exception):
    """The patient's data key was destroyed: what it sealed can no longer be read, by anyone."""


class Unreadable(Exception):
    """A sealed value that does not open: the wrong key, or changed or moved ciphertext."""


class Sealed(BaseModel):
    """A sensitive value as it is stored and published: ciphertext and the id of the key that opens it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alg: str = Field(ALGORITHM, description="AES-256-GCM.")
    kid: str = Field(description="The patient's data key: `<patient id>/<version>`.")
    nonce: str = Field(description="Base64 of the 96-bit nonce.")
    ct: str = Field(description="Base64 of the ciphertext and its 128-bit tag.")


def parse_key_ring(text: str, setting: str, *, key_bytes: int | None = KEY_BYTES) -> dict[str, bytes]:
    """``kid:base64,kid:base64`` -> {kid: key}, in the order given (the first is current); each key
    ``key_bytes`` long (None: any length, for the caller to judge)."""
    ring: dict[str, bytes] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kid, sep, encoded = (x.strip() for x in part.partition(":"))
        if not sep or not kid:
            raise KeyProblem(f"{setting}: each key is kid:base64")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise KeyProblem(f"{setting}: key {kid!r} is not base64") from None
        if key_bytes is not None and len(key) != key_bytes:
            raise KeyProblem(f"{setting}: key {kid!r} is not {key_bytes} bytes")
        if kid in ring:
            raise KeyProblem(f"{setting}: key id {kid!r} given twice")
        ring[kid] = key
    if not ring:
        raise KeyProblem(f"{setting}: no key given")
    return ring


class KeyWrapper(Protocol):
    """Wraps and unwraps data keys: local keys from configuration today; a KMS or Vault transit later."""

    @property
    def current(self) -> str: ...

    @property
    def kek_ids(self) -> tuple[str, ...]:
        """The key-encryption keys it unwraps with, the current one first."""
        ...

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes: ...


@dataclass(frozen=True)
class LocalKeyWrapper:
    """AES-GCM key wrapping under key-encryption keys from configuration."""

    ring: Mapping[str, bytes]

    @classmethod
    def from_setting(cls, text: str) -> LocalKeyWrapper:
        return cls(parse_key_ring(text, "CARELOOP_KEKS"))

    @property
    def current(self) -> str:
        return next(iter(self.ring))

    @property
    def kek_ids(self) -> tuple[str, ...]:
        return tuple(self.ring)

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return self.current, nonce + AESGCM(self.ring[self.current]).encrypt(nonce, data_key, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        key = self.ring.get(kek_id)
        if key is None:
            raise Unreadable(f"key-encryption key {kek_id!r} is not configured")
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except InvalidTag:
            raise Unreadable("a wrapped data key does not open under its key-encryption key") from None


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def key_id(patient_id: uuid.UUID, version: int = 1) -> str:
    return f"{patient_id}/{version}"


def _aad(patient_id: uuid.UUID, field: str) -> bytes:
    return f"careloop:{patient_id}:{field}".encode()


def seal(data_key: bytes, kid: str, patient_id: uuid.UUID, field: str, value: Any) -> Sealed:
    """``value`` (anything JSON can carry) sealed for this patient and this field."""
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps(value, separators=(",", ":"), default=str).encode()
    ct = AESGCM(data_key).encrypt(nonce, plaintext, _aad(patient_id, field))
    return Sealed(kid=kid, nonce=base64.b64encode(nonce).decode(), ct=base64.b64encode(ct).decode())


def open_sealed(data_key: bytes, sealed: Sealed, patient_id: uuid.UUID, field: str) -> Any:
    """The value sealed for this patient and field; ``Unreadable`` if the key or the place is wrong."""
    if sealed.alg != ALGORITHM:
        raise Unreadable(f"unknown algorithm {sealed.alg!r}")
    try:
        plaintext = AESGCM(data_key).decrypt(
            base64.b64decode(sealed.nonce), base64.b64decode(sealed.ct), _aad(patient_id, field)
        )
    except (InvalidTag, ValueError):
        raise Unreadable("a sealed value does not open with its key here") from None
    return json.loads(plaintext)
