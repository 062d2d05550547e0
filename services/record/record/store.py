"""record's tables: the entries of every patient's chain (only ever inserted) and each chain's head."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.db import Store, insert_rows
from record.domain.chain import GENESIS

ENTRY_COLUMNS = (
    "patient_id, seq, event_id, event_type, source, agency_id, occurred_at, recorded_at, correlation_id,"
    " causation_id, body, prev_hash, hash"
)

_E_COLUMNS = ", ".join("e." + c.strip() for c in ENTRY_COLUMNS.split(","))
Heads = dict[uuid.UUID, tuple[int, bytes]]


class RecordStore(Store):
    async def lock_heads(self, patient_ids: Iterable[uuid.UUID]) -> Heads:
        """The chain heads of these patients (a new patient's is the genesis), locked for this transaction."""
        ids = sorted(set(patient_ids))  # one lock order for every appender
        await self.db.execute(
            "INSERT INTO record_heads (patient_id, seq, hash) SELECT unnest($1::uuid[]), 0, $2"
            " ON CONFLICT (patient_id) DO NOTHING",
            ids,
            GENESIS,
        )
        rows = await self.db.fetch(
            "SELECT patient_id, seq, hash FROM record_heads WHERE patient_id = ANY($1::uuid[])"
            " ORDER BY patient_id FOR UPDATE",
            ids,
        )
        return {r["patient_id"]: (r["seq"], bytes(r["hash"])) for r in rows}

    async def append(self, entries: list[dict[str, Any]], heads: Heads) -> None:
        """Insert the entries and move the heads to the last of each patient's."""
        await insert_rows(self.db, "record_entries", entries)
        await self.db.executemany(
            "UPDATE record_heads SET seq = $2, hash = $3 WHERE patient_id = $1",
            [(patient_id, seq, hash_) for patient_id, (seq, hash_) in heads.items()],
        )

    async def owning_agency(self, patient_id: uuid.UUID) -> str | None:
        agency: str | None = await self.db.fetchval(
            "SELECT agency_id FROM record_entries WHERE patient_id = $1 ORDER BY seq LIMIT 1", patient_id
        )
        return agency

    async def agency_of_patient(self, patient_id: uuid.UUID) -> str | None:
        """Whose patient this is, for the audit log's readers: the record's owning agency."""
        return await self.owning_agency(patient_id)

    async def entries(
        self,
        patient_id: uuid.UUID,
        *,
        types: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[asyncpg.Record]:
        return await self.db.fetch(
            f"SELECT {ENTRY_COLUMNS} FROM record_entries WHERE patient_id = $1"
            " AND ($2::text[] IS NULL OR event_type = ANY($2))"
            " AND ($3::timestamptz IS NULL OR occurred_at >= $3)"
            " AND ($4::timestamptz IS NULL OR occurred_at < $4) ORDER BY seq",
            patient_id,
            types,
            since,
            until,
        )

    async def chain(self, patient_id: uuid.UUID) -> tuple[list[asyncpg.Record], dict[str, Any] | None]:
        """The patient's entries and chain head as of one moment (one statement, one snapshot): read
        apart, a batch appended in between would make an intact chain look cut short."""
        rows = await self.db.fetch(
            f"SELECT {_E_COLUMNS}, h.seq AS head_seq, h.hash AS head_hash FROM (SELECT $1::uuid AS id) p"
            " LEFT JOIN record_heads h ON h.patient_id = p.id"
            " LEFT JOIN record_entries e ON e.patient_id = p.id ORDER BY e.seq",
            patient_id,
        )
        head = None
        if rows and rows[0]["head_seq"] is not None:
            head = {"seq": rows[0]["head_seq"], "hash": rows[0]["head_hash"]}
        return [r for r in rows if r["seq"] is not None], head
