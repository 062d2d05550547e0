"""FHIR's search by date as one period: each value's stretch of time by its precision, each prefix's side
of it, several values narrowing one period, and the values refused with where and why."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from careloop_shared.errors import Invalid
from careloop_shared.fhir_dates import Period, searched_period


def at(*parts: int, tz: timezone = UTC) -> datetime:
    return datetime(*parts, tzinfo=tz)


@pytest.mark.parametrize(
    ("values", "period"),
    [
        (None, Period()),
        ([], Period()),
        (["2026"], Period(at(2026, 1, 1), at(2027, 1, 1))),
        (["eq2026-02"], Period(at(2026, 2, 1), at(2026, 3, 1))),
        (["2026-12"], Period(at(2026, 12, 1), at(2027, 1, 1))),
        (["2026-12-31"], Period(at(2026, 12, 31), at(2027, 1, 1))),
        (["ge2026-12-01"], Period(at(2026, 12, 1), None)),
        (["gt2026-12-01"], Period(at(2026, 12, 2), None)),
        (["sa2026-12-01"], Period(at(2026, 12, 2), None)),
        (["le2026-12-01"], Period(None, at(2026, 12, 2))),
        (["lt2026-12-01"], Period(None, at(2026, 12, 1))),
        (["eb2026-12-01"], Period(None, at(2026, 12, 1))),
        (["ge2026-12-01", "lt2026-12-08"], Period(at(2026, 12, 1), at(2026, 12, 8))),
        # The narrowest of what all say, whatever their order.
        (
            ["lt2026-12-08", "ge2026-11", "ge2026-12-03", "le2026-12-31"],
            Period(at(2026, 12, 3), at(2026, 12, 8)),
        ),
        # A time is a second, or as fine as its fraction; in its own offset.
        (["2026-12-01T09:30:00Z"], Period(at(2026, 12, 1, 9, 30), at(2026, 12, 1, 9, 30, 1))),
        (
            ["gt2026-12-01T09:30:00.25+01:00"],
            Period(at(2026, 12, 1, 9, 30, 0, 260000, tz=timezone(timedelta(hours=1))), None),
        ),
        (["lt2026-12-01T09:30:00.000001-05:00"], Period(None, at(2026, 12, 1, 14, 30, 0, 1))),
        # A "+" sent unencoded in a URL arrives as a space.
        (["ge2026-12-01T09:30:00 01:00"], Period(at(2026, 12, 1, 8, 30), None)),
        # The years kept, to their very ends.
        (["ge1900", "le2999"], Period(at(1900, 1, 1), at(3000, 1, 1))),
    ],
)
def test_each_value_names_a_stretch_and_its_prefix_a_side_of_it(values, period):
    assert searched_period(values) == period


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("ne2026-12-01", "prefix 'ne' is not taken"),
        ("ap2026-12-01", "prefix 'ap' is not taken"),
        ("2026-12-01T09:30:00", "should be a date"),  # a time without its offset
        ("2026-12-01T09:30Z", "should be a date"),  # without its seconds
        ("26-12-01", "should be a date"),
        ("2026-12-01T09:30:00.1234567Z", "should be a date"),  # finer than a microsecond
        ("GE2026", "should be a date"),
        ("2026-02-30", "no such day"),
        ("2026-13", "no such day"),
        ("2026-12-01T24:00:00Z", "no such day"),
        ("2026-12-01T09:30:00+25:00", "no such day"),
        ("1899-12-31", "years 1900 to 2999"),
        ("3000", "years 1900 to 2999"),
        ("9999-12-31", "years 1900 to 2999"),
        ("1900-01-01T00:30:00+01:00", "years 1900 to 2999"),  # 1899 in UTC
        ("2999-12-31T23:30:00-01:00", "years 1900 to 2999"),  # 3000 in UTC
    ],
)
def test_a_value_that_names_no_period_is_refused_where_and_why(value, why):
    with pytest.raises(Invalid) as refused:
        searched_period(["2026", value])
    [problem] = refused.value.problems
    assert problem["loc"] == ["query", "date", 1] and why in problem["msg"]
