"""record's unit-test fixtures: an in-memory store that behaves like ``RecordStore``, a context, a clock."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from careloop_shared.rules import load_rules
from careloop_shared.testing.fakes import FakeClock
from record.config import RecordContext
from record.domain.chain import GENESIS
from record.domain.timeline import SUMMARIES_FILE, Summaries
from record.store import Head


class FakeRecordStore:
    """``RecordStore`` over lists: entries in append order, a head per patient."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.heads: dict[uuid.UUID, Head] = {}
        self.checkpoints: dict[int, dict[str, Any]] = {}  # number -> at, digest, document, published_at
        self.signed: dict[uuid.UUID, dict[str, Any]] = {}  # patient -> checkpoint, seq, hash

    async def lock_heads(self, agencies: Mapping[uuid.UUID, str]) -> dict[uuid.UUID, Head]:
        for patient_id, agency_id in agencies.items():
            self.heads.setdefault(patient_id, Head(0, GENESIS, agency_id))
        return {p: self.heads[p] for p in sorted(agencies)}

    async def append(self, entries: list[dict[str, Any]], heads: dict[uuid.UUID, Head]) -> None:
        taken = {(r["patient_id"], r["seq"]) for r in self.rows} | {r["event_id"] for r in self.rows}
        for entry in entries:
            assert (entry["patient_id"], entry["seq"]) not in taken and entry["event_id"] not in taken
        self.rows += [dict(e) for e in entries]
        self.heads.update(heads)

    async def owning_agency(self, patient_id: uuid.UUID) -> str | None:
        return next((r["agency_id"] for r in self.rows if r["patient_id"] == patient_id), None)

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        return await self.owning_agency(patient_id)

    async def entries(
        self,
        patient_id: uuid.UUID,
        *,
        types: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        return sorted(
            (
                r
                for r in self.rows
                if r["patient_id"] == patient_id
                and (types is None or r["event_type"] in types)
                and (since is None or r["occurred_at"] >= since)
                and (until is None or r["occurred_at"] < until)
            ),
            key=lambda r: r["seq"],
        )

    async def chain(self, patient_id: uuid.UUID) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        if patient_id not in self.heads:
            return await self.entries(patient_id), None
        seq, hash_, _ = self.heads[patient_id]
        return await self.entries(patient_id), {"seq": seq, "hash": hash_}

    async def witnessed(self, patient_id: uuid.UUID) -> dict[str, Any] | None:
        return self.signed.get(patient_id)

    async def checkpoint_document(self, checkpoint: int) -> str | None:
        found = self.checkpoints.get(checkpoint)
        return found["document"] if found else None

    async def lock_checkpoints(self) -> bool:
        return True

    async def last_checkpoint(self) -> tuple[int, bytes] | None:
        if not self.checkpoints:
            return None
        number = max(self.checkpoints)
        return number, self.checkpoints[number]["digest"]

    async def moved_heads(self, limit: int) -> list[dict[str, Any]]:
        moved = [
            (self.signed.get(p, {}).get("checkpoint", 0), p, seq, hash_)
            for p, (seq, hash_, _) in self.heads.items()
            if seq > 0 and self.signed.get(p, {}).get("seq") != seq
        ]
        return [{"patient_id": p, "seq": seq, "hash": h} for _, p, seq, h in sorted(moved)[:limit]]

    async def settle_heads(self, limit: int) -> int:
        # moved_heads above compares every head with its signature, as the real search did before it had
        # flags to read: there is no flag here to clear.
        return 0

    async def save_checkpoint(
        self, checkpoint: int, at: datetime, digest: bytes, document: str, heads: list[dict[str, Any]]
    ) -> None:
        assert checkpoint not in self.checkpoints
        self.checkpoints[checkpoint] = {
            "at": at,
            "digest": digest,
            "document": document,
            "published_at": None,
        }
        for h in heads:
            self.signed[h["patient_id"]] = {"checkpoint": checkpoint, "seq": h["seq"], "hash": h["hash"]}

    async def unpublished_checkpoints(self) -> list[dict[str, Any]]:
        return [
            {"checkpoint": n, "document": c["document"]}
            for n, c in sorted(self.checkpoints.items())
            if c["published_at"] is None
        ]

    async def mark_published(self, checkpoint: int, at: datetime) -> None:
        self.checkpoints[checkpoint]["published_at"] = at

    async def hashes_at(self, heads: list[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], bytes]:
        by_key = {(r["patient_id"], r["seq"]): r["hash"] for r in self.rows}
        return {k: by_key[k] for k in heads if k in by_key}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def ctx(clock: FakeClock) -> RecordContext:
    return RecordContext(load_rules(Summaries, SUMMARIES_FILE), clock)


@pytest.fixture
def store() -> FakeRecordStore:
    return FakeRecordStore()
