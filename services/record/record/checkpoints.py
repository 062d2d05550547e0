"""Checkpoints of the chains' heads: signed here, published outside the record database, and read back
to verify a chain against what was once signed (record.domain.witness has the rules).

Each round: publish any checkpoint signed but not yet published (a crash between the two), then sign
the heads that moved since they were last signed into checkpoints N+1, N+2, ... (in the database first, so
a crash cannot publish two different checkpoints under one number), then publish them, each as a file
``checkpoint-<N>.json`` in the checkpoint folder, when one is configured, and a record on the checkpoint
topic (one partition, kept forever), each carrying the same signed JSON. Last, the heads still as
signed lose their flag as moved (record_heads.moved, set by every append), so the next search reads only
the heads that moved, not every chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from careloop_shared.logging import get_logger
from record.config import RecordContext
from record.domain.chain import Witnessed
from record.domain.witness import (
    Head,
    WitnessCheck,
    check_series,
    digest,
    make_checkpoint,
    signature_holds,
    signed_head,
)
from record.store import RecordStore

if TYPE_CHECKING:
    from careloop_shared.runtime import ServiceRuntime

log = get_logger(__name__)

TOPIC = "careloop.record.checkpoints.v1"


class CheckpointFiles:
    """The checkpoint folder: one JSON file per checkpoint, written whole or not at all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, checkpoint: int) -> Path:
        return self.folder / f"checkpoint-{checkpoint:012d}.json"

    def write(self, checkpoint: int, document: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(checkpoint)
        temporary = target.with_suffix(".tmp")
        with temporary.open("w") as out:
            out.write(document)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)

    def read(self, checkpoint: int) -> dict[str, Any] | None:
        try:
            loaded: dict[str, Any] = json.loads(self.path(checkpoint).read_text())
        except FileNotFoundError:
            return None
        return loaded

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.folder.glob("checkpoint-*.json")):
            yield json.loads(path.read_text())


# One search for the heads that moved (each joined to its last signature and sorted, oldest first) serves up
# to this many checkpoints of RECORD_CHECKPOINT_MAX_HEADS each.
CHECKPOINTS_PER_SEARCH = 25


async def sign_moved_heads(ctx: RecordContext, store: RecordStore) -> tuple[int, bool] | None:
    """Checkpoints N+1, N+2, ... over the heads that moved, ``checkpoint_max_heads`` each, each linked to
    the one before (in the caller's transaction); the last one's number, and whether more heads wait.
    None when nothing moved or another replica is signing. A head that moves again while they are signed
    is signed as it was found (its chain holds that entry) and found moved by the next round."""
    if not await store.lock_checkpoints():
        return None
    limit = ctx.checkpoint_max_heads * CHECKPOINTS_PER_SEARCH
    heads = await store.moved_heads(limit)
    if not heads:
        return None
    last = await store.last_checkpoint()
    number, previous = last or (0, None)
    for start in range(0, len(heads), ctx.checkpoint_max_heads):
        signed = heads[start : start + ctx.checkpoint_max_heads]
        number, at = number + 1, ctx.clock()
        checkpoint = make_checkpoint(
            ctx.signing_keys,
            number,
            at,
            previous,
            [Head(h["patient_id"], h["seq"], bytes(h["hash"])) for h in signed],
        )
        document = json.dumps(checkpoint, sort_keys=True, separators=(",", ":"))
        previous = digest(checkpoint)
        await store.save_checkpoint(number, at, previous, document, signed)
    return number, len(heads) == limit


async def publish_pending(runtime: ServiceRuntime) -> int:
    """Publish every signed checkpoint not yet published, in order; how many."""
    ctx: RecordContext = runtime.context
    store: RecordStore = runtime.reader()
    files = CheckpointFiles(ctx.checkpoint_dir) if ctx.checkpoint_dir else None
    pending = await store.unpublished_checkpoints()
    for row in pending:
        if files is not None:
            await asyncio.to_thread(files.write, row["checkpoint"], row["document"])
        await runtime.broker.publish(
            row["document"].encode(),
            runtime.topic_for(TOPIC),
            key=b"checkpoints",  # one partition: the series in order
            headers={"content-type": "application/json", "careloop_checkpoint": str(row["checkpoint"])},
        )
        await store.mark_published(row["checkpoint"], ctx.clock())
    return len(pending)


async def checkpoint_round(runtime: ServiceRuntime) -> bool:
    """One round; whether more heads wait to be signed."""
    await publish_pending(runtime)
    async with runtime.uow() as uow:
        signed = await sign_moved_heads(runtime.context, uow.store)
    if signed is not None:
        await publish_pending(runtime)
        log.info("checkpoint signed", checkpoint=signed[0])
    await settle_heads(runtime)
    return signed is not None and signed[1]


async def settle_heads(runtime: ServiceRuntime) -> None:
    """The heads signed as they are no longer flagged as moved: a transaction for each few thousand, so
    that an appender meeting one waits for little."""
    limit = runtime.context.checkpoint_max_heads
    while True:
        async with runtime.uow() as uow:
            if await uow.store.settle_heads(limit) < limit:
                return


def checkpoints_every(every_s: float) -> Any:
    async def sign_checkpoints(runtime: ServiceRuntime) -> None:
        while True:
            try:
                while await checkpoint_round(runtime):
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("checkpoint round failed; will retry", exc_info=exc)
            await asyncio.sleep(every_s)

    return sign_checkpoints


@dataclass(frozen=True)
class Witness:
    """The patient's latest signed head, checked against its checkpoint; or why it cannot be trusted."""

    witnessed: Witnessed | None
    problem: str | None = None


async def witness_of(ctx: RecordContext, store: RecordStore, patient_id: uuid.UUID) -> Witness:
    """The head last signed for this patient. The database says which checkpoint signed it; the
    checkpoint itself is read from the folder outside the database when one is configured (else the
    database's copy) and must carry a valid signature and that very head."""
    row = await store.witnessed(patient_id)
    if row is None:
        return Witness(None)
    number = int(row["checkpoint"])
    checkpoint: Mapping[str, Any] | None
    if ctx.checkpoint_dir is not None:
        checkpoint = await asyncio.to_thread(CheckpointFiles(ctx.checkpoint_dir).read, number)
    else:
        document = await store.checkpoint_document(number)
        checkpoint = json.loads(document) if document else None
    if checkpoint is None:
        return Witness(None, f"checkpoint {number} not found")
    if not signature_holds(ctx.signing_keys, checkpoint) or int(checkpoint["checkpoint"]) != number:
        return Witness(None, f"checkpoint {number}'s signature does not hold")
    head = signed_head(checkpoint, patient_id)
    if head is None:
        return Witness(None, f"checkpoint {number} does not name this patient")
    return Witness(Witnessed(number, head[0], head[1]))


@dataclass(frozen=True)
class Audit:
    series: WitnessCheck
    patients: int
    broken: dict[str, str]  # patient id -> what does not hold


async def audit(ctx: RecordContext, store: RecordStore, checkpoints: list[dict[str, Any]]) -> Audit:
    """Every chain against the checkpoints published outside the database: the series holds (signed,
    numbered, linked), and each patient's last signed head is still in their chain. Catches a rewrite
    that also deleted the database's note of what was signed."""
    checkpoints = sorted(checkpoints, key=lambda c: int(c["checkpoint"]))
    series = check_series(ctx.signing_keys, checkpoints)
    latest: dict[uuid.UUID, tuple[int, int, bytes]] = {}
    for checkpoint in checkpoints:
        for pid, seq, hash_hex in checkpoint["heads"]:
            latest[uuid.UUID(pid)] = (int(checkpoint["checkpoint"]), int(seq), bytes.fromhex(hash_hex))
    found = await store.hashes_at([(p, seq) for p, (_, seq, _) in latest.items()])
    broken: dict[str, str] = {}
    for patient_id, (number, seq, hash_) in latest.items():
        present = found.get((patient_id, seq))
        if present is None:
            broken[str(patient_id)] = f"entry {seq} signed in checkpoint {number} is missing"
        elif present != hash_:
            broken[str(patient_id)] = f"entry {seq} differs from the head signed in checkpoint {number}"
    return Audit(series, len(latest), broken)
