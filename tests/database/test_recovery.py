"""Start-up on what the last run left behind: a damaged file is moved aside and a fresh one
started, an unopenable path fails naming it, sessions a crash cut short are closed."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import subprocess
import sys

import pytest

from restrike.plugins.plugin_database.recovery import DatabaseOpenError, move_aside
from restrike.plugins.plugin_database.running import service_of
from restrike.plugins.plugin_database.service import DB_FILE, DatabaseConfig, DatabaseService
from restrike.pss.session import UdpSession

from .conftest import DATABASE_ONLY, Feed, call, read, store

GARBAGE = b"this is not an SQLite database, whatever its name says\n" * 200
WAL = b"the write-ahead log of the damaged file, kept for a rescue\n" * 100


def corrupt_files(tmp_path):
    return sorted(p.name for p in tmp_path.glob(f"{DB_FILE}.corrupt-*"))


@pytest.mark.sqlite_only(reason="a damaged SQLite file")
def test_a_damaged_file_is_moved_aside_with_its_wal_and_a_fresh_one_started(
        open_db, tmp_path, caplog):
    path = tmp_path / DB_FILE
    path.write_bytes(GARBAGE)
    (tmp_path / f"{DB_FILE}-wal").write_bytes(WAL)
    with caplog.at_level(logging.ERROR):
        db = open_db(path)
    moved = tmp_path / db.recovered_from["moved_to"]
    assert moved.parent == tmp_path and moved.name.startswith(f"{DB_FILE}.corrupt-")
    assert moved.read_bytes() == GARBAGE, "the damaged file must be kept as it was"
    assert (tmp_path / f"{moved.name}-wal").read_bytes() == WAL, "its WAL too"
    assert db.recovered_from["moved_from"] == str(path)
    assert db.recovered_from["reason"] == "file is not a database"
    assert db.recovered_from["at"].endswith("Z")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(str(path) in m and str(moved) in m for m in errors), errors
    store(db, Feed().events(["pt1;3\r\n"]))
    assert read(db, "SELECT raw_data FROM pss_events_v2") == [("pt1;3",)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.sqlite_only(reason="the SQLite file and its WAL")
def test_a_sound_file_left_by_a_crash_is_opened_not_moved(open_db, tmp_path):
    """A kill leaves a WAL (and its index) beside a sound file: that is no damage."""
    path = tmp_path / DB_FILE
    script = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute('CREATE TABLE kept (x)'); c.execute(\"INSERT INTO kept VALUES ('mine')\")\n"
        "os._exit(0)\n"  # no close: the committed rows are only in the WAL
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=30)
    assert (tmp_path / f"{DB_FILE}-wal").stat().st_size > 0
    db = open_db(path)
    assert db.recovered_from is None and corrupt_files(tmp_path) == []
    assert read(db, "SELECT x FROM kept") == [("mine",)]


def test_the_moved_name_is_never_reused(tmp_path):
    now = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)
    names = []
    for n in range(3):
        path = tmp_path / DB_FILE
        path.write_bytes(GARBAGE + bytes([n]))
        names.append(move_aside(path, "file is not a database", now)["moved_to"])
    stamp = f"{DB_FILE}.corrupt-20261128T120000Z"
    assert [os.path.basename(n) for n in names] == [stamp, f"{stamp}-1", f"{stamp}-2"]
    assert [open(n, "rb").read()[-1] for n in names] == [0, 1, 2]
    # a name whose WAL alone is left over is taken too (renaming over it would lose it)
    (tmp_path / f"{DB_FILE}.corrupt-20261128T120001Z-wal").write_bytes(WAL)
    (tmp_path / DB_FILE).write_bytes(GARBAGE)
    later = move_aside(tmp_path / DB_FILE, "x", now + dt.timedelta(seconds=1))["moved_to"]
    assert later.endswith("corrupt-20261128T120001Z-1")
    assert (tmp_path / f"{DB_FILE}.corrupt-20261128T120001Z-wal").read_bytes() == WAL


def test_the_app_starts_on_a_damaged_file_and_database_get_info_names_it(make_app):
    app = make_app(builtins=DATABASE_ONLY)
    app.settings.data_dir.mkdir(parents=True, exist_ok=True)
    (app.settings.data_dir / DB_FILE).write_bytes(GARBAGE)
    app.start()
    info = call(app, "database_get_info")
    moved = info["recovered_from"]["moved_to"]
    assert os.path.dirname(moved) == str(app.settings.data_dir)
    assert open(moved, "rb").read() == GARBAGE
    assert info["recovered_from"]["reason"] == "file is not a database"


def test_a_sound_start_reports_no_recovery(db_app):
    assert call(db_app, "database_get_info")["recovered_from"] is None


def test_a_path_that_is_a_directory_fails_naming_it_and_touches_nothing(tmp_path):
    blocker = tmp_path / DB_FILE
    blocker.mkdir()
    (blocker / "keep.txt").write_text("mine")
    with pytest.raises(DatabaseOpenError) as err:
        DatabaseService.open(blocker, DatabaseConfig())
    assert str(blocker) in str(err.value) and "is a directory" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_FILE]
    assert [p.name for p in blocker.iterdir()] == ["keep.txt"]
    assert (blocker / "keep.txt").read_text() == "mine"


@pytest.fixture
def unwritable_dir(tmp_path):
    """An empty directory nobody can write into, root included: for an ordinary user one
    without write permission; as root (who ignores permissions) a read-only tmpfs mounted
    there. Skipped only when root cannot mount (no ``mount``, no privilege in a container)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        locked.chmod(0o500)
        yield locked
        locked.chmod(0o700)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)],
                          capture_output=True, text=True) if sys.platform.startswith("linux") \
        else None
    if done is None or done.returncode:
        pytest.skip("as root a directory is only unwritable on a read-only file system, and "
                    f"mounting one failed: {done.stderr.strip() if done else sys.platform}")
    try:
        yield locked
    finally:
        if subprocess.run(["umount", str(locked)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(locked)], capture_output=True)


def test_a_directory_that_is_not_writable_fails_naming_the_path(unwritable_dir):
    locked = unwritable_dir
    with pytest.raises(DatabaseOpenError) as err:
        DatabaseService.open(locked / DB_FILE, DatabaseConfig())
    assert str(locked / DB_FILE) in str(err.value)
    assert "not writable" in str(err.value)
    assert list(locked.iterdir()) == []


def _session(session_id: str, started_at: str) -> UdpSession:
    return UdpSession(session_id=session_id, bind="127.0.0.1", port=6000,
                      started_at=started_at, stopped_at=None, simulated=False, status="running")


@pytest.mark.sqlite_only(reason="reopens the file; on PostgreSQL: tests/database/test_outage.py::"
                                "test_the_sessions_of_a_run_killed_during_an_outage_end_interrupted")
def test_sessions_a_crash_cut_short_are_closed_as_interrupted_at_their_last_event(
        open_db, tmp_path):
    path = tmp_path / DB_FILE
    db = open_db(path)
    db.writer.submit_session(_session("cut-short", "2026-11-28T10:00:00.000000Z"))
    db.writer.submit_session(_session("no-events", "2026-11-28T11:00:00.000000Z"))
    db.writer.submit_session(_session("stopped", "2026-11-28T09:00:00.000000Z"))
    db.writer.submit_session(_session("stopped", "2026-11-28T09:00:00.000000Z").model_copy(
        update={"stopped_at": "2026-11-28T09:30:00.000000Z", "status": "stopped"}))
    store(db, Feed("cut-short").events(["pt1;3\r\n", "pt2;1\r\n", "clk;1:00\r\n"]))
    last = read(db, "SELECT timestamp FROM pss_events_v2 WHERE session_id = 'cut-short' "
                    "ORDER BY id DESC LIMIT 1")[0][0]
    db.close()  # the sessions never got their stop: as after a kill

    def sessions(service):
        return {row[0]: row[1:] for row in read(
            service, "SELECT session_id, status, stopped_at FROM udp_server_sessions")}

    again = DatabaseService.open(path, DatabaseConfig(pool_max_size=2))
    try:
        assert again.interrupted_sessions == 2
        assert sessions(again) == {
            "cut-short": ("interrupted", last),
            "no-events": ("interrupted", "2026-11-28T11:00:00.000000Z"),
            "stopped": ("stopped", "2026-11-28T09:30:00.000000Z"),
        }
    finally:
        again.close()
    once_more = open_db(path)
    assert once_more.interrupted_sessions == 0
    assert sessions(once_more)["cut-short"] == ("interrupted", last)


def test_a_running_app_keeps_its_own_session_running(make_app):
    """Only sessions of an earlier run are closed: this run's start comes after the sweep."""
    app = make_app(builtins=DATABASE_ONLY)
    app.start()
    service = service_of(app)
    service.writer.submit_session(_session("now", "2026-11-28T12:00:00.000000Z"))
    assert service.writer.flush(5.0)
    assert read(service, "SELECT status FROM udp_server_sessions") == [("running",)]
