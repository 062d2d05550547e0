"""Schemathesis hooks for `make fuzz` (``SCHEMATHESIS_HOOKS=tests.fuzz.hooks``): times as clients send them.

Schemathesis' own ``date-time`` values are well-formed RFC 3339 times of ordinary years. Two defects
lay outside them (found by the workspace walk): a time without an offset beside one with an offset (a
500 where a service compared the two), and the first and last instants of the calendar (asyncpg keeps
0001-01-01T00:00Z and 9999-12-31T23:59:59.999999Z as -infinity and infinity and reads them back without
an offset). So every ``date-time`` is drawn from the calendar's edges, times without an offset and
times at the widest offsets, beside ordinary ones; a service answers each with 2xx or a 4xx.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

EDGES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:00:00-02:00",
    "9999-12-31T23:59:59",
    "1899-12-31T23:59:59Z",
    "1900-01-01T00:00:00Z",
    "2999-12-31T23:59:59+00:00",
    "3000-01-01T00:00:00Z",
    "2026-12-06T10:00:00",
    "2026-12-06T10:00:00.123456789Z",
]
ZONES = st.sampled_from(
    [
        None,
        UTC,
        timezone(timedelta(hours=14)),
        timezone(-timedelta(hours=12)),
        timezone(timedelta(hours=5, minutes=30)),
    ]
)
TIMES = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    ZONES,
)

schemathesis.openapi.format("date-time", st.one_of(st.sampled_from(EDGES), TIMES))
