"""The background loop that flags referrals past their response or outcome deadline.

It keeps no timer in memory: each tick asks the database what is overdue by the clock, so a deadline
passed while the service was down is flagged on the first tick after it starts, once.
"""

from __future__ import annotations

import asyncio

from careloop_shared.logging import get_logger
from careloop_shared.runtime import BackgroundLoop, ServiceRuntime
from referral.domain.deadlines import Clock
from referral.handlers import flag_overdue

log = get_logger(__name__)

_BATCH = 500


def overdue_loop(clock: Clock, tick_s: float) -> BackgroundLoop:
    async def referral_overdue_watch(runtime: ServiceRuntime) -> None:
        while True:
            try:
                while True:
                    async with runtime.uow() as uow:
                        flagged = await flag_overdue(uow, clock(), _BATCH)
                    if flagged:
                        log.info("referrals overdue", count=flagged)
                    if flagged < _BATCH:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("overdue tick failed; will retry", exc_info=exc)
            await asyncio.sleep(tick_s)

    return referral_overdue_watch
