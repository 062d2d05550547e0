"""Refusals a use case raises, each answered once, the same way, by ``app.create_app``.

A handler raises ``NotFound``, ``Conflict``, ``Forbidden`` or ``Invalid`` (or a domain exception
derived from one); the transaction rolls back, so nothing is stored or emitted, and the caller gets
404, 409, 403 or 422. Every message is written for logs and clients: it says what was refused and
why, and never quotes a value from the input, which may be patient data.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar


class SafeMessageError(Exception):
    """Base for exceptions whose message is written for logs and holds no patient data."""


class Refusal(SafeMessageError):
    """A request the service understood and will not carry out; ``extra`` fields join the answer's body
    to help the caller recover (an existing id, the current version, the missing permission)."""

    status_code: ClassVar[int] = 400
    # The event a consumer's handler refuses, where it names one (``consumer.refusing``).
    event_id: uuid.UUID | None = None

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), **self.extra}


class NotFound(Refusal):
    """No such thing that the caller may see (another agency's looks exactly the same)."""

    status_code = 404


class Forbidden(Refusal):
    """The caller may see this but not do that to it."""

    status_code = 403


class Gone(Refusal):
    """What was asked for existed and was erased on purpose: say so, rather than not found."""

    status_code = 410


class UnsupportedBody(Refusal):
    """A body of a kind the route does not take."""

    status_code = 415


class Conflict(Refusal):
    """Not possible in the present state."""

    status_code = 409


Location = Sequence[str | int]


def problem(loc: Location, type_: str, msg: str) -> dict[str, Any]:
    """One thing wrong with the input: where (as in a 422 from request validation), what kind, why."""
    return {"loc": list(loc), "type": type_, "msg": msg}


class Invalid(Refusal):
    """Input that is well-formed but breaks a rule; each problem names where and why."""

    status_code = 422

    def __init__(self, problems: Sequence[dict[str, Any]]) -> None:
        self.problems = [problem(p["loc"], p.get("type", "invalid_value"), p["msg"]) for p in problems]
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in self.problems))

    @classmethod
    def at(cls, loc: Location, type_: str, msg: str) -> Invalid:
        return cls([problem(loc, type_, msg)])

    def body(self) -> dict[str, Any]:
        return {"detail": self.problems}
