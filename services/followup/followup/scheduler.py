"""The background loop that turns due follow-ups into FollowUpDue and late ones into FollowUpOverdue.

It keeps no timer in memory: each tick asks the database what is due by the clock, so whatever fell
due while the service was down fires on the first tick after it starts, once.
"""

from __future__ import annotations

import asyncio

from careloop_shared.logging import get_logger
from careloop_shared.runtime import BackgroundLoop, ServiceRuntime
from followup.domain.schedule import Clock
from followup.handlers import fire_due_follow_ups, fire_overdue_follow_ups

log = get_logger(__name__)

BATCH = 500


def scheduler_loop(clock: Clock, tick_s: float) -> BackgroundLoop:
    async def follow_up_scheduler(runtime: ServiceRuntime) -> None:
        while True:
            try:
                while True:
                    async with runtime.uow() as uow:
                        now = clock()
                        due = await fire_due_follow_ups(uow, now, BATCH)
                        overdue = await fire_overdue_follow_ups(uow, now, BATCH)
                    if due or overdue:
                        log.info("follow-ups fell due", due=due, overdue=overdue)
                    if due < BATCH and overdue < BATCH:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduler tick failed; will retry", exc_info=exc)
            await asyncio.sleep(tick_s)

    return follow_up_scheduler
