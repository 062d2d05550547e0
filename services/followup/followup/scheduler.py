"""The background loop that turns due follow-ups into FollowUpDue events.

It keeps no timer in memory: each tick asks the database what is due by the clock, so whatever fell
due while the service was down fires on the first tick after it starts, once.
"""

from __future__ import annotations

import asyncio

from careloop_shared.logging import get_logger
from careloop_shared.runtime import BackgroundLoop, ServiceRuntime
from followup.domain.schedule import Clock
from followup.handlers import fire_due_follow_ups

log = get_logger(__name__)


def scheduler_loop(clock: Clock, tick_s: float) -> BackgroundLoop:
    async def follow_up_scheduler(runtime: ServiceRuntime) -> None:
        while True:
            try:
                while True:
                    async with runtime.uow() as uow:
                        fired = await fire_due_follow_ups(uow, clock())
                    if fired:
                        log.info("follow-ups due", count=fired)
                    if fired < 500:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduler tick failed; will retry", exc_info=exc)
            await asyncio.sleep(tick_s)

    return follow_up_scheduler
