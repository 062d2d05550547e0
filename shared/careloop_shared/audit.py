"""The audit log: every disclosure of a patient's data, and every refused attempt, recorded before
the answer leaves the service. Shaped after FHIR AuditEvent (agent, source, entity, action, outcome).

A route that discloses patient data calls ``audit.read(patient_id, what)`` (the ``Audit`` dependency)
before it answers; a refusal on a patient's route is recorded by the kernel. Entries are written by
one ``AuditTrail`` per service that gathers concurrent requests' entries into one insert (group
commit): each request still waits until its entries are stored, so nothing is disclosed unrecorded,
and under load many requests share a round trip. If the log cannot be written the request fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, field, fields
from datetime import datetime
from typing import Any

import asyncpg

from careloop_shared.clock import Clock, system_clock
from careloop_shared.db import ALL_AGENCIES, as_agency
from careloop_shared.ids import new_id
from careloop_shared.logging import get_logger

log = get_logger(__name__)

READ = "R"  # AuditEvent.action


@dataclass(frozen=True)
class AuditEntry:
    subject: str
    role: str
    agency_id: str
    network_address: str | None
    source: str
    patient_id: uuid.UUID | None
    patient_agency_id: str | None
    what: str
    entity_id: str | None
    route: str
    outcome: str = "allowed"
    outcome_detail: str | None = None
    action: str = READ
    recorded_at: datetime | None = None
    id: uuid.UUID = field(default_factory=new_id)


_COLUMNS = [f.name for f in fields(AuditEntry)]
_TYPES = {
    "patient_id": "uuid[]",
    "id": "uuid[]",
    "recorded_at": "timestamptz[]",
}
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{_TYPES.get(c, 'text[]')}" for i, c in enumerate(_COLUMNS))
    + ")"
)


class AuditTrail:
    """Writes audit entries in batches; ``record`` returns once its entries are stored."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], clock: Clock = system_clock) -> None:
        self._pool = pool
        self._clock = clock
        self._pending: list[tuple[list[AuditEntry], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-trail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._flush()  # what was waiting is still written

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((list(entries), done))
        self._wake.set()
        if self._task is None:  # not started (a test, a one-off): write it now
            await self._flush()
        await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        now = self._clock()
        rows = [e if e.recorded_at else _at(e, now) for entries, _ in batch for e in entries]
        try:
            with as_agency(ALL_AGENCIES):  # the service's own writer: the entries of every agency
                await self._pool().execute(_INSERT, *map(list, zip(*(astuple(r) for r in rows), strict=True)))
        except Exception as exc:
            log.error("audit log could not be written; the disclosures are refused", exc_info=exc)
            for _, done in batch:
                if not done.done():
                    done.set_exception(AuditUnavailable())
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)


def _at(entry: AuditEntry, now: datetime) -> AuditEntry:
    values: dict[str, Any] = {f.name: getattr(entry, f.name) for f in fields(entry)}
    return AuditEntry(**{**values, "recorded_at": now})


class AuditUnavailable(Exception):
    """The audit log could not be written, so the data is not disclosed."""
