"""Re-wrapping data keys under a new key-encryption key, on the in-memory store: batches, what is left,
and keys that cannot be re-wrapped reported, never a failed round."""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid

import pytest

from careloop_shared import metrics
from careloop_shared.crypto import LocalKeyWrapper, Unreadable
from careloop_shared.testing.fakes import FakeUnitOfWork, run_step
from intake.config import IntakeContext
from intake.erasure.keys import PatientKeys
from intake.erasure.rotation import rewrap_batch, rewrap_data_keys

KEKS = {kid: f"{kid}:{base64.b64encode(os.urandom(32)).decode()}" for kid in ("k0", "k1", "k2")}
AGENCY = "agency-a"


def with_keks(ctx: IntakeContext, *kids: str, batch: int = 500, **other: str) -> IntakeContext:
    ring = ",".join(other.get(k) or KEKS[k] for k in kids)
    return dataclasses.replace(
        ctx, keys=PatientKeys(LocalKeyWrapper.from_setting(ring)), rewrap_batch_size=batch
    )


async def keep_keys(ctx: IntakeContext, store, n: int) -> dict[uuid.UUID, bytes]:
    """``n`` patients' data keys, kept wrapped as registration keeps them; the keys themselves."""
    made = {}
    for _ in range(n):
        patient_id = uuid.uuid4()
        row, made[patient_id] = ctx.keys.new(patient_id)
        await store.keys.keep({**row, "agency_id": AGENCY, "created_at": ctx.clock()})
    return made


def left(state: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "careloop_data_keys_to_rewrap", {"service_name": "intake", "state": state}
    )


def under(store) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for row in store.keys.rows.values():
        counts[row["kek_id"]] = counts.get(row["kek_id"], 0) + 1
    return counts


async def test_keys_are_rewrapped_a_batch_at_a_time_until_none_is_left_and_still_open(ctx, store):
    made = await keep_keys(with_keks(ctx, "k1"), store, 5)
    rotated = with_keks(ctx, "k2", "k1", batch=2)

    more, _ = await run_step(rewrap_data_keys, rotated, store)
    assert more is True and under(store) == {"k2": 2, "k1": 3}
    assert left("waiting") == 3 and left("kek-missing") == 0
    rounds = 1
    while more:
        more, _ = await run_step(rewrap_data_keys, rotated, store)
        rounds += 1
    assert rounds == 3 and under(store) == {"k2": 5} and left("waiting") == 0

    # With the old key gone from the configuration, every key opens and is the one made at first.
    only_new = with_keks(ctx, "k2")
    for patient_id, data_key in made.items():
        assert only_new.keys.data_key(patient_id, store.keys.rows[patient_id]) == data_key
    more, _ = await run_step(rewrap_data_keys, only_new, store)
    assert more is False and left("waiting") == 0


async def test_a_key_under_a_kek_no_longer_configured_is_reported_and_the_others_go_on(ctx, store):
    lost = await keep_keys(with_keks(ctx, "k0"), store, 1)
    await keep_keys(with_keks(ctx, "k1"), store, 3)
    rotated = with_keks(ctx, "k2", "k1")

    done = await rewrap_batch(rotated, FakeUnitOfWork(store))
    assert (done.rewrapped, done.waiting, done.kek_missing) == (3, 0, {"k0": 1})
    more, _ = await run_step(rewrap_data_keys, rotated, store)
    assert more is False and left("kek-missing") == 1 and left("waiting") == 0
    [patient_id] = lost
    assert store.keys.rows[patient_id]["kek_id"] == "k0"  # left as it is, for when k0 is put back
    with pytest.raises(Unreadable, match="not configured"):
        rotated.keys.data_key(patient_id, store.keys.rows[patient_id])


async def test_a_key_that_does_not_open_under_the_kek_it_names_is_left_and_does_not_hold_up_others(
    ctx, store
):
    # Another key given the id k1: what the real k1 wrapped does not open under it.
    impostor = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    [stuck] = await keep_keys(with_keks(ctx, "k1"), store, 1)
    await keep_keys(with_keks(ctx, "k1", k1=impostor), store, 4)
    rotated = with_keks(ctx, "k2", "k1", k1=impostor)

    done = await rewrap_batch(rotated, FakeUnitOfWork(store))
    assert (done.rewrapped, done.not_opened, done.waiting) == (4, 1, 1)
    more, _ = await run_step(rewrap_data_keys, rotated, store)
    assert more is False  # nothing re-wrapped this round: no tight loop over a key that will not open
    assert store.keys.rows[stuck]["kek_id"] == "k1" and left("waiting") == 1


async def test_an_erased_key_is_never_wrapped_again(ctx, store, clock):
    made = await keep_keys(with_keks(ctx, "k1"), store, 2)
    erased, kept = list(made)
    await store.keys.destroy(AGENCY, erased, clock(), "sv-sam", "supervisor", "patient's request")
    more, _ = await run_step(rewrap_data_keys, with_keks(ctx, "k2", "k1"), store)
    assert more is False
    assert store.keys.rows[erased]["wrapped"] is None and store.keys.rows[kept]["kek_id"] == "k2"
