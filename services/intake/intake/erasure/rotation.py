"""Re-wrapping the patients' data keys under the current key-encryption key, in the background.

Rotation without downtime: the new key goes first in ``CARELOOP_KEKS`` with the old one still listed.
From then on new data keys are wrapped by the new one, every kept key still opens under the one it
names, and this step re-wraps those under an older one a batch per transaction (the rows locked, those
another replica holds skipped, so replicas share the work and a request never waits on a whole batch)
until none is left; then the old key can leave the configuration. How many are left, and how many are
wrapped by a key no longer configured, is reported (``careloop_data_keys_to_rewrap`` and a log line);
such a key is left as it is, and the round goes on with the others.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TypeAlias

from prometheus_client import Gauge

from careloop_shared import metrics
from careloop_shared.crypto import Unreadable
from careloop_shared.logging import get_logger
from careloop_shared.outbox import UnitOfWork
from intake.config import IntakeContext
from intake.store import IntakeStore

log = get_logger(__name__)

Uow: TypeAlias = UnitOfWork[IntakeStore]

WAITING, KEK_MISSING = "waiting", "kek-missing"
LEFT = Gauge(
    "careloop_data_keys_to_rewrap",
    "Patients' data keys not wrapped by the current key-encryption key: `waiting` (under an older one"
    " still configured, to be re-wrapped) or `kek-missing` (under one no longer configured: they open"
    " again only once it is put back).",
    ["service_name", "state"],
    registry=metrics.REGISTRY,
)


@dataclass(frozen=True)
class Rewrapped:
    """One round: what it re-wrapped, and what is left."""

    kek_id: str  # the current key-encryption key
    rewrapped: int
    waiting: int  # kept keys still under an older configured key
    not_opened: int = 0  # claimed, but did not open under the key they name (another key under its id)
    kek_missing: dict[str, int] = field(default_factory=dict)  # by the key id they name


async def rewrap_batch(ctx: IntakeContext, uow: Uow) -> Rewrapped:
    """Re-wrap up to a batch of the keys under an older configured key, from a random point on (a
    key that does not open cannot hold up the others), and count what is left."""
    wrapper = ctx.keys.wrapper
    current, older = wrapper.current, wrapper.kek_ids[1:]
    rewrapped, not_opened = [], 0
    if older:
        for row in await uow.store.keys.claim_to_rewrap(older, uuid.uuid4(), ctx.rewrap_batch_size):
            patient_id = row["patient_id"]
            try:
                data_key = ctx.keys.data_key(patient_id, row)
            except Unreadable:
                not_opened += 1
                continue
            # Bound to the patient, as PatientKeys.new binds a new key.
            kek_id, wrapped = wrapper.wrap(data_key, patient_id.bytes)
            rewrapped.append({"patient_id": patient_id, "kek_id": kek_id, "wrapped": wrapped})
        if rewrapped:
            await uow.store.keys.rewrap(rewrapped)
    left = await uow.store.keys.count_not_under(current)
    return Rewrapped(
        current,
        len(rewrapped),
        sum(n for kek, n in left.items() if kek in older),
        not_opened,
        {kek: n for kek, n in left.items() if kek not in older},
    )


def report(done: Rewrapped) -> None:
    """The gauge and the log say what is left; key ids and counts only."""
    LEFT.labels("intake", WAITING).set(done.waiting)
    LEFT.labels("intake", KEK_MISSING).set(sum(done.kek_missing.values()))
    if done.rewrapped:
        log.info("data keys re-wrapped", kek_id=done.kek_id, rewrapped=done.rewrapped, left=done.waiting)
        if done.waiting == 0:
            log.info(
                "every data key is wrapped by the current key-encryption key; older ones may leave"
                " CARELOOP_KEKS",
                kek_id=done.kek_id,
            )
    if done.not_opened:
        log.error(
            "data keys that do not open under the key-encryption key they name were left as they are",
            count=done.not_opened,
        )
    if done.kek_missing:
        log.warning(
            "data keys wrapped by a key-encryption key not in CARELOOP_KEKS: their sealed data opens only"
            " once it is put back",
            kek_ids=sorted(done.kek_missing),
            count=sum(done.kek_missing.values()),
        )


async def rewrap_data_keys(ctx: IntakeContext, uow: Uow) -> bool:
    """Periodic: a batch of data keys re-wrapped under the current key-encryption key. True when it
    re-wrapped some and more wait."""
    done = await rewrap_batch(ctx, uow)
    report(done)
    return done.rewrapped > 0 and done.waiting > 0
