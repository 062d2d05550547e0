"""``Idempotency-Key`` for POST requests.

The key is recorded in the same transaction as the request's effects and events, with the response. A
retry with the same key and the same request gets the first response back and changes nothing; the same
key with a different request is refused. A request that failed stored nothing, so its retry runs anew.
Concurrent requests with one key serialise on the key's row: the second waits, then replays.

A kept response names the patient the request is about (its path's ``patient_id``, else its command's), so
the patient's erasure deletes it (``forget_patient``): a response kept for replay can hold what the request
sent. Kept responses are forgotten ``CARELOOP_IDEMPOTENCY_KEEP_S`` after the request (a day by default;
``forget_old``): a retry after that runs anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from careloop_shared.auth import Principal
from careloop_shared.db import Db
from careloop_shared.errors import Invalid
from careloop_shared.outbox import DatabaseUnitOfWork, UnitOfWork

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200

Operation = Callable[[DatabaseUnitOfWork[Any]], Awaitable[tuple[int, Any]]]


def fingerprint(method: str, path: str, body: Any) -> bytes:
    """The request as it was understood (its command), so a retry matches whatever the JSON spacing."""
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).digest()


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key; one of the wrong length is refused, a 422 at the header, like any
    other input that breaks a rule (before any work is begun)."""
    key = request.headers.get(HEADER)
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        kind = "string_too_long" if key else "string_too_short"
        raise Invalid.at(["header", HEADER], kind, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def at_most_once(
    request: Request,
    who: Principal,
    body: Any,
    operation: Operation,
    *,
    patient_id: uuid.UUID | None = None,
) -> Callable[[DatabaseUnitOfWork[Any]], Coroutine[Any, Any, JSONResponse]]:
    """``operation`` as a unit of work's answer, at most once per Idempotency-Key: in a transaction of its
    own or one it shares with others (``careloop_shared.command_groups``)."""
    key = idempotency_key(request)
    if key is None:

        async def plain(uow: DatabaseUnitOfWork[Any]) -> JSONResponse:
            code, result = await operation(uow)
            return JSONResponse(status_code=code, content=jsonable_encoder(result))

        return plain
    # What the request is, once: a group rolled back runs ``once`` again.
    scope = who.agency_id
    print_ = fingerprint(request.method, request.url.path, body)
    about = patient_id or _patient_of(request, body)

    async def once(uow: DatabaseUnitOfWork[Any]) -> JSONResponse:
        db: Db = uow.shared if uow.shared is not None else uow.conn  # one statement at a time when shared
        claimed = await db.fetchval(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, patient_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true",
            scope,
            key,
            print_,
            about,
        )
        if not claimed:
            row = await db.fetchrow(
                "SELECT fingerprint, status_code, response FROM idempotency_keys"
                " WHERE scope = $1 AND key = $2",
                scope,
                key,
            )
            if row["fingerprint"] != print_:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"{HEADER} was already used for a different request",
                )
            if row["status_code"] is None:
                # Claimed in this very transaction by a request not answered yet: two requests with one key
                # side by side in one group (a group runs one patient's requests one after another, so only
                # a route whose requests with one key named different patients could). The group rolls back
                # and this one runs alone: it waits for the other's commit, then replays it.
                raise KeyInFlight()
            return JSONResponse(
                status_code=row["status_code"],
                content=row["response"],
                headers={REPLAYED_HEADER: "true"},
            )
        code, result = await operation(uow)
        content = jsonable_encoder(result)
        await db.execute(
            "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE scope = $1 AND key = $2",
            scope,
            key,
            code,
            content,
        )
        return JSONResponse(status_code=code, content=content)

    return once


class KeyInFlight(Exception):
    """An Idempotency-Key claimed by another request of the same transaction, not answered yet."""


def _patient_of(request: Request, body: Any) -> uuid.UUID | None:
    """The patient the request is about: its path's ``patient_id``, else its command's."""
    for raw in (request.path_params.get("patient_id"), getattr(body, "patient_id", None)):
        if isinstance(raw, uuid.UUID):
            return raw
        if raw is not None:
            with contextlib.suppress(ValueError):
                return uuid.UUID(str(raw))
    return None


async def forget_patient(conn: Db, patient_id: uuid.UUID) -> int:
    """Delete the responses kept for replay of requests about this patient (on their erasure); how many."""
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM idempotency_keys WHERE patient_id = $1 RETURNING 1)"
        " SELECT count(*) FROM gone",
        patient_id,
    )
    return int(deleted or 0)


FORGET_BATCH = 5000


def forget_old(keep_s: float) -> Callable[[Any, UnitOfWork[Any]], Awaitable[bool]]:
    """A periodic step deleting responses kept longer than ``keep_s``, a batch at a time (True: more)."""

    async def forget_old_replays(_: Any, uow: UnitOfWork[Any]) -> bool:
        assert isinstance(uow, DatabaseUnitOfWork)
        deleted = await uow.conn.fetchval(
            "WITH gone AS (DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)"
            " LIMIT $2)) RETURNING 1) SELECT count(*) FROM gone",
            keep_s,
            FORGET_BATCH,
        )
        return bool(deleted == FORGET_BATCH)

    return forget_old_replays
