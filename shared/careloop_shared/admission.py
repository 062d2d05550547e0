"""Admission: how many requests a service works on at once, and how long one may wait for its turn.

An overloaded service that takes every request makes every caller wait longer and longer (at 250
assessments a second against the 115-155 it could do, intake's 202s came 20-24 s late at the 99th
percentile, each behind up to a thousand others). ``Admission`` lets ``limit`` requests
in at once, in their order of arrival, and answers one that has waited ``wait_s`` for its turn 503
with ``Retry-After``, before anything of it ran: nothing was written, and trying again is safe. The
health checks and metrics always pass, so an orchestrator sees a busy service as alive and ready.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from careloop_shared import metrics
from careloop_shared.doors import reply

BUSY = "the service is busy; retry after Retry-After seconds"
RETRY_AFTER_S = 1
RETRY_AFTER = (b"retry-after", str(RETRY_AFTER_S).encode())

# How a refused request is answered, from plain ASGI: given ``send``, it sends a whole 503 response.
Refusal = Callable[[Send], Awaitable[None]]


async def busy_json(send: Send) -> None:
    """A service's refusal: ``{"detail": BUSY}`` with ``Retry-After``."""
    await reply(send, 503, {"detail": BUSY}, [RETRY_AFTER])


class Admission:
    """Plain ASGI: at most ``limit`` requests inside at once; the rest wait their turn, first come first
    served, and are refused (503) after ``wait_s`` without one, answered by ``refuse`` (the workspace
    answers a page). ``exempt`` paths are never held."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        wait_s: float,
        exempt: Collection[str],
        service: str = "careloop",
        refuse: Refusal = busy_json,
    ) -> None:
        self.app = app
        self._refuse = refuse
        self._limit = limit
        self._wait_s = wait_s
        self._exempt = frozenset(exempt)
        self._inside = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._refused = metrics.HTTP_REFUSED_BUSY.labels(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        if not await self._enter():
            self._refused.inc()
            await self._refuse(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._leave()

    async def _enter(self) -> bool:
        while self._waiting and self._waiting[0].done():  # gave up waiting
            self._waiting.popleft()
        if self._inside < self._limit and not self._waiting:
            self._inside += 1
            return True
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(self._wait_s):
                await turn
        except TimeoutError:
            pass
        except BaseException:  # the request was cancelled (its client left, the server stops)
            if turn.done() and not turn.cancelled():
                self._leave()  # its turn came as it was cancelled: pass it on
            raise
        if turn.done() and not turn.cancelled():  # its turn came, perhaps as the wait ran out
            return True
        turn.cancel()
        return False

    def _leave(self) -> None:
        """A request is done: its place goes to the longest waiting, else it is free."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._inside -= 1
