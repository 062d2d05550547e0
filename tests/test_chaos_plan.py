"""The chaos run's fault plan keeps its times: a server's fault that waits for the one before it on the
same server holds back nothing else (tests/chaos/chaos.py, ``faults``)."""

import argparse
import asyncio
import random
import time

from tests.chaos.chaos import faults


class Fleet:
    """Faults that take as long as told, each noted with when it began."""

    def __init__(self) -> None:
        self.began: list[tuple[str, str, float]] = []
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    async def kill(self, service: str, restart_after_s: float) -> None:
        self.began.append(("kill", service, self.now()))
        await asyncio.sleep(0.05)

    async def pause(self, service: str, seconds: float) -> None:
        self.began.append(("pause", service, self.now()))
        await asyncio.sleep(seconds)

    async def restart_infra(self, server: str) -> None:
        self.began.append(("restart", server, self.now()))
        await asyncio.sleep(0.05)


async def test_a_database_restart_waits_for_the_crash_before_it_and_nothing_else_does():
    fleet = Fleet()

    async def crash() -> None:  # the server and every service back only after 1.5 s
        fleet.began.append(("crash", "postgres", fleet.now()))
        await asyncio.sleep(1.5)

    async def inject() -> None:
        fleet.began.append(("poison", "all", fleet.now()))

    args = argparse.Namespace(
        kills=5, broker_restarts=0, database_restarts=1, database_crashes=1, pause_s=0.1
    )
    span = 2.0  # the crash at 0.6 s, the restart due at 0.8 s, poison at 1.0 s, the pause at 1.1 s
    await faults(args, fleet, span, random.Random(7), inject, crash)  # type: ignore[arg-type]
    began = {kind: at for kind, _, at in fleet.began if kind != "kill"}
    assert began["restart"] >= began["crash"] + 1.5  # one fault of a server at a time
    # On time, not held back until the crash is over (2.1 s): poison due at 1.0 s, the pause at 1.1 s, and
    # the kills due meanwhile (two of five fall in 0.8-1.5 s).
    crash_over = began["crash"] + 1.5
    assert began["poison"] < crash_over - 0.1 and began["pause"] < crash_over - 0.1
    kills = [at for kind, _, at in fleet.began if kind == "kill"]
    assert len(kills) == 5 and sum(began["crash"] < at < crash_over - 0.1 for at in kills) >= 2
