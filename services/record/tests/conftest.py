"""record's unit-test fixtures: an in-memory store that behaves like ``RecordStore``, a context, a clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from careloop_shared.rules import load_rules
from careloop_shared.testing.fakes import FakeClock
from record.config import RecordContext
from record.domain.chain import GENESIS
from record.domain.timeline import SUMMARIES_FILE, Summaries


class FakeRecordStore:
    """``RecordStore`` over lists: entries in append order, a head per patient."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.heads: dict[uuid.UUID, tuple[int, bytes]] = {}

    async def lock_heads(self, patient_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[int, bytes]]:
        for patient_id in patient_ids:
            self.heads.setdefault(patient_id, (0, GENESIS))
        return {p: self.heads[p] for p in sorted(set(patient_ids))}

    async def append(self, entries: list[dict[str, Any]], heads: dict[uuid.UUID, tuple[int, bytes]]) -> None:
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
        seq, hash_ = self.heads[patient_id]
        return await self.entries(patient_id), {"seq": seq, "hash": hash_}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def ctx(clock: FakeClock) -> RecordContext:
    return RecordContext(load_rules(Summaries, SUMMARIES_FILE), clock)


@pytest.fixture
def store() -> FakeRecordStore:
    return FakeRecordStore()
