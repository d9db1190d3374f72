"""Archival on real SQLite files with the real migrations: counts, contents, ranges, atomicity."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import sqlite3
from types import SimpleNamespace

import pytest

from restrike.host.commands import CommandRegistry
from restrike.host.errors import Conflict, InvalidArgument
from restrike.host.jobs import Jobs
from restrike.host.timeutil import to_iso
from restrike.plugins.plugin_database import archive
from restrike.plugins.plugin_database.archive import (
    ArchiveSchemaError,
    AutoArchiver,
    archive_old_events,
    cleanup_old_archive_data,
    get_archive_statistics,
    optimize_archive_tables,
    restore_from_archive,
)
from restrike.plugins.plugin_database.archive_commands import commands as archive_commands
from restrike.plugins.plugin_database.running import EXTENSION
from restrike.plugins.plugin_database.service import DatabaseService
from tests.conftest import wait_for
from tests.database import archive_worker as helpers
from tests.database.archive_worker import NOW, add_event, rows
from tests.database.conftest import call

TABLES = ("pss_events_v2", "pss_event_details",
          "pss_events_v2_archive", "pss_event_details_archive")


def days_ago(days: float) -> str:
    return to_iso(NOW - dt.timedelta(days=days))


def snapshot(conn: sqlite3.Connection) -> str:
    """A digest of every row of the four event tables (equal digests: nothing changed)."""
    digest = hashlib.sha256()
    for table in TABLES:
        for key, record in sorted(rows(conn, table).items()):
            digest.update(repr((table, key, sorted(record.items()))).encode())
    return digest.hexdigest()


@pytest.fixture
def populated(conn):
    """Events 40, 35, 31, 29 and 1 days old, with details (one without any)."""
    ids = {}
    conn.execute("BEGIN")
    ids[40] = add_event(conn, days_ago(40), {"athlete": 1, "points": 3, "note": "x"})
    ids[35] = add_event(conn, days_ago(35), {})
    ids[31] = add_event(conn, days_ago(31), {"athlete": 2, "ratio": 0.5, "flag": True})
    ids[29] = add_event(conn, days_ago(29))
    ids[1] = add_event(conn, days_ago(1))
    conn.execute("COMMIT")
    return ids


def test_archive_moves_old_events_with_their_details_same_ids_and_values(conn, populated):
    before_events = rows(conn, "pss_events_v2")
    before_details = rows(conn, "pss_event_details")
    old = {populated[40], populated[35], populated[31]}

    moved = archive_old_events(conn, 30, now=NOW)

    assert moved == 3
    assert rows(conn, "pss_events_v2_archive") == {i: before_events[i] for i in old}
    assert rows(conn, "pss_event_details_archive") == {
        k: v for k, v in before_details.items() if k[0] in old
    }
    assert rows(conn, "pss_events_v2") == {
        i: v for i, v in before_events.items() if i not in old
    }
    assert rows(conn, "pss_event_details") == {
        k: v for k, v in before_details.items() if k[0] not in old
    }
    assert len(rows(conn, "pss_event_details_archive")) == 6
    assert not conn.in_transaction


def test_chunks_move_by_id_range_or_by_id_list_with_the_same_result(conn):
    # Events 1..5, the second recent: the chunk (1, 3) has a row between its ids that stays,
    # so it moves by list; the chunk (4, 5) is every row of its range, so it moves by range.
    conn.execute("BEGIN")
    ids = [add_event(conn, days_ago(age), {"athlete": 1, "n": i})
           for i, age in enumerate((40, 1, 39, 38, 37))]
    conn.execute("COMMIT")
    before = {t: rows(conn, t) for t in ("pss_events_v2", "pss_event_details")}
    old = {ids[0], ids[2], ids[3], ids[4]}
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        assert archive_old_events(conn, 30, now=NOW, chunk=2) == 4
    finally:
        conn.set_trace_callback(None)
    moves = [s for s in statements if s.startswith('DELETE FROM "pss_events_v2"')]
    assert len(moves) == 2 and "IN (SELECT" in moves[0] and "BETWEEN" in moves[1], moves
    assert rows(conn, "pss_events_v2_archive") == {
        i: v for i, v in before["pss_events_v2"].items() if i in old}
    assert rows(conn, "pss_event_details_archive") == {
        k: v for k, v in before["pss_event_details"].items() if k[0] in old}
    assert set(rows(conn, "pss_events_v2")) == {ids[1]}
    assert {k[0] for k in rows(conn, "pss_event_details")} == {ids[1]}

    assert restore_from_archive(conn, "2000-01-01", "2100-01-01", chunk=3) == 4
    assert rows(conn, "pss_events_v2") == before["pss_events_v2"]
    assert rows(conn, "pss_event_details") == before["pss_event_details"]
    assert not rows(conn, "pss_events_v2_archive") and not rows(conn, "pss_event_details_archive")


def test_archive_cutoff_is_strict_and_zero_days_takes_everything_before_now(conn):
    conn.execute("BEGIN")
    at_cutoff = add_event(conn, days_ago(30))
    just_older = add_event(conn, to_iso(NOW - dt.timedelta(days=30, microseconds=1)))
    conn.execute("COMMIT")
    assert archive_old_events(conn, 30, now=NOW) == 1
    assert set(rows(conn, "pss_events_v2_archive")) == {just_older}
    assert set(rows(conn, "pss_events_v2")) == {at_cutoff}
    assert archive_old_events(conn, 0, now=NOW) == 1
    assert rows(conn, "pss_events_v2") == {}
    assert archive_old_events(conn, 0, now=NOW) == 0


def test_archive_reports_progress_between_chunks(conn):
    conn.execute("BEGIN")
    for i in range(10):
        add_event(conn, days_ago(50 + i))
    conn.execute("COMMIT")
    calls = []
    assert archive_old_events(conn, 30, now=NOW, chunk=3,
                              progress=lambda *a: calls.append(a)) == 10
    assert calls == [("archive_old_events", done, 10) for done in (0, 3, 6, 9, 10)]
    assert len(rows(conn, "pss_event_details_archive")) == 20


def test_a_failing_progress_callback_does_not_undo_the_archival(conn, populated, caplog):
    def broken(*_):
        raise RuntimeError("the page went away")

    with caplog.at_level(logging.ERROR):
        assert archive_old_events(conn, 30, now=NOW, chunk=1, progress=broken) == 3
    assert len(rows(conn, "pss_events_v2_archive")) == 3
    assert "progress callback failed" in caplog.text


def test_failure_in_a_later_chunk_rolls_back_the_whole_operation(conn):
    conn.execute("BEGIN")
    ids = [add_event(conn, days_ago(60 + i)) for i in range(9)]
    conn.execute("COMMIT")
    # A trigger makes the 8th event's archive insert fail, after two chunks went through.
    conn.execute(
        "CREATE TEMP TRIGGER fail_one BEFORE INSERT ON pss_events_v2_archive "
        f"WHEN NEW.id = {ids[7]} BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    before = snapshot(conn)
    calls = []
    with pytest.raises(Conflict, match="changed nothing"):
        archive_old_events(conn, 30, now=NOW, chunk=3, progress=lambda *a: calls.append(a))
    assert calls[-1] == ("archive_old_events", 6, 9)  # it really was mid-way
    assert snapshot(conn) == before
    assert not conn.in_transaction


def test_statistics_before_and_after(conn, populated):
    empty = get_archive_statistics(conn)
    assert empty["archived_events"] == 0 and empty["archived_details"] == 0
    assert empty["oldest_archived"] is None and empty["newest_archived"] is None
    assert empty["archive_size_method"] == "dbstat"
    empty_size = empty["archive_size_bytes"]
    assert empty_size > 0  # the empty b-trees still take their root pages

    conn.execute("BEGIN")
    for i in range(2000):
        add_event(conn, days_ago(100 + i / 1000), raw="x" * 200)
    conn.execute("COMMIT")
    archive_old_events(conn, 30, now=NOW)
    stats = get_archive_statistics(conn)
    assert stats["archived_events"] == 2003
    assert stats["archived_details"] == 2000 * 2 + 3 + 0 + 3
    assert stats["oldest_archived"] == days_ago(101.999)
    assert stats["newest_archived"] == days_ago(31)
    assert stats["archive_size_bytes"] > empty_size + 2000 * 200
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert stats["archive_size_bytes"] % page_size == 0
    assert stats["archive_size_bytes"] < os.path.getsize(_path(conn)) + os.path.getsize(
        _path(conn) + "-wal")


def test_statistics_estimate_the_size_when_dbstat_is_unavailable(conn):
    helpers.fill_events(conn, 3000, start_epoch=1_700_000_000)
    helpers.fill_events(conn, 3000, start_epoch=1_790_000_000)
    archive_old_events(conn, 0, now="2025-01-01T00:00:00Z")  # the first 3000 only
    exact = get_archive_statistics(conn)

    def no_dbstat(action, table, *_):
        return sqlite3.SQLITE_DENY if table == "dbstat" else sqlite3.SQLITE_OK

    conn.set_authorizer(no_dbstat)
    try:
        estimated = get_archive_statistics(conn)
    finally:
        conn.set_authorizer(None)
    assert exact["archive_size_method"] == "dbstat"
    assert estimated["archive_size_method"] == "estimate"
    assert estimated["archived_events"] == exact["archived_events"] == 3000
    assert exact["archive_size_bytes"] / 2 < estimated["archive_size_bytes"] < (
        exact["archive_size_bytes"] * 2)


def test_statistics_work_on_a_read_only_pool_connection(tmp_path, conn, populated):
    from restrike.plugins.plugin_database.pool import ConnectionPool

    archive_old_events(conn, 30, now=NOW)
    with ConnectionPool(_path(conn)) as pool, pool.connection() as reader:
        stats = get_archive_statistics(reader)
    assert stats["archived_events"] == 3 and stats["archived_details"] == 6


def test_restore_range_is_inclusive_at_both_ends(conn):
    conn.execute("BEGIN")
    before_start = add_event(conn, "2026-10-01T09:59:59.999999Z")
    at_start = add_event(conn, "2026-10-01T10:00:00.000000Z")
    inside = add_event(conn, "2026-10-03T00:00:00.000000Z")
    at_end = add_event(conn, "2026-10-05T18:30:00.000000Z")
    after_end = add_event(conn, "2026-10-05T18:30:00.000001Z")
    conn.execute("COMMIT")
    archive_old_events(conn, 0, now=NOW)
    archived = rows(conn, "pss_events_v2_archive")
    archived_details = rows(conn, "pss_event_details_archive")

    restored = restore_from_archive(conn, "2026-10-01T10:00:00Z", "2026-10-05T18:30:00Z")

    assert restored == 3
    wanted = {at_start, inside, at_end}
    assert rows(conn, "pss_events_v2") == {i: archived[i] for i in wanted}
    assert rows(conn, "pss_event_details") == {
        k: v for k, v in archived_details.items() if k[0] in wanted
    }
    assert set(rows(conn, "pss_events_v2_archive")) == {before_start, after_end}
    assert {k[0] for k in rows(conn, "pss_event_details_archive")} == {before_start, after_end}


def test_restore_with_date_only_end_covers_the_whole_end_day(conn):
    conn.execute("BEGIN")
    first = add_event(conn, "2026-10-01T00:00:00.000000Z")
    last_moment = add_event(conn, "2026-10-02T23:59:59.999999Z")
    next_day = add_event(conn, "2026-10-03T00:00:00.000000Z")
    conn.execute("COMMIT")
    archive_old_events(conn, 0, now=NOW)
    assert restore_from_archive(conn, "2026-10-01", "2026-10-02") == 2
    assert set(rows(conn, "pss_events_v2")) == {first, last_moment}
    assert set(rows(conn, "pss_events_v2_archive")) == {next_day}


def test_restoring_twice_restores_nothing_the_second_time(conn, populated):
    archive_old_events(conn, 30, now=NOW)
    assert restore_from_archive(conn, "2026-01-01", "2026-12-31") == 3
    after_first = snapshot(conn)
    assert restore_from_archive(conn, "2026-01-01", "2026-12-31") == 0
    assert snapshot(conn) == after_first
    assert len(rows(conn, "pss_events_v2")) == 5
    assert len(rows(conn, "pss_event_details")) == 10


def test_archive_restore_round_trip_gives_back_the_same_rows(conn, populated):
    before_events = rows(conn, "pss_events_v2")
    before_details = rows(conn, "pss_event_details")
    archive_old_events(conn, 0, now=NOW)
    restore_from_archive(conn, "2000-01-01", "2100-01-01")
    assert rows(conn, "pss_events_v2") == before_events
    assert rows(conn, "pss_event_details") == before_details
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_restore_refuses_ids_that_already_exist_in_the_main_table(conn, populated):
    archive_old_events(conn, 30, now=NOW)
    clash = populated[40]
    conn.execute("INSERT INTO pss_events_v2 SELECT * FROM pss_events_v2_archive WHERE id = ?",
                 (clash,))
    before = snapshot(conn)
    with pytest.raises(Conflict, match=f"1 event id\\(s\\) \\(first {clash}\\) already exist"):
        restore_from_archive(conn, "2000-01-01", "2100-01-01")
    assert snapshot(conn) == before


def test_cleanup_deletes_old_archived_events_and_their_details_only(conn, populated):
    archive_old_events(conn, 30, now=NOW)  # 40, 35, 31 days old archived
    main_before = snapshot_of(conn, "pss_events_v2", "pss_event_details")

    deleted = cleanup_old_archive_data(conn, 33, now=NOW)

    assert deleted == 2
    assert set(rows(conn, "pss_events_v2_archive")) == {populated[31]}
    assert {k[0] for k in rows(conn, "pss_event_details_archive")} == {populated[31]}
    assert snapshot_of(conn, "pss_events_v2", "pss_event_details") == main_before
    assert cleanup_old_archive_data(conn, 33, now=NOW) == 0


def test_optimize_shrinks_the_file_after_a_cleanup(conn, tmp_path):
    helpers.fill_events(conn, 20_000, start_epoch=1_700_000_000, raw_size=200)
    helpers.fill_events(conn, 100, start_epoch=int((NOW - dt.timedelta(days=10)).timestamp()))
    archive_old_events(conn, 0, now=NOW)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = _path(conn)
    full = os.path.getsize(path)
    assert cleanup_old_archive_data(conn, 30, now=NOW) == 20_000
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert os.path.getsize(path) == full  # deleting alone gives nothing back

    optimize_archive_tables(conn)

    shrunk = os.path.getsize(path)
    assert shrunk < full / 4
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    analyzed = {row[0] for row in conn.execute("SELECT tbl FROM sqlite_stat1")}
    assert {"pss_events_v2_archive", "pss_event_details_archive"} <= analyzed
    assert get_archive_statistics(conn)["archived_events"] == 100


def test_optimize_refuses_to_run_inside_a_transaction(conn):
    conn.execute("BEGIN")
    with pytest.raises(RuntimeError, match="outside a transaction"):
        optimize_archive_tables(conn)
    conn.execute("ROLLBACK")


@pytest.mark.parametrize("bad", [-1, 1.5, "5", None, True, 10**9])
def test_bad_days_old_raises_invalid_argument_and_changes_nothing(conn, populated, bad):
    before = snapshot(conn)
    for operation in (archive_old_events, cleanup_old_archive_data):
        with pytest.raises(InvalidArgument) as info:
            operation(conn, bad, now=NOW)
        assert info.value.field == "daysOld"
        assert "daysOld must be" in info.value.message
    assert snapshot(conn) == before


@pytest.mark.parametrize(
    "start, end, field, reason",
    [
        ("yesterday", "2026-12-31", "startDate", "ISO date"),
        ("2026-01-01", "2026-13-01", "endDate", "ISO date"),
        ("", "2026-12-31", "startDate", "required"),
        ("2026-01-01", None, "endDate", "required"),
        ("2026-12-31", "2026-01-01", "startDate", "must not be after"),
        ("2026-06-02T00:00:00Z", "2026-06-01", "startDate", "must not be after"),
        ("0999-01-01", "2026-06-01", "startDate", "between the years"),
        ("2026-01-01", "9999-12-31T23:59:59-05:00", "endDate", "between the years"),
        ("2026-01-01", 20260601, "endDate", "required"),
    ],
)
def test_bad_restore_range_raises_invalid_argument_and_changes_nothing(
    conn, populated, start, end, field, reason
):
    archive_old_events(conn, 30, now=NOW)
    before = snapshot(conn)
    with pytest.raises(InvalidArgument) as info:
        restore_from_archive(conn, start, end)
    assert info.value.field == field
    assert reason in info.value.message
    assert snapshot(conn) == before


def test_same_day_range_with_date_only_ends_is_valid(conn, populated):
    archive_old_events(conn, 30, now=NOW)
    day = days_ago(35)[:10]
    assert restore_from_archive(conn, day, day) == 1


def test_connection_settings_are_given_back_after_success_and_failure(conn, populated):
    settings = ("PRAGMA foreign_keys", "PRAGMA cache_size")
    before = [conn.execute(q).fetchone()[0] for q in settings]
    assert before[0] == 1
    archive_old_events(conn, 30, now=NOW)
    assert [conn.execute(q).fetchone()[0] for q in settings] == before
    conn.execute(
        "CREATE TEMP TRIGGER fail_all BEFORE INSERT ON pss_events_v2_archive "
        "BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with pytest.raises(Conflict):
        archive_old_events(conn, 0, now=NOW)
    assert [conn.execute(q).fetchone()[0] for q in settings] == before


def test_archive_keeps_foreign_keys_of_other_tables_that_reference_events(conn, populated):
    conn.execute("CREATE TABLE event_notes (id INTEGER PRIMARY KEY, "
                 "event_id INTEGER NOT NULL REFERENCES pss_events_v2(id), note TEXT)")
    conn.execute("INSERT INTO event_notes (event_id, note) VALUES (?, 'keep me')",
                 (populated[40],))
    before = snapshot(conn)
    with pytest.raises(Conflict, match="FOREIGN KEY"):
        archive_old_events(conn, 30, now=NOW)
    assert snapshot(conn) == before


@pytest.mark.parametrize("column, value, age, parent", [
    ("event_type_id", 99999, 35, "pss_event_types"),
    ("match_id", 4242, 31, "pss_matches"),  # a match deleted since
])
def test_restore_keeps_the_foreign_key_checks_of_the_main_tables(conn, populated, column, value,
                                                                 age, parent):
    archive_old_events(conn, 30, now=NOW)
    conn.execute(f"UPDATE pss_events_v2_archive SET {column} = ? WHERE id = ?",
                 (value, populated[age]))
    before = snapshot(conn)
    with pytest.raises(Conflict, match=rf"{column} \(first {value}\) refer to rows of "
                                        rf"{parent} that no longer exist"):
        restore_from_archive(conn, "2000-01-01", "2100-01-01")
    assert snapshot(conn) == before
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # given back


def test_column_added_to_both_tables_moves_without_code_changes(conn, populated):
    conn.execute("ALTER TABLE pss_events_v2 ADD COLUMN referee_note TEXT")
    conn.execute("ALTER TABLE pss_events_v2_archive ADD COLUMN referee_note TEXT")
    conn.execute("UPDATE pss_events_v2 SET referee_note = 'note ' || id")
    archive_old_events(conn, 30, now=NOW)
    notes = {i: r["referee_note"] for i, r in rows(conn, "pss_events_v2_archive").items()}
    assert notes == {i: f"note {i}" for i in (populated[40], populated[35], populated[31])}


def test_column_only_in_the_main_table_is_a_clear_error_and_changes_nothing(conn, populated):
    conn.execute("ALTER TABLE pss_events_v2 ADD COLUMN referee_note TEXT")
    before = snapshot(conn)
    with pytest.raises(ArchiveSchemaError, match=r"only in pss_events_v2: \['referee_note'\]"):
        archive_old_events(conn, 30, now=NOW)
    assert snapshot(conn) == before
    assert not conn.in_transaction


# -- automatic archival -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now




@pytest.fixture
def service(tmp_path):
    svc = DatabaseService.open(tmp_path / "svc.db")
    yield svc
    svc.close()


def test_auto_archiver_runs_when_the_hour_is_up_on_the_writer(service):
    service.writer.run(lambda c: [add_event(c, days_ago(d)) for d in (45, 40, 2)])
    clock = FakeClock()
    results = []
    auto = AutoArchiver(service.writer.run, 30, clock=clock, on_result=results.append)
    auto.start()
    try:
        auto.wake()  # not due yet: nothing happens
        assert wait_for(lambda: auto.checks == 1)
        clock.now += 3599
        auto.wake()
        assert wait_for(lambda: auto.checks == 2)
        assert auto.runs == 0 and results == []
        clock.now += 1
        auto.wake()
        assert wait_for(lambda: results == [2])
        assert auto.runs == 1
        auto.trigger()  # forced: runs again at once, finds nothing more
        assert wait_for(lambda: results == [2, 0])
    finally:
        auto.stop()
    counts = service.writer.run(lambda c: [
        c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES])
    assert counts == [1, 2, 2, 4]


def test_auto_archiver_keeps_going_after_a_failure(service):
    calls = []

    def run(fn):
        calls.append(fn)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return service.writer.run(fn)

    auto = AutoArchiver(run, 30, clock=FakeClock())
    auto.start()
    try:
        auto.trigger()
        assert wait_for(lambda: auto.last_error is not None)
        assert "database is locked" in auto.last_error
        auto.trigger()
        assert wait_for(lambda: auto.runs == 1 and auto.last_error is None)
    finally:
        auto.stop()


# -- the commands -------------------------------------------------------------------------------


class RecordingPush:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict]] = []

    def emit(self, name, payload, *, latest_only=False):
        self.emitted.append((name, payload))


@pytest.fixture
def commands(service):
    app = SimpleNamespace(push=RecordingPush(), jobs=Jobs(CommandRegistry()),
                          extensions={EXTENSION: service})
    yield archive_commands(app), app, service
    app.jobs.close()


def test_commands_are_the_fixed_set_with_docstrings(commands):
    cmds, _, _ = commands
    assert set(cmds) == {
        "get_database_pool_stats", "cleanup_database_pool", "archive_old_events",
        "get_archive_statistics", "restore_from_archive", "cleanup_old_archive_data",
        "optimize_archive_tables",
    }
    assert all(fn.__doc__ for fn in cmds.values())


def test_archive_commands_end_to_end_with_progress_events(commands):
    cmds, app, service = commands
    recent = to_iso(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    old = to_iso(dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
    service.writer.run(lambda c: [add_event(c, old), add_event(c, old), add_event(c, recent)])

    assert cmds["archive_old_events"](30) == 2
    progress = [p for name, p in app.push.emitted if name == "archive_progress"]
    assert progress[0] == {"operation": "archive_old_events", "done": 0, "total": 2,
                           "percent": 0.0}
    assert progress[-1] == {"operation": "archive_old_events", "done": 2, "total": 2,
                            "percent": 100.0}

    stats = cmds["get_archive_statistics"]()
    assert stats["archived_events"] == 2 and stats["archived_details"] == 4

    assert cmds["restore_from_archive"](old[:10], old[:10]) == 2
    assert cmds["restore_from_archive"](old[:10], old[:10]) == 0

    assert cmds["archive_old_events"](30) == 2
    assert cmds["cleanup_old_archive_data"](45) == 0  # they are 40 days old
    assert cmds["cleanup_old_archive_data"](35) == 2
    assert cmds["get_archive_statistics"]()["archived_events"] == 0
    assert cmds["optimize_archive_tables"]() is None


def test_pool_commands_report_and_clean(commands):
    cmds, _, service = commands
    with service.pool.connection():
        stats = cmds["get_database_pool_stats"]()
    assert stats["in_use"] == 1 and stats["max_connections"] == 10
    assert cmds["cleanup_database_pool"]() is None
    assert cmds["get_database_pool_stats"]()["last_cleanup"] is not None


def test_bad_command_arguments_name_the_field_and_change_nothing(commands):
    cmds, _, service = commands
    service.writer.run(lambda c: add_event(c, days_ago(400)))
    before = service.writer.run(snapshot)
    for name in ("archive_old_events", "cleanup_old_archive_data"):
        with pytest.raises(InvalidArgument) as info:
            cmds[name](-3)
        assert info.value.field == "daysOld"
    with pytest.raises(InvalidArgument) as info:
        cmds["restore_from_archive"]("2026-02-01", "2026-01-01")
    assert info.value.field == "startDate"
    with pytest.raises(InvalidArgument) as info:
        cmds["restore_from_archive"]("2026-01-01", "soon")
    assert info.value.field == "endDate"
    assert service.writer.run(snapshot) == before


def snapshot_of(conn: sqlite3.Connection, *tables: str) -> dict:
    return {table: rows(conn, table) for table in tables}


def _path(conn: sqlite3.Connection) -> str:
    return archive._main_file(conn)


def test_the_registered_commands_validate_through_the_host_registry(db_app):
    # The field is named as the caller spelled it (a positional one: the page's camelCase).
    for args, field in (({"daysOld": -1}, "daysOld"), ({"days_old": "many"}, "days_old"),
                        ([2.5], "daysOld")):
        with pytest.raises(InvalidArgument) as info:
            call(db_app, "archive_old_events", *args) if isinstance(args, list) else call(
                db_app, "archive_old_events", **args)
        assert info.value.field == field, info.value.message
    with pytest.raises(InvalidArgument) as info:
        call(db_app, "restore_from_archive", startDate="2026-03-01", endDate="2026-02-01")
    assert info.value.field == "startDate"
    assert call(db_app, "archive_old_events", 30) == 0
    assert call(db_app, "get_archive_statistics")["archived_events"] == 0
    assert call(db_app, "get_database_pool_stats")["max_connections"] == 4
