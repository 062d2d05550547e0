"""record's tables: the entries of every patient's chain (only ever inserted) and each chain's head."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from careloop_shared.db import Store, columns_of, insert_rows, rows_from
from record.domain.chain import GENESIS

ENTRY_COLUMNS = (
    "patient_id, seq, event_id, event_type, source, agency_id, occurred_at, recorded_at, correlation_id,"
    " causation_id, body, prev_hash, hash, mac_key, mac"
)

# Each consumed event is one entry, its id unique: the entries refuse a redelivered event, found among
# them when the batch is applied again (``ServiceSpec.applied_in``), instead of every event's id being
# written to the inbox as well.
APPLIED_IN = "record_entries.event_id"

_E_COLUMNS = ", ".join("e." + c.strip() for c in ENTRY_COLUMNS.split(","))


class Head(NamedTuple):
    """The end of a patient's chain: its last entry's seq and hash, and the chain's agency (its first
    entry's, which every entry names; none for a chain with no entry yet)."""

    seq: int
    hash: bytes
    agency_id: str | None


Heads = dict[uuid.UUID, Head]

MOVED_HEADS = (
    "SELECT h.patient_id, h.seq, h.hash FROM record_heads h"
    " LEFT JOIN record_witnessed w ON w.patient_id = h.patient_id"
    " WHERE h.moved AND h.seq > 0 AND w.seq IS DISTINCT FROM h.seq"
    " ORDER BY w.checkpoint NULLS FIRST LIMIT $1"
)


class RecordStore(Store):
    async def lock_heads(self, agencies: Mapping[uuid.UUID, str]) -> Heads:
        """The chain heads of these patients, locked for this transaction; a patient new to the record
        gets a genesis head of the agency given for it.

        Most events are for patients the record already holds: their heads are locked with one statement,
        and only the patients not found get a genesis head (a replica inserting the same one first makes
        this wait for it, then find it) and are locked after it. Two appenders of one patient's events
        only meet while their consumer group rebalances; if they take new and known heads in crossed
        orders then, PostgreSQL reports the deadlock and the consumer retries the batch (a transient error).
        """
        ids = sorted(agencies)  # known heads, then new ones, each in one order
        heads = await self._lock(ids)
        if missing := [i for i in ids if i not in heads]:
            await self.db.execute(
                "INSERT INTO record_heads (patient_id, seq, hash, agency_id)"
                " SELECT unnest($1::uuid[]), 0, $2, unnest($3::text[]) ON CONFLICT (patient_id) DO NOTHING",
                missing,
                GENESIS,
                [agencies[i] for i in missing],
            )
            heads |= await self._lock(missing)
        return heads

    async def _lock(self, ids: list[uuid.UUID]) -> Heads:
        rows = await self.db.fetch(
            "SELECT patient_id, seq, hash, agency_id FROM record_heads WHERE patient_id = ANY($1::uuid[])"
            " ORDER BY patient_id FOR UPDATE",
            ids,
        )
        return {r["patient_id"]: Head(r["seq"], bytes(r["hash"]), r["agency_id"]) for r in rows}

    async def append(self, entries: list[dict[str, Any]], heads: Heads) -> None:
        """Insert the entries and move the heads to the last of each patient's (a head of no agency yet,
        one made before heads kept theirs, takes its entries')."""
        await insert_rows(self.db, "record_entries", entries)
        columns = {"patient_id": "uuid", "seq": "bigint", "hash": "bytea", "agency_id": "text"}
        await self.db.execute(
            f"UPDATE record_heads h SET seq = r.seq, hash = r.hash, moved = true,"
            f" agency_id = coalesce(h.agency_id, r.agency_id) FROM {rows_from(columns)}"
            " WHERE h.patient_id = r.patient_id",  # one head per patient: each row matched once
            *columns_of([(patient_id, *head) for patient_id, head in heads.items()], columns),
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

    # Checkpoints (record.domain.witness): the signed heads, as published outside this database.

    async def witnessed(self, patient_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.db.fetchrow(
            "SELECT checkpoint, seq, hash FROM record_witnessed WHERE patient_id = $1", patient_id
        )

    async def checkpoint_document(self, checkpoint: int) -> str | None:
        document: str | None = await self.db.fetchval(
            "SELECT document FROM record_checkpoints WHERE checkpoint = $1", checkpoint
        )
        return document

    async def lock_checkpoints(self) -> bool:
        """Whether this transaction may write the next checkpoint (one writer among the replicas)."""
        sql = "SELECT pg_try_advisory_xact_lock(hashtext('record_checkpoints'))"
        return bool(await self.db.fetchval(sql))

    async def last_checkpoint(self) -> tuple[int, bytes] | None:
        row = await self.db.fetchrow(
            "SELECT checkpoint, digest FROM record_checkpoints ORDER BY checkpoint DESC LIMIT 1"
        )
        return (row["checkpoint"], bytes(row["digest"])) if row else None

    async def moved_heads(self, limit: int) -> list[asyncpg.Record]:
        """Heads not yet signed as they are now (oldest signature first, never-signed ones before): among
        the heads flagged as moved only, so the search costs what moved, not every chain."""
        return await self.db.fetch(MOVED_HEADS, limit)

    async def settle_heads(self, limit: int) -> int:
        """Clear the flag of up to ``limit`` heads still as last signed (or never moved); how many.

        A head an appender holds is skipped, never waited for (so this never deadlocks with one, nor
        keeps its batch waiting on heads it does not touch), and is found again next time; one it moves
        after this looks is moved again by then, so its flag stays: only a head as signed loses it."""
        cleared: int = await self.db.fetchval(
            "WITH settled AS (UPDATE record_heads h SET moved = false FROM ("
            "SELECT s.patient_id FROM record_heads s"
            " LEFT JOIN record_witnessed w ON w.patient_id = s.patient_id"
            " WHERE s.moved AND s.seq = coalesce(w.seq, 0) LIMIT $1 FOR UPDATE OF s SKIP LOCKED) t"
            " WHERE h.patient_id = t.patient_id RETURNING 1) SELECT count(*) FROM settled",
            limit,
        )
        return cleared

    async def save_checkpoint(
        self, checkpoint: int, at: datetime, digest: bytes, document: str, heads: list[asyncpg.Record]
    ) -> None:
        await self.db.execute(
            "INSERT INTO record_checkpoints (checkpoint, at, digest, document) VALUES ($1, $2, $3, $4)",
            checkpoint,
            at,
            digest,
            document,
        )
        await self.db.execute(
            "INSERT INTO record_witnessed (patient_id, checkpoint, seq, hash)"
            " SELECT p, $1, s, h FROM unnest($2::uuid[], $3::bigint[], $4::bytea[]) AS t(p, s, h)"
            " ON CONFLICT (patient_id) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, seq = EXCLUDED.seq,"
            " hash = EXCLUDED.hash",
            checkpoint,
            [h["patient_id"] for h in heads],
            [h["seq"] for h in heads],
            [bytes(h["hash"]) for h in heads],
        )

    async def unpublished_checkpoints(self) -> list[asyncpg.Record]:
        return await self.db.fetch(
            "SELECT checkpoint, document FROM record_checkpoints WHERE published_at IS NULL"
            " ORDER BY checkpoint"
        )

    async def mark_published(self, checkpoint: int, at: datetime) -> None:
        await self.db.execute(
            "UPDATE record_checkpoints SET published_at = $2 WHERE checkpoint = $1", checkpoint, at
        )

    async def hashes_at(self, heads: list[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], bytes]:
        """The hash of each (patient, seq) entry that exists."""
        rows = await self.db.fetch(
            "SELECT e.patient_id, e.seq, e.hash FROM unnest($1::uuid[], $2::bigint[]) AS t(p, s)"
            " JOIN record_entries e ON e.patient_id = t.p AND e.seq = t.s",
            [p for p, _ in heads],
            [s for _, s in heads],
        )
        return {(r["patient_id"], r["seq"]): bytes(r["hash"]) for r in rows}
