"""structlog JSON logs that never carry patient data.

Three guards: known PHI keys are dropped from every event dict; tracebacks are rendered without local
variables; and an exception's message is kept only for exception types whose messages are known to be
free of input values (a pydantic ValidationError keeps its locations and error types, nothing else).
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import MutableMapping
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError

from careloop_shared.errors import SafeMessageError

PHI_KEYS = frozenset(
    {
        "name",
        "given_name",
        "family_name",
        "first_name",
        "last_name",
        "full_name",
        "birth_date",
        "birthdate",
        "dob",
        "phone",
        "telephone",
        "email",
        "address",
        "street",
        "postal_code",
        "contact",
        "answers",
        "body",
        "payload",
        "input",
    }
)


# Schema and constraint errors name tables, columns and constraints, never the values involved.
_SAFE_MESSAGE_TYPES: tuple[type[BaseException], ...] = (
    SafeMessageError,
    TimeoutError,
    OSError,
    asyncpg.exceptions.SyntaxOrAccessError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.PostgresConnectionError,
)
_SAFE_MODULE_PREFIXES = ("aiokafka", "kafka", "asyncio")


def safe_exception_message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['type']}" for e in exc.errors()]
        return f"{exc.error_count()} validation error(s): " + "; ".join(parts)
    if isinstance(exc, _SAFE_MESSAGE_TYPES) or type(exc).__module__.startswith(_SAFE_MODULE_PREFIXES):
        return str(exc)
    return "<message withheld: may contain input values>"


def _frames(exc: BaseException) -> list[dict[str, Any]]:
    return [
        {"file": f.filename, "line": f.lineno, "function": f.name}
        for f in traceback.extract_tb(exc.__traceback__)
    ]


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Type, PHI-safe message and frames (no locals, no source values) of an exception chain."""
    chain: list[dict[str, Any]] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 5:
        chain.append(
            {
                "type": f"{type(current).__module__}.{type(current).__qualname__}",
                "message": safe_exception_message(current),
                "frames": _frames(current),
            }
        )
        current = current.__cause__ or current.__context__
    return {"exception": chain}


def _scrub_phi(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in PHI_KEYS.intersection(event_dict):
        event_dict[key] = "<redacted>"
    return event_dict


def _render_exception(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        exc = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
        if exc is not None:
            event_dict["error"] = describe_exception(exc)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _scrub_phi,
        _render_exception,
    ]


class Repeats(logging.Filter):
    """Lets one record of each message through per ``window_s`` seconds and drops its repeats; the next
    one let through says how many were dropped. aiokafka logs each failed reconnect to a broker that is
    down, thousands of lines a minute per service: one a window says as much."""

    def __init__(self, prefix: str, window_s: float = 10.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.prefix = prefix  # the loggers it watches: a name and its children
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        since, dropped = self._seen.get(key, (-float("inf"), 0))
        if now - since < self.window_s:
            self._seen[key] = (since, dropped + 1)
            return False
        if len(self._seen) > 1000:  # message texts with values in them: keep the table small
            self._seen.clear()
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} more like it in the last {self.window_s:.0f} s)"
        return True


class _JsonLinesHandler(logging.StreamHandler[Any]):
    """The handler configure_logging puts on the root logger: stdlib records through its formatter,
    careloop's own lines (rendered already) straight to its stream."""

    def write_line(self, line: str) -> None:
        self.acquire()
        try:
            self.stream.write(line + "\n")
            self.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream: the line is lost, as stdlib's handler loses it
        finally:
            self.release()


class _LineWriter:
    """structlog's logger for careloop's own events. Through stdlib logging, each line built two
    LogRecords (the logger's, and ProcessorFormatter's copy of it) to write the same text; this writes
    the rendered line to the root logger's handler itself. The level and the handlers are the stdlib
    logger's of that name, looked up per line, so configuring logging again (tests do) applies to
    loggers made before; any other handler on the root logger (pytest's caplog) gets a record."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str | None) -> None:
        self.name = name or "careloop"  # the logger's name on the line (``add_logger_name``)
        self._logger = logging.getLogger(self.name)

    def _write(self, level: int, line: str) -> None:
        if not self._logger.isEnabledFor(level):
            return
        record = None
        for handler in logging.getLogger().handlers:
            if isinstance(handler, _JsonLinesHandler):
                handler.write_line(line)
            elif level >= handler.level:
                if record is None:
                    record = self._logger.makeRecord(self.name, level, "(structlog)", 0, line, (), None)
                handler.handle(record)

    def debug(self, line: str) -> None:
        self._write(logging.DEBUG, line)

    def info(self, line: str) -> None:
        self._write(logging.INFO, line)

    def warning(self, line: str) -> None:
        self._write(logging.WARNING, line)

    def error(self, line: str) -> None:
        self._write(logging.ERROR, line)

    def critical(self, line: str) -> None:
        self._write(logging.CRITICAL, line)

    exception = error
    fatal = critical


def configure_logging(service: str, level: str = "INFO", stream: Any = None) -> None:
    """JSON lines on stderr for structlog and for every stdlib logger (uvicorn, faststream, aiokafka)."""
    threshold = logging.getLevelName(level.upper())
    if not isinstance(threshold, int):
        raise ValueError(f"unknown log level {level!r}: one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    shared = _shared_processors()
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer()],
        logger_factory=lambda name=None, *_: _LineWriter(name),
        # Every level goes through the processors (structlog.testing.capture_logs sees them all); the
        # writer drops what the stdlib logger of that name would not log.
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=True,
    )
    handler = _JsonLinesHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(threshold)
    # httpx logs every call at INFO with its whole URL: the ids and query values in it (a postal code
    # searched for) are what the access log leaves out by naming route templates only.
    for noisy in ("aiokafka", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # A filter of the handler, not of the logger: aiokafka logs from child loggers (aiokafka.conn, ...).
    handler.addFilter(Repeats("aiokafka"))
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
