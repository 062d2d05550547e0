"""A patient's identifying details, kept only sealed with their data key, and the blind index that finds
likely duplicates without them. Pure: no I/O here.

The details (names, birth date, phone, email, postal code) are one sealed JSON document, ``identity``,
bound to the patient. Every read that shows them opens them through ``identified``, with the data key
read in the same query as the patient's row (one unwrap per patient). Rows written before this keep the
details in the clear until the background step seals them; ``identified`` reads both. Two registrations
of one person are found by ``BlindIndex``: an HMAC of the agency, the normalised name and the birth date
under a key from configuration, kept apart from the key-encryption keys so that re-wrapping or a KMS
changes nothing of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from careloop_shared.crypto import KEY_BYTES, Erased, KeyProblem, Sealed, key_id, open_sealed, seal
from intake.erasure.keys import PatientKeys

FIELD = "identity"  # the sealed document's column, and the field its ciphertext is bound to
IDENTIFYING = ("given_name", "family_name", "birth_date", "phone", "email", "postal_code")
CLEAR = (*IDENTIFYING, "name_key")  # what a row not sealed yet keeps in the clear, and a sealed one never
KEY_COLUMNS = ("key_version", "key_kek_id", "key_wrapped")  # the patient's data key, read with the row

# For development only (it is in this source file): a service beyond loopback refuses it.
DEV_BLIND_INDEX_KEY = "ZGV2ZWxvcG1lbnQtYmxpbmQtaW5kZXgta2V5ISEhISE="


@dataclass(frozen=True)
class BlindIndex:
    """Likely duplicates compared without the details: equal for one person registered twice in an
    agency, and nothing anyone without the key can recompute from a guessed name and birth date."""

    key: bytes

    @classmethod
    def from_setting(cls, text: str) -> BlindIndex:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise KeyProblem("INTAKE_BLIND_INDEX_KEY is not base64") from None
        if len(key) != KEY_BYTES:
            raise KeyProblem(f"INTAKE_BLIND_INDEX_KEY is not {KEY_BYTES} bytes")
        return cls(key)

    def likely_duplicate(self, agency_id: str, name_key: str, birth_date: date) -> bytes:
        """``name_key``: the name as ``domain.patients.normalised_name`` folds it."""
        message = json.dumps([agency_id, name_key, birth_date.isoformat()], ensure_ascii=False)
        return hmac.digest(self.key, message.encode(), hashlib.sha256)


@dataclass
class RowsInTheClear:
    """Whether rows not sealed yet may remain (the background step's last look): while they may, a
    registration or a change of name or birth date looks for a likely duplicate among them too."""

    remain: bool = True


def seal_identity(data_key: bytes, patient_id: uuid.UUID, version: int, details: Mapping[str, Any]) -> Sealed:
    document = {f: details.get(f) for f in IDENTIFYING}
    return seal(data_key, key_id(patient_id, version), patient_id, FIELD, document)


def open_identity(data_key: bytes, patient_id: uuid.UUID, sealed: Mapping[str, Any]) -> dict[str, Any]:
    opened = open_sealed(data_key, Sealed.model_validate(sealed), patient_id, FIELD)
    return {**opened, "birth_date": date.fromisoformat(opened["birth_date"])}


def kept_key(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The patient's data key as kept, read with their row; None when none was ever kept."""
    if row.get("key_version") is None:
        return None
    return {"version": row["key_version"], "kek_id": row["key_kek_id"], "wrapped": row["key_wrapped"]}


def identified(keys: PatientKeys, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Patient rows as shown: the details opened from ``identity`` (or as a row not sealed yet keeps
    them), the sealed document and the key left out; the details None once the key was destroyed."""
    return [_identified(keys, row) for row in rows]


def _identified(keys: PatientKeys, row: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in row.items() if k != FIELD and k not in KEY_COLUMNS and k != "name_key"}
    sealed = row.get(FIELD)
    if sealed is None:
        return {**dict.fromkeys(IDENTIFYING), **shown}  # not sealed yet: the details are in the row
    try:
        kept = kept_key(row)
        if kept is None:
            raise Erased("no key kept")
        details = open_identity(keys.data_key(row["id"], kept), row["id"], sealed)
    except Erased:
        details = dict.fromkeys(IDENTIFYING)
    return {**shown, **details}
