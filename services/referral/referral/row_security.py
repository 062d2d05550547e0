"""Acting for another agency than the caller's, on purpose, for one step of a use case.

A request's connections see its caller's agency's rows only (row-level security, migration 006). A few
steps are the network's work rather than the caller's, and say why where they widen:
- a receiving agency's rejection re-routes the referral for the referring agency (loop/handlers.py);
- an activated program takes every agency's patients waiting on the gaps it fills (gaps/handlers.py);
- programs' quality figures and the gap report count every agency's rows, naming none (their stores).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from careloop_shared.db import AGENCY, ALL_AGENCIES, Db, as_agency

_SET = "SELECT set_config('careloop.agency', $1, true)"  # until the transaction ends, at the latest


@contextlib.asynccontextmanager
async def acting_for(db: Db, agency: str) -> AsyncIterator[None]:
    """Statements on ``db`` inside see ``agency``'s rows (every agency's: ``ALL_AGENCIES``), then the
    caller's again. ``db`` is the pool (its checkouts inside act for ``agency``) or a unit of work's
    connection (its transaction acts for ``agency``: a round trip in, one out). Nothing changes when
    the session acts for ``agency`` or every agency already (a consumer, a background step)."""
    current = AGENCY.get()
    if current in (agency, ALL_AGENCIES):
        yield
        return
    if isinstance(db, asyncpg.Pool):
        with as_agency(agency):
            yield
        return
    await db.execute(_SET, agency)
    try:
        with as_agency(agency):
            yield
    finally:
        # A failed transaction cannot take the statement; it is rolled back, and its setting with it.
        with contextlib.suppress(asyncpg.InFailedSQLTransactionError):
            await db.execute(_SET, current)
