"""FHIR's search by date (``date=ge2026-12-01&date=lt2026-12-08``) as one period of time.

A value names a stretch of time as long as its precision: ``2026`` a year, ``2026-12`` a month,
``2026-12-01`` a day, ``2026-12-01T09:30:00Z`` a second (with fractions, that fraction). A date without a
time is read in UTC; a time must carry its offset, as FHIR's dateTime does. The prefix says where the
resource's time lies against that stretch: ``eq`` (the default) within it, ``ge`` at or after its start,
``gt`` (and ``sa``) after its end, ``le`` before its end, ``lt`` (and ``eb``) before its start. Several
values must all hold, so they narrow one period. ``ne`` and ``ap`` would need more than one period, or a
guess, and are refused, as are times outside the years 1900 to 2999 (``body.in_the_years_kept``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from careloop_shared.body import LATEST_TIME, in_the_years_kept
from careloop_shared.errors import Invalid, problem

_VALUE = re.compile(
    r"(?P<prefix>[a-z]{2})?(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d{1,6})?(?P<zone>Z|[+-]\d{2}:\d{2}))?)?)?"
)
_AFTER = {"eq": "start", "ge": "start", "gt": "end", "sa": "end"}  # the period starts at the value's
_BEFORE = {"eq": "end", "le": "end", "lt": "start", "eb": "start"}  # the period ends at the value's
_YEARS = "should be a time in the years 1900 to 2999"
FORMS = "a date (2026, 2026-12, 2026-12-01) or a time with its offset (2026-12-01T09:30:00Z)"
DOCUMENTATION = (
    "When the entry was recorded: eq (the default), ge, gt, le, lt, sa or eb before "
    + FORMS
    + "; a date is read in UTC, and several values must all hold (date=ge2026-12-01&date=lt2026-12-08)."
)


@dataclass(frozen=True)
class Period:
    """From ``since`` (included) to ``until`` (not included); None: no bound on that side."""

    since: datetime | None = None
    until: datetime | None = None

    def narrowed(self, since: datetime | None, until: datetime | None) -> Period:
        return Period(
            max((t for t in (self.since, since) if t is not None), default=None),
            min((t for t in (self.until, until) if t is not None), default=None),
        )


def searched_period(values: Sequence[str] | None, name: str = "date") -> Period:
    """The period the search's ``name`` values leave; 422 naming each value that is not one."""
    period, problems = Period(), []
    for i, value in enumerate(values or ()):
        try:
            prefix, start, end = _stretch(value.replace(" ", "+"))  # a "+" sent unencoded arrives as a space
        except ValueError as exc:
            problems.append(problem(["query", name, i], "invalid_date", str(exc)))
            continue
        chosen = {"start": start, "end": end}
        period = period.narrowed(
            chosen[_AFTER[prefix]] if prefix in _AFTER else None,
            chosen[_BEFORE[prefix]] if prefix in _BEFORE else None,
        )
    if problems:
        raise Invalid(problems)
    return period


def _stretch(value: str) -> tuple[str, datetime, datetime]:
    """The value's prefix, and the start and end of the time it names."""
    found = _VALUE.fullmatch(value)
    if found is None:
        raise ValueError(f"should be {FORMS}, after a prefix if any")
    prefix = found["prefix"] or "eq"
    if prefix not in _AFTER and prefix not in _BEFORE:
        raise ValueError(f"the prefix {prefix!r} is not taken here: eq, ge, gt, le, lt, sa or eb")
    year, month, day = int(found["year"]), found["month"], found["day"]
    if not 1900 <= year <= 2999:
        raise ValueError(_YEARS)
    try:
        if found["time"] is not None:
            fraction = found["fraction"] or ""
            start = datetime.fromisoformat(f"{year:04d}-{month}-{day}T{found['time']}{fraction}")
            offset = "+00:00" if found["zone"] == "Z" else found["zone"]
            start = start.replace(tzinfo=datetime.fromisoformat(f"2000-01-01T00:00:00{offset}").tzinfo)
            end = start + timedelta(microseconds=10 ** (7 - len(fraction)) if fraction else 1_000_000)
        elif day is not None:
            start = datetime(year, int(month), int(day), tzinfo=UTC)
            end = start + timedelta(days=1)
        elif month is not None:
            start = datetime(year, int(month), 1, tzinfo=UTC)
            end = datetime(year + int(month) // 12, int(month) % 12 + 1, 1, tzinfo=UTC)
        else:
            start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"names no such day or time: should be {FORMS}") from None
    if not (in_the_years_kept(start) and end <= LATEST_TIME):
        raise ValueError(_YEARS)
    return prefix, start, end
