"""The outbox relay's retries after a failure: never waiting longer than its poll interval."""

from __future__ import annotations

import asyncio

from careloop_shared.outbox import OutboxRelay


async def test_a_relay_failing_for_long_retries_at_least_once_a_poll_interval(monkeypatch):
    """A database down for a while, then back: the relay's waits grow from 0.2 s and stop at its poll
    interval, so it is publishing again within one interval of the database answering."""
    relay = OutboxRelay("postgresql://unused", "127.0.0.1:1", client_id="test", poll_interval_s=1.0)
    waits: list[float] = []
    attempts = 0

    async def failing_until_the_twelfth() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 12:
            raise OSError("connection refused")
        relay.stop()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(relay, "_run_once", failing_until_the_twelfth)
    monkeypatch.setattr(relay, "_sleep", sleep)
    await asyncio.wait_for(relay.run(), 5)

    assert attempts == 12
    assert waits == [0.2, 0.4, 0.8] + [1.0] * 8


async def test_a_relay_polling_faster_than_the_first_backoff_retries_at_its_poll_interval(monkeypatch):
    relay = OutboxRelay("postgresql://unused", "127.0.0.1:1", client_id="test", poll_interval_s=0.1)
    waits: list[float] = []

    async def failing() -> None:
        if len(waits) == 3:
            relay.stop()
        raise OSError("connection refused")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(relay, "_run_once", failing)
    monkeypatch.setattr(relay, "_sleep", sleep)
    await asyncio.wait_for(relay.run(), 5)

    assert waits == [0.1, 0.1, 0.1, 0.1]
