"""The one time format restrike stores and sends: UTC ISO-8601, microseconds, ``Z``.

Every stored time has the same fixed width (``2026-11-28T12:00:00.000000Z``; the year always has
four digits, ``0001``..``9999``), so comparing the text compares the instants, and SQL range
queries on TEXT columns are correct.
"""

from __future__ import annotations

import datetime as _dt
import time as _time


class TimeOutOfRange(ValueError):
    """A time that exists in its own zone but not in UTC: converted, it falls before year 1 or
    after 9999 (``0001-01-01T00:00:00+01:00``). A ``ValueError``, so callers that only catch
    that still refuse it cleanly; catch this one to name the range in the message."""


def now_iso() -> str:
    """The current UTC time in the stored format."""
    # isoformat, not strftime: it pads the year to four digits, and it is faster
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def to_utc(moment: _dt.datetime) -> _dt.datetime:
    """``moment`` as an aware UTC datetime (naive means UTC).

    Raises ``TimeOutOfRange`` (a ``ValueError``) with a plain message when the instant is outside
    the years 1..9999 in UTC, instead of the ``OverflowError`` of ``astimezone``.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_dt.UTC)
    try:
        return moment.astimezone(_dt.UTC)
    except OverflowError:
        raise TimeOutOfRange(
            f"{moment.isoformat()} is outside the years 1 to 9999 once converted to UTC"
        ) from None


def to_iso(moment: _dt.datetime | float) -> str:
    """A datetime (naive means UTC) or a POSIX timestamp, in the stored format.

    Raises ``TimeOutOfRange`` for a datetime outside the years 1..9999 in UTC.
    """
    if isinstance(moment, (int, float)):
        moment = _dt.datetime.fromtimestamp(moment, _dt.UTC)
    return to_utc(moment).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_iso(text: str) -> _dt.datetime:
    """Parse an ISO-8601 date or date-time into an aware UTC datetime; naive is taken as UTC.

    Raises ``ValueError`` with a plain message for text that is not such a time, and its
    subclass ``TimeOutOfRange`` for one outside the years 1..9999 in UTC.
    """
    value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return to_utc(value)


clock_ns = _time.monotonic_ns
"""The one clock for durations: nanoseconds of ``CLOCK_MONOTONIC`` (never steps back, never jumps
with the wall clock). Any two readings in any thread of any process on this machine can be
subtracted; only differences mean anything (it starts near zero at boot), so 0 stands for "no
reading" wherever a reading is stored."""
