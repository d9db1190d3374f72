"""The one time format restrike stores and sends: UTC ISO-8601, microseconds, ``Z``.

Every stored time has the same fixed width (``2026-11-28T12:00:00.000000Z``), so comparing the
text compares the instants, and SQL range queries on TEXT columns are correct.
"""

from __future__ import annotations

import datetime as _dt

_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_iso() -> str:
    """The current UTC time in the stored format."""
    return _dt.datetime.now(_dt.UTC).strftime(_FMT)


def to_iso(moment: _dt.datetime | float) -> str:
    """A datetime (naive means UTC) or a POSIX timestamp, in the stored format."""
    if isinstance(moment, (int, float)):
        moment = _dt.datetime.fromtimestamp(moment, _dt.UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.astimezone(_dt.UTC).strftime(_FMT)


def parse_iso(text: str) -> _dt.datetime:
    """Parse an ISO-8601 date or date-time; a naive one is taken as UTC. Raises ValueError."""
    value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.astimezone(_dt.UTC)
