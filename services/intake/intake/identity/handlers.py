"""Sealing the details of patients registered before they were sealed, in the background.

A migration has no key to seal with, so the rows it found keep their details in the clear until this
step seals them: a batch per transaction, in id order, the rows locked and those a request holds skipped,
so a large database is sealed while the service serves (reads and writes handle both kinds meanwhile,
and a change of a row not sealed yet seals it). ``updated_at`` stays: the details did not change.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from careloop_shared.crypto import Erased, Unreadable
from careloop_shared.logging import get_logger
from careloop_shared.outbox import UnitOfWork
from intake.config import IntakeContext
from intake.identity.sealed import kept_key, seal_identity
from intake.store import IntakeStore

log = get_logger(__name__)

Uow: TypeAlias = UnitOfWork[IntakeStore]


async def seal_identities_in_the_clear(ctx: IntakeContext, uow: Uow) -> bool:
    """Periodic: seal up to a batch of patients' details kept in the clear, making a data key for a
    patient registered before keys existed. True when more may be waiting now."""
    rows = await uow.store.identity.in_the_clear(ctx.identity_seal_batch_size)
    if not rows:
        remain = await uow.store.identity.any_in_the_clear()  # those a request holds, if any
        if ctx.in_the_clear.remain and not remain:
            log.info("every patient's identifying details are sealed")
        ctx.in_the_clear.remain = remain
        return False
    at, sealed, new_keys, unreadable = ctx.clock(), [], [], 0
    for row in rows:
        try:
            data_key, version, new_key = _data_key(ctx, row)
        except (Erased, Unreadable):  # a key under a key-encryption key not configured: left as it is
            unreadable += 1
            continue
        if new_key is not None:
            new_keys.append({**new_key, "agency_id": row["agency_id"], "created_at": at})
        sealed.append(
            {
                "id": row["id"],
                "identity": seal_identity(data_key, row["id"], version, row).model_dump(),
                "duplicate_key": ctx.blind_index.likely_duplicate(
                    row["agency_id"], row["name_key"], row["birth_date"]
                ),
            }
        )
    if sealed:
        await uow.store.identity.seal(sealed, new_keys)
    ctx.in_the_clear.remain = True
    log.debug("patients' identifying details sealed", sealed=len(sealed), not_opened=unreadable)
    return bool(sealed) and len(rows) == ctx.identity_seal_batch_size


def _data_key(ctx: IntakeContext, row: Any) -> tuple[bytes, int, dict[str, Any] | None]:
    """The patient's data key, its version, and the row to keep when it was made now."""
    kept = kept_key(row)
    if kept is not None:
        return ctx.keys.data_key(row["id"], kept), kept["version"], None
    new_key, data_key = ctx.keys.new(row["id"])
    return data_key, new_key["version"], new_key
