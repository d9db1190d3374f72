"""Disk full and database errors while the feed arrives, and a damaged database file at start.

The app under test is the real one (built-in plugins, real UDP, real SQLite file), run in this
process so the test can take space away from the writer: ``PRAGMA max_page_count`` on the
writer's own connection (through ``Writer.run``, the only way anything touches it), which makes
SQLite fail every growing transaction with ``SQLITE_FULL`` exactly as a full disk does; and,
where the test may mount file systems (root on Linux), a real 1 MiB tmpfs that runs out of
space and is then grown.

Promises checked: the receiver keeps receiving; ``get_udp_stats().storage`` reports the failure
(``failed_writes``, ``held``, ``last_error``); what cannot be written waits in the writer's
bounded queue and is written, in order, once space returns; beyond the bound whole batches are
refused and counted in ``storage.dropped``; the app never crashes and stays usable.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading

import pytest

from restrike.host.bridge import invoke
from restrike.plugins.plugin_udp.simulator import sender_datagrams
from tests.conftest import REPO
from tests.full_database import UNLIMITED_PAGES, set_max_pages
from tests.reliability.conftest import (
    check_exact_prefix,
    expected_messages,
    integrity,
    open_db,
    send_all,
    stored_session,
    wait_for,
)
from tests.tmpfs import SmallFs


def call(app, name, args=None):
    ok, value = invoke(app.commands, name, args)
    assert ok, f"{name}: {value}"
    return value


def storage(app) -> dict:
    return call(app, "get_udp_stats")["storage"]


def test_disk_full_holds_the_feed_reports_it_and_writes_it_when_space_returns(make_app):
    app = make_app()
    app.start()
    port = app.settings.config["udp"]["port"]
    datagrams = sender_datagrams(3, 0, 2)
    per_datagram = expected_messages(datagrams)
    events = sum(len(m) for m in per_datagram)
    first, rest = datagrams[:50], datagrams[50:]
    send_all(port, first)  # from one socket; the rest from another, opened below
    wait_for(lambda: storage(app)["stored"] == sum(len(m) for m in per_datagram[:50]), 10)

    set_max_pages(app, None)  # the disk is full from now on
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for d in rest:
            s.sendto(d, ("127.0.0.1", port))
        wait_for(lambda: call(app, "get_udp_stats")["dispatched_datagrams"] == len(datagrams),
                 15, message="the receiver to keep receiving while the disk is full")
        held = wait_for(lambda: (st := storage(app))["held"] and st, 15,
                        message="the failed write to be reported")
        assert held["failed_writes"] >= 1
        assert "full" in held["last_error"], held["last_error"]
        assert held["last_error_at"]
        assert held["stored"] + held["held"] + held["pending"] == events
        assert held["dropped"] == 0 and held["lost"] == 0
        # Still usable: reads, commands, the plugin list (no plugin failed).
        assert call(app, "get_udp_status") == "Running"
        assert all(p["errors"] == 0 for p in call(app, "list_plugins"))
        call(app, "get_events", {"filters": {"limit": 5}})
        assert call(app, "database_get_info")["writer"]["held"] > 0

        set_max_pages(app, UNLIMITED_PAGES)  # space returns
        wait_for(lambda: storage(app)["stored"] == events, 20, message="the held feed written")
        after = storage(app)
        assert after["held"] == 0 and after["pending"] == 0 and after["lost"] == 0
        sender_port = s.getsockname()[1]

    session_id = call(app, "get_udp_stats")["session"]["session_id"]
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        assert integrity(conn) == ["ok"]
        rows = stored_session(conn, session_id)
    # Two senders (two sockets): each one's events in order, nothing missing, nothing twice.
    ports = [int(r["port"]) for r in rows]
    firsts = [r for r in rows if int(r["port"]) != sender_port]
    later = [r for r in rows if int(r["port"]) == sender_port]
    assert len(set(ports)) == 2
    assert len(rows) == events
    assert [r["raw"] for r in firsts] == [m for d in per_datagram[:50] for m in d]
    assert [r["raw"] for r in later] == [m for d in per_datagram[50:] for m in d]


def test_disk_full_beyond_the_queue_bound_drops_whole_batches_and_counts_them(make_app):
    app = make_app(config={"database": {"queue_max_events": 1_000}})
    app.start()
    port = app.settings.config["udp"]["port"]
    datagrams = sender_datagrams(4, 0, 5)  # ~3,000 events: more than the queue holds
    per_datagram = expected_messages(datagrams)
    events = sum(len(m) for m in per_datagram)
    assert events > 2_000
    set_max_pages(app, None)
    send_all(port, datagrams)
    # "dispatched" is counted when a datagram is parsed, before its batch has reached the
    # database hook: wait for the books to balance, every event stored, held, queued or dropped
    full = wait_for(lambda: (st := storage(app))["stored"] + st["held"] + st["pending"]
                    + st["dropped"] == events and st, 20, message="every event accounted for")
    assert call(app, "get_udp_stats")["dispatched_datagrams"] == len(datagrams)
    assert full["dropped"] > 0 and full["dropped_batches"] > 0, full
    assert full["pending"] <= 1_000, "the writer queue holds more than its bound"

    set_max_pages(app, UNLIMITED_PAGES)
    wait_for(lambda: (st := storage(app))["pending"] == 0 and st["held"] == 0, 20)
    done = storage(app)
    assert done["stored"] + done["dropped"] == events, done
    assert done["lost"] == 0
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        assert integrity(conn) == ["ok"]
        stored = conn.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0]
    assert stored == done["stored"]


def test_a_slow_writer_slows_ingest_and_the_backlog_waits_upstream_without_loss(make_app):
    # The writer is busy (a long maintenance call); the feed is three times its queue. The
    # dispatcher waits for room, the datagrams wait in the receiver's queue, nothing is dropped.
    app = make_app(config={"database": {"queue_max_events": 1_000}})
    app.start()
    datagrams = sender_datagrams(5, 0, 7)
    per_datagram = expected_messages(datagrams)
    events = sum(len(m) for m in per_datagram)
    assert events > 3_000
    release = threading.Event()
    started = threading.Event()
    busy = threading.Thread(target=app.extensions["database"].writer.run,
                            args=(lambda conn: (started.set(), release.wait(30)),))
    busy.start()
    assert started.wait(10)
    send_all(app.settings.config["udp"]["port"], datagrams)
    backlog = wait_for(
        lambda: (st := call(app, "get_udp_stats"))["datagrams"] == len(datagrams)
        and st["storage"]["waits"] >= 1 and st,
        20, message="every datagram received while the dispatcher waits for the writer")
    assert backlog["dispatched_datagrams"] < len(datagrams)  # the rest wait, not parsed yet
    assert backlog["storage"]["pending"] <= 1_000
    release.set()
    busy.join(10)
    wait_for(lambda: storage(app)["stored"] == events, 30, message="the whole feed stored")
    done = call(app, "get_udp_stats")
    assert done["storage"]["dropped"] == 0 and done["queue_dropped"] == 0
    session_id = done["session"]["session_id"]
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        rows = stored_session(conn, session_id)
    assert [r["raw"] for r in rows] == [m for d in per_datagram for m in d]


@pytest.mark.e2e
def test_the_page_shows_a_failing_write_and_its_recovery(make_app, page_of):
    app = make_app()
    app.start()
    page = page_of(app)
    page.click("#tab-udp")
    page.wait_for_selector("#panel-udp:not([hidden])")
    set_max_pages(app, None)
    datagrams = sender_datagrams(6, 0, 1)
    events = sum(len(m) for m in expected_messages(datagrams))
    send_all(app.settings.config["udp"]["port"], datagrams)
    error = page.locator("#udp-counters dd[data-key='storage_error']")
    error.wait_for(timeout=20_000)
    assert "full" in error.inner_text()
    held = page.locator("#udp-counters dd[data-key='held']")
    assert int(re.sub(r"\D", "", held.inner_text()) or 0) > 0
    set_max_pages(app, UNLIMITED_PAGES)
    wait_for(lambda: storage(app)["stored"] == events, 20)
    page.wait_for_function(
        "() => !document.querySelector(\"#udp-counters dd[data-key='held']\")", timeout=20_000)


# --------------------------------------------------------------------------- a real full disk


def test_a_really_full_file_system_holds_then_writes(make_app, small_fs: SmallFs):
    app = make_app(data_dir=small_fs.path / "data")
    try:
        _fill_hold_grow(app, small_fs)
    finally:
        app.stop()  # before the file system is unmounted


def _fill_hold_grow(app, small_fs: SmallFs) -> None:
    app.start()
    port = app.settings.config["udp"]["port"]
    datagrams = sender_datagrams(5, 0, 6)  # ~3,500 datagrams: far more than 1 MiB of rows
    per_datagram = expected_messages(datagrams)
    events = sum(len(m) for m in per_datagram)
    source = send_all(port, datagrams)
    held = wait_for(lambda: (st := storage(app))["held"] and st, 30,
                    message="the write to fail for lack of space")
    assert held["failed_writes"] >= 1 and held["last_error"], held
    wait_for(lambda: call(app, "get_udp_stats")["dispatched_datagrams"] == len(datagrams), 20)
    assert call(app, "get_udp_status") == "Running"

    small_fs.grow()
    wait_for(lambda: storage(app)["stored"] == events, 60, message="the held feed written")
    session_id = call(app, "get_udp_stats")["session"]["session_id"]
    assert call(app, "database_run_integrity_check")["ok"]
    with open_db(app.settings.data_dir / "restrike_vta.db") as conn:
        assert integrity(conn) == ["ok"]
        rows = stored_session(conn, session_id)
    assert check_exact_prefix(rows, per_datagram, port=source) == len(datagrams)


# ------------------------------------------------------------------- a damaged file at start


GARBAGE = b"this is not an SQLite database, whatever its name says\n" * 200


def test_a_corrupt_database_file_is_moved_aside_and_a_fresh_one_started(make_app, caplog):
    app = make_app()
    app.settings.data_dir.mkdir(parents=True)
    db_path = app.settings.data_dir / "restrike_vta.db"
    db_path.write_bytes(GARBAGE)
    with caplog.at_level("ERROR"):
        try:
            app.start()  # must not fail: ingest matters more than an unreadable old file
        except Exception as exc:  # noqa: BLE001 - whatever it raised, say what was expected
            assert db_path.read_bytes() == GARBAGE, "the damaged file was overwritten"
            pytest.fail(f"the app did not start on a damaged database file ({exc}); expected "
                        "it moved aside to restrike_vta.db.corrupt-<UTC time> and a fresh one")
    moved = sorted(app.settings.data_dir.glob("restrike_vta.db.corrupt-*"))
    assert len(moved) == 1, f"not moved aside: {os.listdir(app.settings.data_dir)}"
    assert moved[0].read_bytes() == GARBAGE, "the damaged file must be kept as it was"
    errors = " ".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert str(db_path) in errors and str(moved[0]) in errors, errors
    info = call(app, "database_get_info")
    assert str(moved[0]) in str(info), "database_get_info should name the file moved aside"
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    send_all(app.settings.config["udp"]["port"], [b"pt1;3\r\n"])
    wait_for(lambda: storage(app)["stored"] == 1, 10)


def test_an_unopenable_database_path_fails_clearly_and_changes_nothing(tmp_path):
    """A data dir whose database path cannot be opened (here: it is a directory) stops the
    start with an error naming the path; nothing there is touched."""
    data_dir = tmp_path / "data"
    blocker = data_dir / "restrike_vta.db"
    blocker.mkdir(parents=True)
    (blocker / "keep.txt").write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "restrike", "--headless", "--data-dir", str(data_dir),
         "--udp-bind", "127.0.0.1", "--udp-port", "0", "--http-port", "0", "--token", "t"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, RESTRIKE_LOAD_PLUGINS=""))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert "cannot start: " in output and str(blocker) in output, output  # one line, exit 2
    assert (blocker / "keep.txt").read_text() == "mine"
