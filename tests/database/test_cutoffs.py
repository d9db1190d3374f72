"""The day boundary of every cutoff that moves or deletes events: the day before, the day of and
the day after, at the storage layer to the microsecond (a fixed ``now``) and through the real
commands (the real clock, with an hour's margin either side of the boundary).

A cutoff of ``N`` days takes what is *older* than exactly ``N`` days: an event ``N`` days old
to the microsecond stays. Deleting or moving a day too early or too late fails here.
"""

from __future__ import annotations

import datetime as dt

import pytest

from restrike.host.timeutil import to_iso
from restrike.plugins.plugin_database.archive import (
    archive_old_events,
    cleanup_old_archive_data,
    restore_from_archive,
)
from restrike.plugins.plugin_database.writer import transaction
from tests.database.archive_worker import NOW, add_event, rows
from tests.database.conftest import call

US = dt.timedelta(microseconds=1)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def ages(days_old: int) -> dict[str, dt.timedelta]:
    """An event's age by name, around the boundary of ``days_old`` days."""
    boundary = dt.timedelta(days=days_old)
    return {"day before": boundary + DAY, "just older": boundary + US, "exactly": boundary,
            "just younger": boundary - US, "day after": boundary - DAY}


TAKEN = {"day before", "just older"}


def add_aged(conn, ages_by_name: dict, now: dt.datetime) -> dict[str, int]:
    conn.execute("BEGIN")
    ids = {name: add_event(conn, to_iso(now - age)) for name, age in ages_by_name.items()}
    conn.execute("COMMIT")
    return ids


@pytest.mark.parametrize("days_old", [1, 7, 30, 365])
def test_archive_takes_exactly_what_is_older_than_the_cutoff(conn, days_old):
    ids = add_aged(conn, ages(days_old), NOW)
    assert archive_old_events(conn, days_old, now=NOW) == len(TAKEN)
    assert set(rows(conn, "pss_events_v2_archive")) == {ids[name] for name in TAKEN}
    assert set(rows(conn, "pss_events_v2")) == {ids[n] for n in ids if n not in TAKEN}


@pytest.mark.parametrize("days_old", [1, 7, 30, 365])
def test_cleanup_deletes_exactly_what_is_older_than_the_cutoff(conn, days_old):
    ids = add_aged(conn, ages(days_old), NOW)
    archive_old_events(conn, 0, now=NOW + DAY)  # everything in the archive first
    assert cleanup_old_archive_data(conn, days_old, now=NOW) == len(TAKEN)
    left = {ids[n] for n in ids if n not in TAKEN}
    assert set(rows(conn, "pss_events_v2_archive")) == left
    assert {key[0] for key in rows(conn, "pss_event_details_archive")} == left


def test_restore_by_dates_takes_the_first_and_last_day_whole_and_nothing_beside(conn):
    conn.execute("BEGIN")
    ids = {name: add_event(conn, at) for name, at in {
        "day before": "2026-09-30T23:59:59.999999Z",
        "first day": "2026-10-01T00:00:00.000000Z",
        "last day": "2026-10-02T23:59:59.999999Z",
        "day after": "2026-10-03T00:00:00.000000Z"}.items()}
    conn.execute("COMMIT")
    archive_old_events(conn, 0, now=NOW)
    assert restore_from_archive(conn, "2026-10-01", "2026-10-02") == 2
    assert set(rows(conn, "pss_events_v2")) == {ids["first day"], ids["last day"]}
    assert set(rows(conn, "pss_events_v2_archive")) == {ids["day before"], ids["day after"]}


def around_now(days_old: int) -> dict[str, dt.timedelta]:
    """Ages for the real clock: an hour either side of the boundary is the day of it (the
    command runs well within that hour of the events being written)."""
    boundary = dt.timedelta(days=days_old)
    return {"day before": boundary + DAY, "just older": boundary + HOUR,
            "just younger": boundary - HOUR, "day after": boundary - DAY}


def add_now(app, ages_by_name: dict) -> dict[str, int]:
    def insert(conn):
        now = dt.datetime.now(dt.UTC)
        with transaction(conn):
            return {name: add_event(conn, to_iso(now - age)) for name, age in ages_by_name.items()}

    return app.extensions["database"].writer.run(insert, timeout=10)


def table_ids(app, table: str) -> set[int]:
    with app.extensions["database"].pool.connection() as conn:
        return {row[0] for row in conn.execute(f"SELECT id FROM {table}")}


@pytest.mark.parametrize("days_old", [2, 30])  # (every event at least a day old)
def test_the_archive_command_cuts_at_the_day_boundary(db_app, days_old):
    ids = add_now(db_app, around_now(days_old))
    assert call(db_app, "archive_old_events", days_old=days_old) == len(TAKEN)
    assert table_ids(db_app, "pss_events_v2_archive") == {ids[name] for name in TAKEN}


@pytest.mark.parametrize("days_old", [2, 30])
def test_the_cleanup_command_deletes_at_the_day_boundary(db_app, days_old):
    ids = add_now(db_app, around_now(days_old))
    call(db_app, "archive_old_events", days_old=0)
    assert call(db_app, "cleanup_old_archive_data", days_old=days_old) == len(TAKEN)
    assert table_ids(db_app, "pss_events_v2_archive") == {
        ids[n] for n in ids if n not in TAKEN}


def test_the_restore_command_takes_whole_days(db_app):
    ids = add_now(db_app, {"three days": 3 * DAY, "two days": 2 * DAY, "one day": DAY})
    call(db_app, "archive_old_events", days_old=0)
    with db_app.extensions["database"].pool.connection() as conn:
        created = dict(conn.execute("SELECT id, created_at FROM pss_events_v2_archive"))
    day = created[ids["two days"]][:10]  # its calendar day (UTC), as an operator types it
    assert call(db_app, "restore_from_archive", start_date=day, end_date=day) == 1
    assert table_ids(db_app, "pss_events_v2") == {ids["two days"]}
