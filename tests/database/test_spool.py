"""The store-and-forward spool on real SQLite files: what goes in comes out the same, in order;
the byte bound; the file given back when empty; a SIGKILL loses nothing it had committed."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys

import pytest

from restrike.host.timeutil import now_iso
from restrike.plugins.plugin_database.batch import Events, Session
from restrike.plugins.plugin_database.spool import SPOOL_FILE, Spool
from restrike.plugins.plugin_database.writer import event_bytes
from restrike.pss.ingested import ingest_datagram
from restrike.pss.protocol import Limits
from restrike.pss.session import UdpSession
from tests.conftest import REPO

from .conftest import ODD, Feed, match_datagrams


def batch(events: list, context=(None, None)) -> Events:
    return Events(events, context, event_bytes(events))


def test_batches_come_back_as_they_went_in_oldest_first(tmp_path):
    feed = Feed()
    odd = feed.events(ODD) + feed.datagram(base64.b64decode("cHQxO//+Mzs=")) \
        + feed.datagram(b"pt1;3\r\n\xff\xfe;\r\nclk;1:00\r\n")
    # a message broken by a configured parser limit: its model is not what the raw text parses to
    limited = ingest_datagram(b"pt1;12345678901;", session_id="session-1", seq=99,
                              received_at=now_iso(), received_ns=5, source_ip="10.0.0.5",
                              source_port=50000, limits=Limits(max_field_length=4))
    assert limited[0].event.type == "invalid" and limited[0].event.limit
    session = UdpSession(session_id="session-1", bind="127.0.0.1", port=6000,
                         started_at=now_iso(), packets_received=3)
    first = [Session(session), batch(odd, (3, 7))]
    second = [batch(feed.events(match_datagrams()) + limited)]
    spool = Spool(tmp_path / SPOOL_FILE)
    assert spool.append(first, now_iso()) and spool.append(second, now_iso(), maybe_written=True)
    assert spool.depth()["batches"] == 2
    assert spool.depth()["events"] == len(odd) + len(second[0].events)
    spool.close()

    spool = Spool(tmp_path / SPOOL_FILE)  # read back by the next process
    assert spool.depth()["events"] == len(odd) + len(second[0].events)
    one = spool.oldest()
    # an earlier process may have died between the server's commit and the delete
    assert one is not None and one.maybe_written
    assert one.items[0] == Session(session)
    back = one.items[1]
    assert back.context == (3, 7) and back.size == first[1].size
    # every field but the monotonic clock reading, which means nothing to another process
    assert [ev.__class__(*(getattr(ev, f) for f in ev.__slots__[:4]), 0,
                         *(getattr(ev, f) for f in ev.__slots__[5:])) for ev in odd] \
        == back.events
    assert back.events[-1].raw_b64 == back.events[-2].raw_b64 is not None
    spool.delete(one)
    two = spool.oldest()
    assert two is not None and two.maybe_written
    assert [ev.event for ev in two.items[0].events] == [ev.event for ev in second[0].events]
    assert two.items[0].events[-1].event.limit == "max_field_length"
    spool.delete(two)
    assert spool.oldest() is None
    assert spool.depth()["events"] == spool.depth()["batches"] == 0
    spool.close()


def test_the_clock_reading_is_kept_within_one_process(tmp_path):
    spool = Spool(tmp_path / SPOOL_FILE)
    events = Feed().events(["pt1;3"])
    assert spool.append([batch(events)], now_iso())
    back = spool.oldest()
    assert back is not None and back.items[0].events == events and not back.maybe_written
    spool.close()


def test_a_full_spool_refuses_new_batches_and_keeps_the_old_ones(tmp_path):
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=256 * 1024)
    feed = Feed()
    # distinct raw texts, so compression cannot make them small
    kept = 0
    while spool.append([batch(feed.events([f"wmh;{os.urandom(600).hex()};2-0 PTF"]))],
                       now_iso()):
        kept += 1
    assert kept > 10
    depth = spool.depth()
    assert depth["batches"] == kept and depth["bytes"] <= depth["max_bytes"]
    # the file: the bodies and SQLite's pages around them
    assert (tmp_path / SPOOL_FILE).stat().st_size <= 256 * 1024 * 1.25
    first = spool.oldest()
    assert first is not None and first.items[0].events[0].seq == 1
    spool.delete(first)  # room again
    assert spool.append([batch(feed.events(["pt1;3"]))], now_iso())
    spool.close()


def test_an_emptied_spool_gives_the_disk_back(tmp_path):
    spool = Spool(tmp_path / SPOOL_FILE)
    feed = Feed()
    for _ in range(50):
        assert spool.append([batch(feed.events([f"wmh;{os.urandom(2000).hex()};x"]))],
                            now_iso())
    wal = tmp_path / (SPOOL_FILE + "-wal")
    full = (tmp_path / SPOOL_FILE).stat().st_size + wal.stat().st_size
    while (item := spool.oldest()) is not None:
        spool.delete(item)
    assert spool.depth()["bytes"] == 0
    assert (tmp_path / SPOOL_FILE).stat().st_size < full // 10
    assert wal.stat().st_size == 0
    spool.close()


def test_a_damaged_spool_file_is_moved_aside(tmp_path):
    (tmp_path / SPOOL_FILE).write_bytes(b"this is not a database" * 100)
    spool = Spool(tmp_path / SPOOL_FILE)
    assert spool.oldest() is None
    assert len(list(tmp_path.glob(SPOOL_FILE + ".corrupt-*"))) == 1
    spool.close()


_APPENDER = """
import sys
from restrike.host.timeutil import now_iso
from restrike.plugins.plugin_database.batch import Events
from restrike.plugins.plugin_database.spool import Spool
from restrike.pss.ingested import ingest_datagram
spool = Spool(sys.argv[1])
seq = 0
while True:
    seq += 1
    events = ingest_datagram(f"pt1;{seq % 5 + 1}".encode(), session_id="s", seq=seq,
                             received_at=now_iso(), received_ns=0, source_ip="10.0.0.5",
                             source_port=5)
    spool.append([Events(events, (None, None), 100)], now_iso())
    print(seq, flush=True)  # acknowledged: committed
"""


def test_a_sigkill_loses_nothing_the_spool_committed(tmp_path):
    path = tmp_path / SPOOL_FILE
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        acknowledged = 0
        assert proc.stdout is not None
        while acknowledged < 200:
            acknowledged = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    spool = Spool(path)
    seqs = []
    while (item := spool.oldest()) is not None:
        seqs.append(item.items[0].events[0].seq)
        spool.delete(item)
    assert seqs[:acknowledged] == list(range(1, acknowledged + 1))
    assert seqs == list(range(1, len(seqs) + 1))  # nothing half-written after them
    spool.close()


@pytest.mark.parametrize("max_bytes", [0, 1000])
def test_a_bound_too_small_is_refused(tmp_path, max_bytes):
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(tmp_path / SPOOL_FILE, max_bytes)



# -- the writer's store-and-forward, on real SQLite files ----------------------------------------
# The engine is the same for every backend: here the "server" is an SQLite file made really full
# (max_page_count, the real SQLITE_FULL path), and ``unreachable`` says that error is an outage.
# A new connection stays full until ``space`` is set. The PostgreSQL outage itself (a real
# server crashed with pg_ctl): tests/database/test_outage.py,
# tests/reliability/test_central_outage.py.


def test_the_writer_spools_while_the_server_cannot_take_a_batch_then_forwards_in_order_once(
        tmp_path):
    import sqlite3
    import threading

    from restrike.plugins.plugin_database.maintenance import connect_writer, storage_full
    from restrike.plugins.plugin_database.migrations import apply_migrations
    from restrike.plugins.plugin_database.writer import Writer
    from tests.conftest import wait_for

    path = str(tmp_path / "server.db")
    space = threading.Event()

    def connect():
        conn = connect_writer(path)
        if not space.is_set():
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    conn = connect_writer(path)
    apply_migrations(conn)
    spool = Spool(tmp_path / SPOOL_FILE)
    writer = Writer(conn, spool=spool, connect=connect,
                    unreachable=lambda exc: storage_full(exc) is not None).start()
    try:
        feed = Feed()
        first = feed.events(["hel;"])
        assert writer.submit(first) and writer.flush(10.0)
        pages = writer.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        writer.run(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
        events = feed.events(match_datagrams() + [f"clk;1:{i % 60:02d}\r\n" for i in range(300)])
        half = len(events) // 2
        assert writer.submit(events[:half]) and writer.submit(events[half:])
        assert writer.flush(10.0)  # acknowledged: spooled (fsynced), not held in memory
        stats = writer.stats()["spool"]
        assert stats["unreachable"] and stats["unreachable_since"]
        assert stats["depth"]["events"] == len(events) and stats["dropped"] == 0
        assert writer.stats()["held"] == 0
        space.set()
        wait_for(lambda: writer.stats()["spool"]["depth"]["events"] == 0, timeout=30,
                 message="the spool forwarded")
        stats = writer.stats()
        assert not stats["spool"]["unreachable"]
        assert stats["spool"]["forwarded"] == len(events) and stats["stored"] == len(events) + 1
        check = sqlite3.connect(path)
        raws = [r[0] for r in check.execute("SELECT raw_data FROM pss_events_v2 ORDER BY id")]
        assert raws == [ev.raw for ev in first + events]  # in order, each once
        # the match state followed the forwarded batches
        assert check.execute("SELECT match_number, blue_score, red_warnings, winner "
                             "FROM pss_matches").fetchall() == [("101", 4, 1, "blue")]
        check.close()
        # back on the direct path
        more = feed.events(["pt1;3"])
        assert writer.submit(more) and writer.flush(10.0)
        assert writer.stats()["spool"]["spooled"] == len(events)
    finally:
        writer.close()

