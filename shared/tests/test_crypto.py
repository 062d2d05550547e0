"""Sealed fields: per-patient data keys under a key-encryption key (careloop_shared.crypto)."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from careloop_shared.crypto import (
    KeyProblem,
    LocalKeyWrapper,
    Sealed,
    Unreadable,
    key_id,
    new_data_key,
    open_sealed,
    parse_key_ring,
    seal,
)
from careloop_shared.testing import app_of, client_of


def _kek(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


def test_a_sealed_value_opens_only_for_its_patient_and_field_and_carries_no_plaintext():
    patient, key = uuid.uuid4(), new_data_key()
    sealed = seal(key, key_id(patient), patient, "observations", [{"code": "44250-9", "value": 3}])
    assert "44250-9" not in sealed.model_dump_json()
    assert open_sealed(key, sealed, patient, "observations") == [{"code": "44250-9", "value": 3}]
    with pytest.raises(Unreadable):  # pasted into another patient's event
        open_sealed(key, sealed, uuid.uuid4(), "observations")
    with pytest.raises(Unreadable):  # or another field
        open_sealed(key, sealed, patient, "identity")
    with pytest.raises(Unreadable):  # or opened with another key
        open_sealed(new_data_key(), sealed, patient, "observations")
    ct = base64.b64decode(sealed.ct)  # its first byte flipped: always another byte (setting it could keep it)
    flipped = sealed.model_copy(update={"ct": base64.b64encode(bytes([ct[0] ^ 1]) + ct[1:]).decode()})
    with pytest.raises(Unreadable):
        open_sealed(key, flipped, patient, "observations")
    assert Sealed.model_validate_json(sealed.model_dump_json()) == sealed


def test_data_keys_are_wrapped_and_a_rotated_kek_still_unwraps_the_old_ones():
    old = _kek("k1")
    wrapper = LocalKeyWrapper.from_setting(old)
    data_key, context = new_data_key(), b"patient-1"
    kek_id, wrapped = wrapper.wrap(data_key, context)
    assert kek_id == "k1" and data_key not in wrapped
    rotated = LocalKeyWrapper.from_setting(f"{_kek('k2')},{old}")
    assert rotated.unwrap(kek_id, wrapped, context) == data_key
    assert rotated.wrap(data_key, context)[0] == "k2" and rotated.kek_ids == ("k2", "k1")
    with pytest.raises(Unreadable):
        rotated.unwrap(kek_id, wrapped, b"patient-2")  # a wrapped key moved to another patient
    with pytest.raises(Unreadable, match="not configured"):
        LocalKeyWrapper.from_setting(_kek("k3")).unwrap(kek_id, wrapped, context)


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "no key given"), ("k1", "kid:base64"), ("k1:###", "not base64"), ("k1:" + "QUFB", "not 32 bytes")],
)
def test_a_bad_kek_setting_is_named_without_the_key(text, says):
    with pytest.raises(KeyProblem, match=says) as refused:
        parse_key_ring(text, "CARELOOP_KEKS")
    assert "CARELOOP_KEKS" in str(refused.value) and "QUFB" not in str(refused.value)


async def test_sealed_data_that_does_not_open_here_answers_503_saying_why_never_500():

    from fastapi import APIRouter

    from careloop_shared.auth import issue_token
    from careloop_shared.http import needs
    from careloop_shared.settings import DEV_JWT_SECRET

    router = APIRouter()

    @router.get("/sealed", openapi_extra=needs("patient:read"))
    async def sealed() -> None:
        LocalKeyWrapper.from_setting(_kek("k2")).unwrap("k1", b"x" * 40, b"patient")

    app = app_of("test-unreadable", [router])
    async with client_of(app, "http://t") as client:
        token = issue_token(DEV_JWT_SECRET, agency="agency-a", role="care-manager")
        answer = await client.get("/sealed", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 503
    assert "not configured" in answer.json()["detail"]
