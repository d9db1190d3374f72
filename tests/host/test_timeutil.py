"""The stored time format: fixed width at the ends of the calendar, plain errors outside it."""

from __future__ import annotations

import datetime as dt

import pytest

from restrike.host.timeutil import TimeOutOfRange, now_iso, parse_iso, to_iso, to_utc


def test_the_format_is_fixed_width_with_four_digit_years():
    assert to_iso(dt.datetime(1, 1, 1)) == "0001-01-01T00:00:00.000000Z"  # noqa: DTZ001 - naive is UTC
    assert to_iso(dt.datetime(999, 12, 31, 23, 59, 59, 5)) == "0999-12-31T23:59:59.000005Z"  # noqa: DTZ001
    assert to_iso(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)) \
        == "9999-12-31T23:59:59.999999Z"
    assert to_iso(0.0) == "1970-01-01T00:00:00.000000Z"
    assert len(now_iso()) == 27 and now_iso().endswith("Z")


def test_other_zones_are_converted_to_utc():
    moment = dt.datetime(2026, 11, 28, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert to_iso(moment) == "2026-11-28T12:00:00.000000Z"
    assert parse_iso("2026-11-28T13:00:00+01:00") == dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
    assert parse_iso("2026-11-28").tzinfo == dt.UTC


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"])
def test_a_time_outside_the_calendar_once_in_utc_is_a_plain_value_error(text):
    with pytest.raises(TimeOutOfRange, match="outside the years 1 to 9999") as err:
        parse_iso(text)
    assert isinstance(err.value, ValueError)
    moment = dt.datetime.fromisoformat(text)
    with pytest.raises(TimeOutOfRange):
        to_utc(moment)
    with pytest.raises(TimeOutOfRange):
        to_iso(moment)


def test_text_that_is_not_a_time_is_a_value_error():
    with pytest.raises(ValueError):
        parse_iso("yesterday")
