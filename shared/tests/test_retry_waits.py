"""Retries after a server went away: the outbox relay, a consumer and a starting service wait at most
a second between tries, so a database back is used within one (with a 5 s cap, careplan resumed
2.8-3.0 s after its database answered again after eight seconds down)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from careloop_shared import consumer, runtime
from careloop_shared.consumer import TransientFailure
from careloop_shared.events import Event
from careloop_shared.outbox import OutboxRelay
from careloop_shared.testing.batches import consumer_of, record_of


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


class Pinged(Event):
    type: ClassVar[str] = "test.retries.pinged.v1"
    source: ClassVar[str] = "/test"


class DatabaseAway:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        raise ConnectionRefusedError("connection refused")
        yield


async def test_a_consumer_whose_database_is_away_tries_its_batch_again_at_least_once_a_second(monkeypatch):
    async def handle(*_: Any) -> None:
        raise AssertionError("no handler runs without its database")

    events = consumer_of(DatabaseAway(), {Pinged: handle}, backoff_s=0.2)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(consumer.asyncio, "sleep", sleep)
    batch = [record_of(Pinged(patient_id=uuid.uuid4(), agency_id="agency-a"), 0)]
    for _ in range(8):  # each failed try hands the batch back to be delivered again
        with pytest.raises(TransientFailure):
            await events.process(batch)

    assert waits == [0.4, 0.8] + [1.0] * 6


async def test_a_service_starting_while_its_database_is_down_tries_again_at_least_once_a_second(monkeypatch):
    """Started while the database restarts: ready within about a second of it answering (with waits
    doubling to 5 s, careplan was ready 3.5-3.6 s after its database answered, three runs)."""
    waits: list[float] = []
    tries = 0

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def up_at_the_tenth_try() -> str:
        nonlocal tries
        tries += 1
        if tries < 10:
            raise ConnectionRefusedError("connection refused")
        return "up"

    monkeypatch.setattr(runtime.asyncio, "sleep", sleep)
    assert (
        await runtime.until_reachable("the database", up_at_the_tenth_try, deadline=time.monotonic() + 60)
        == "up"
    )
    assert waits == [0.5] + [1.0] * 8
