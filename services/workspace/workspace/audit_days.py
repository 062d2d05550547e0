"""The days an audit list is read for: from the first day to the last, both included, in the workspace's
time zone, as the services' ``since`` and ``until``."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated

from fastapi import Query

# A day as a date field sends it (YYYY-MM-DD), or nothing; a day that does not exist is said in the form.
DayText = Annotated[str, Query(max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")]
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 30)  # the services keep times of these years


@dataclass
class Days:  # no postponed annotations in this module: FastAPI reads these fields' types from here
    """The entries of some days only: from the first day to the last, both included, in the workspace's
    time zone; either may be left out."""

    first_day: DayText = ""
    last_day: DayText = ""

    def chosen(self) -> tuple[date | None, date | None]:
        """The two days (None where left out); ``BadDays`` saying what is wrong with them."""
        problems: dict[str, str] = {}
        days: dict[str, date | None] = {}
        for name in ("first_day", "last_day"):
            text = getattr(self, name)
            try:
                day = days[name] = date.fromisoformat(text) if text else None
            except ValueError:
                problems[name] = "There is no such day."
                continue
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                problems[name] = "Give a day in the years 1900 to 2999."
        first, last = days.get("first_day"), days.get("last_day")
        if not problems and first is not None and last is not None and first > last:
            problems["last_day"] = "The last day is before the first."
        if problems:
            raise BadDays(problems)
        return first, last

    def params(self, zone: tzinfo) -> dict[str, str]:
        """The services' ``since`` and ``until`` for these days: from the first day's midnight there to the
        midnight after the last (``BadDays``)."""
        first, last = self.chosen()
        bounds = {"since": first, "until": last + timedelta(days=1) if last else None}
        return {k: datetime.combine(d, time(), zone).isoformat() for k, d in bounds.items() if d is not None}

    def said(self) -> str:
        """The days in words, for a heading: "from 1 Dec 2026 to 7 Dec 2026", "on 1 Dec 2026"."""
        first, last = (f"{d.day} {d:%b %Y}" if d else None for d in self.chosen())
        if first and last:
            return f"on {first}" if first == last else f"from {first} to {last}"
        return f"from {first}" if first else f"up to {last}"

    def query(self) -> dict[str, str]:
        """The days as a URL carries them on (those given)."""
        return {name: getattr(self, name) for name in ("first_day", "last_day") if getattr(self, name)}


class BadDays(Exception):
    """The days asked for are not days the logs can be read for: ``problems``, by field."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(problems)
        self.problems = problems
