"""In-memory stand-ins for unit tests of handlers: a unit of work, a clock, a received event.

A service's tests pair these with a fake of its store (``tests/fakes.py``), so a handler's decisions
are tested in milliseconds with no broker or database; ``assert_fake_matches`` keeps such a fake's
methods in step with the real store's.
"""

from __future__ import annotations

import copy
import inspect
import uuid
from datetime import datetime, timedelta
from typing import Any, TypeVar

from careloop_shared.db import Store
from careloop_shared.events import Event, ReceivedEvent, new_message
from careloop_shared.outbox import UnitOfWork

S = TypeVar("S")
E = TypeVar("E", bound=Event)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class FakeUnitOfWork(UnitOfWork[S]):
    """A unit of work over an in-memory store; what the handler emits stays in ``pending``."""

    def events(self, kind: type[E]) -> list[E]:
        return [m.event for m in self.pending if isinstance(m.event, kind)]


async def run(
    handler: Any, context: Any, store: S, message: Any, *, correlation_id: uuid.UUID | None = None
) -> tuple[Any, FakeUnitOfWork[S]]:
    """Call ``handler(context, uow, message)`` as one transaction would: if it raises, the store is
    left as it was and nothing is emitted. Returns the handler's result and the unit of work."""
    saved = copy.deepcopy(store.__dict__)
    uow = FakeUnitOfWork(store, correlation_id)
    try:
        result = await handler(context, uow, message)
    except BaseException:
        store.__dict__.clear()
        store.__dict__.update(saved)
        raise
    return result, uow


async def run_step(step: Any, context: Any, store: S) -> tuple[Any, FakeUnitOfWork[S]]:
    """``run`` for a periodic or startup step, which takes no message: ``step(context, uow)``."""
    return await run(lambda ctx, uow, _: step(ctx, uow), context, store, None)


def received(
    event: Event,
    *,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> ReceivedEvent:
    """The event as a consumer would receive it from Kafka."""
    message = new_message(
        event, event_id=event_id, time=time, correlation_id=correlation_id, causation_id=causation_id
    )
    return ReceivedEvent(message.envelope, event, topic=event.type, partition=0, offset=0, body=event.body())


def assert_fake_matches(real: type, fake: type) -> None:
    """Every public method of the real store exists on the fake, with the same parameters."""
    for name, member in inspect.getmembers(real, inspect.isfunction):
        if name.startswith("_") or hasattr(Store, name):  # the kernel's own plumbing
            continue
        assert hasattr(fake, name), f"{fake.__name__} lacks {name}"
        want = list(inspect.signature(member).parameters)
        got = list(inspect.signature(getattr(fake, name)).parameters)
        assert got == want, f"{fake.__name__}.{name}{got} differs from {real.__name__}.{name}{want}"
