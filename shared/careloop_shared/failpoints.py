"""Named crash points for fault-injection tests.

``CARELOOP_FAILPOINTS=consumer.after_db_commit`` makes the process exit abruptly when it reaches that
point, the way a kill -9 would, so tests can prove that a crash there loses and doubles nothing.
"""

from __future__ import annotations

import os

EXIT_CODE = 97


def _armed() -> frozenset[str]:
    return frozenset(p.strip() for p in os.environ.get("CARELOOP_FAILPOINTS", "").split(",") if p)


_ARMED = _armed()


def failpoint(name: str) -> None:
    if name in _ARMED:
        os._exit(EXIT_CODE)
