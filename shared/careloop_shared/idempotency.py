"""``Idempotency-Key`` for POST requests.

The key is recorded in the same transaction as the request's effects and events, with the response. A
retry with the same key and the same request gets the first response back and changes nothing; the same
key with a different request is refused. A request that failed stored nothing, so its retry runs anew.
Concurrent requests with one key serialise on the key's row: the second waits, then replays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from careloop_shared.auth import Principal
from careloop_shared.outbox import DatabaseUnitOfWork
from careloop_shared.runtime import ServiceRuntime

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200

Operation = Callable[[DatabaseUnitOfWork[Any]], Awaitable[tuple[int, Any]]]


def fingerprint(method: str, path: str, body: Any) -> bytes:
    """The request as it was understood (its command), so a retry matches whatever the JSON spacing."""
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).digest()


async def run_idempotent(
    rt: ServiceRuntime, request: Request, who: Principal, body: Any, operation: Operation
) -> JSONResponse:
    """Run ``operation`` in one unit of work, at most once per Idempotency-Key."""
    key = request.headers.get(HEADER)
    async with rt.uow() as uow:
        if key is None:
            code, result = await operation(uow)
            return JSONResponse(status_code=code, content=jsonable_encoder(result))
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters"
            )
        scope = who.agency_id
        print_ = fingerprint(request.method, request.url.path, body)
        claimed = await uow.conn.fetchval(
            "INSERT INTO idempotency_keys (scope, key, fingerprint) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            scope,
            key,
            print_,
        )
        if not claimed:
            row = await uow.conn.fetchrow(
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
            return JSONResponse(
                status_code=row["status_code"],
                content=row["response"],
                headers={REPLAYED_HEADER: "true"},
            )
        code, result = await operation(uow)
        content = jsonable_encoder(result)
        await uow.conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE scope = $1 AND key = $2",
            scope,
            key,
            code,
            content,
        )
        return JSONResponse(status_code=code, content=content)
