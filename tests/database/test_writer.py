"""The single writer on real SQLite files: order, raw text, details ids, durability, disk full,
a full queue, run(), and the match state it keeps."""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from restrike.host.errors import Unavailable
from restrike.host.timeutil import clock_ns
from restrike.plugins.plugin_database.service import DB_FILE
from restrike.plugins.plugin_database.writer import EVENT_OVERHEAD, event_bytes, transaction
from restrike.pss.describe import describe
from restrike.pss.ingested import IngestedEvent
from restrike.pss.session import UdpSession
from tests.conftest import wait_for

from .conftest import MATCH_EXPECTED, ODD, Feed, match_datagrams, read, store


def test_events_are_stored_in_order_with_raw_text_and_details_under_their_own_id(db, feed):
    events = feed.events(ODD) + feed.datagram(base64.b64decode("cHQxO//+Mzs="))
    store(db, events)
    rows = read(db, "SELECT id, raw_data, is_valid, error_message, recognition_status, "
                    "event_sequence, parsed_data FROM pss_events_v2 ORDER BY id")
    assert [r[1] for r in rows] == [ev.raw for ev in events]
    assert [r[5] for r in rows] == [ev.seq for ev in events]
    by_raw = {r[1]: r for r in rows}
    # invalid ones are stored, flagged, with the parser's reason
    assert by_raw["pt1;9;"][2] == 0 and "point type" in by_raw["pt1;9;"][3]
    assert by_raw["hl2;abc;"][2] == 0
    assert by_raw["rst;"][4] == "unknown" and by_raw["rst;"][2] == 1
    assert by_raw["Udp Port 6000 connected;"][4] == "unknown"
    assert json.loads(by_raw["pt2;5"][6])["description"].startswith("Red scores 5")
    # every event's details sit under its own row id
    for (event_id, *_), ev in zip(rows, events, strict=True):
        details = dict(read(db, "SELECT detail_key, detail_value FROM pss_event_details "
                                "WHERE event_id = ?", (event_id,)))
        assert details["source_ip"] == ev.source_ip
        assert details["index"] == str(ev.index)
        if ev.event.type == "points":
            assert details["point_type"] == str(ev.event.point_type)
        if ev.event.type == "hit_level":
            assert details["level"] == str(ev.event.level)
    glued = [r for r in rows if r[1].startswith("hl")][:2]  # the glued pair
    levels = [read(db, "SELECT detail_value, detail_type FROM pss_event_details WHERE "
                       "event_id = ? AND detail_key = 'level'", (r[0],))[0] for r in glued]
    assert levels == [("50", "int"), ("40", "int")]
    # bytes that are not UTF-8 keep their exact value in raw_b64
    last_id = rows[-1][0]
    assert read(db, "SELECT detail_value FROM pss_event_details WHERE event_id = ? AND "
                    "detail_key = 'raw_b64'", (last_id,)) == [("cHQxO//+Mzs=",)]
    stats = db.writer.stats()
    assert stats["stored"] == len(events) and stats["pending"] == 0 and stats["dropped"] == 0


def test_sql_in_a_name_is_stored_as_text(db, feed):
    store(db, feed.events(ODD[-2:]))
    raw = read(db, "SELECT raw_data FROM pss_events_v2 ORDER BY id")
    assert raw[-1] == ("wmh;Robert'); DROP TABLE pss_events_v2;--;2-0 PTF",)
    assert read(db, "SELECT short_name FROM pss_athletes ORDER BY id") == [
        ("N. O'BRIEN",), ("Z. ŻÓŁTY",)]
    name = read(db, "SELECT detail_value FROM pss_event_details WHERE detail_key = 'name'")
    assert name == [("Robert'); DROP TABLE pss_events_v2;--",)]


def test_what_flush_acknowledged_survives_closing_and_reopening(open_db, tmp_path, feed):
    first = open_db()
    events = feed.events(match_datagrams())
    for i in range(0, len(events), 7):
        assert first.writer.submit(events[i:i + 7])
    assert first.writer.flush(10.0)
    first.close()
    second = open_db(tmp_path / DB_FILE)
    assert read(second, "SELECT raw_data FROM pss_events_v2 ORDER BY id") == [
        (ev.raw,) for ev in events]
    assert read(second, "SELECT COUNT(DISTINCT event_id) FROM pss_event_details") == [
        (len(events),)]


@pytest.mark.sqlite_only(reason="reads the SQLite file with a second sqlite3 connection")
def test_a_committed_batch_is_on_disk_for_another_connection_without_closing(db, feed, tmp_path):
    store(db, feed.events(["pt1;3;", "pt2;1;"]))
    other = sqlite3.connect(tmp_path / DB_FILE)
    try:
        assert other.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0] == 2
    finally:
        other.close()


@pytest.mark.sqlite_only(reason="fills the SQLite file with max_page_count")
def test_disk_full_holds_the_batch_and_writes_it_in_order_when_space_returns(db, feed):
    store(db, feed.events(["hel;"]))
    pages = db.writer.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    db.writer.run(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    events = feed.events(match_datagrams() + [f"clk;1:{i % 60:02d}\r\n" for i in range(300)])
    half = len(events) // 2
    assert db.writer.submit(events[:half])
    assert db.writer.submit(events[half:])
    assert not db.writer.flush(0.3)  # not acknowledged while the disk is full
    stats = db.writer.stats()
    assert stats["held"] > 0 and stats["failed_writes"] >= 1
    assert "full" in stats["last_error"]
    assert read(db, "SELECT COUNT(*) FROM pss_events_v2") == [(1,)]
    # run() is not stuck behind the held batch: that is how space comes back here
    db.writer.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"), timeout=5.0)
    assert db.writer.flush(10.0)
    raws = read(db, "SELECT raw_data FROM pss_events_v2 ORDER BY id")
    assert raws[1:] == [(ev.raw,) for ev in events]
    stats = db.writer.stats()
    assert stats["held"] == 0 and stats["stored"] == len(events) + 1 and stats["dropped"] == 0
    # the match state was rebuilt from the retried events, not left from the failed attempts
    assert read(db, "SELECT match_number, blue_score, red_warnings, winner FROM pss_matches") == [
        ("101", 4, 1, "blue")]
    assert read(db, "SELECT COUNT(*) FROM pss_rounds") == [(3,)]
    assert read(db, "SELECT COUNT(*) FROM pss_events_v2 WHERE match_id IS NULL") == [(2,)]


def occupy_writer(db) -> tuple[threading.Event, threading.Thread]:
    """Keep the writer thread busy in a ``run`` call until the returned event is set."""
    release = threading.Event()
    started = threading.Event()
    blocker = threading.Thread(
        target=db.writer.run, args=(lambda c: (started.set(), release.wait(10)),))
    blocker.start()
    assert started.wait(5)
    return release, blocker


def test_a_full_queue_drops_whole_batches_counts_them_and_never_blocks(open_db, feed):
    db = open_db(queue_max_events=1000)
    release, blocker = occupy_writer(db)
    batch = feed.events(["clk;1:00\r\n"] * 400)
    # the writer is busy: 1600 > 1000
    accepted = [db.writer.submit(again(batch, n)) for n in range(4)]
    assert accepted == [True, True, False, False]
    stats = db.writer.stats()
    assert stats["dropped"] == 800 and stats["dropped_batches"] == 2 and stats["pending"] == 800
    release.set()
    blocker.join(5)
    assert db.writer.flush(10.0)
    assert read(db, "SELECT COUNT(*) FROM pss_events_v2") == [(800,)]
    assert db.writer.stats()["stored"] == 800


def test_a_queue_full_by_bytes_drops_whole_batches_and_counts_them(open_db, feed):
    # 100,000 events would fit by count; 60 kB messages fill 1 MiB after 16 of them.
    db, big = queue_of_two_batches(open_db, feed, "bytes")
    release, blocker = occupy_writer(db)
    assert len(big) == 8 and event_bytes(big) == 8 * (60_000 + EVENT_OVERHEAD)
    accepted = [db.writer.submit(again(big, n)) for n in range(3)]
    assert accepted == [True, True, False]
    stats = db.writer.stats()
    assert (stats["dropped"], stats["dropped_batches"], stats["full_bytes"]) == (8, 1, 1)
    assert stats["pending"] == 16 and stats["pending_bytes"] == 2 * event_bytes(big)
    assert stats["queue_max_bytes"] == 1024 * 1024
    release.set()
    blocker.join(5)
    assert db.writer.flush(10.0)
    assert read(db, "SELECT COUNT(*) FROM pss_events_v2") == [(16,)]
    assert db.writer.stats()["pending_bytes"] == 0


@pytest.mark.parametrize("bound", ["events", "bytes"])
def test_a_backlog_is_written_in_batches_bounded_by_events_and_by_bytes(open_db, feed, bound):
    # 16 datagrams of one message wait while the writer is busy; each transaction then takes as
    # many whole datagrams as fit both bounds: 3 by events (3+3+3+3+3+1), 2 by bytes (60 kB
    # messages, 2 in 128 KiB: 8 transactions).
    db = open_db(**({"batch_max_events": 3} if bound == "events"
                    else {"batch_max_bytes": 128 * 1024}))
    text = "clk;1:00\r\n" if bound == "events" else "x" * 60_000
    datagrams = [again(feed.events([text]), n) for n in range(16)]
    release, blocker = occupy_writer(db)
    batches = db.writer.stats()["batches"]
    assert all(db.writer.submit(datagram) for datagram in datagrams)
    release.set()
    blocker.join(5)
    assert db.writer.flush(10.0)
    assert db.writer.stats()["batches"] - batches == (6 if bound == "events" else 8)
    assert read(db, "SELECT COUNT(*) FROM pss_events_v2") == [(16,)]


def queue_of_two_batches(open_db, feed, bound: str):
    """A database whose writer queue holds two of the batch returned and not three, by its
    bound in events or in bytes."""
    if bound == "events":
        return open_db(queue_max_events=1000), feed.events(["clk;1:00\r\n"] * 400)
    return open_db(queue_max_bytes=1024 * 1024), feed.events(["x" * 60_000] * 8)


def again(events: list, times: int = 1) -> list:
    """The same messages once more, as later datagrams of the session (a real resend has new
    sequence numbers; the same ones would be the same events, stored once)."""
    return [dataclasses.replace(ev, seq=ev.seq + 1_000_000 * times) for ev in events]


@pytest.mark.parametrize("bound", ["events", "bytes"])
def test_a_full_queue_makes_submit_wait_for_room_while_the_writer_works(open_db, feed, bound):
    db, batch = queue_of_two_batches(open_db, feed, bound)
    release, blocker = occupy_writer(db)
    assert db.writer.submit(batch, wait=30) and db.writer.submit(again(batch), wait=30)
    outcome: list = []
    third = again(batch, 2)
    waiting = threading.Thread(target=lambda: outcome.append(db.writer.submit(third, wait=30)))
    waiting.start()
    wait_for(lambda: db.writer.stats()["waits"] == 1, 5, message="the third batch waits")
    assert outcome == [] and db.writer.stats()["pending"] == 2 * len(batch)
    assert db.writer.stats()["full_bytes"] == (bound == "bytes")
    release.set()  # the writer takes the queued batches: room for the waiting one
    waiting.join(10)
    assert outcome == [True]
    assert db.writer.flush(10.0)
    stats = db.writer.stats()
    assert stats["stored"] == 3 * len(batch) and stats["dropped"] == 0
    blocker.join(5)


def test_a_submit_waiting_for_room_gives_up_when_the_writer_closes(open_db, feed):
    db = open_db(queue_max_events=1000)
    release, blocker = occupy_writer(db)
    batch = feed.events(["clk;1:00\r\n"] * 600)
    assert db.writer.submit(batch, wait=30)
    outcome: list = []
    waiting = threading.Thread(target=lambda: outcome.append(db.writer.submit(batch, wait=30)))
    waiting.start()
    wait_for(lambda: db.writer.stats()["waits"] == 1, 5, message="the second batch waits")
    closer = threading.Thread(target=db.writer.close)
    closer.start()
    waiting.join(5)
    assert outcome == [False]  # refused at once, not after its 30 s
    release.set()
    closer.join(20)
    blocker.join(5)
    assert db.writer.stats()["dropped"] == 600 and db.writer.stats()["stored"] == 600


def test_run_returns_results_raises_errors_and_rolls_back_what_fn_left_open(db):
    assert db.writer.run(lambda c: c.execute("SELECT 41 + 1").fetchone()[0]) == 42
    with pytest.raises(ZeroDivisionError):
        db.writer.run(lambda c: 1 / 0)

    def leaves_open(conn):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO tournaments (name, duration_days, created_at, updated_at) "
                     "VALUES ('x', 1, 't', 't')")

    with pytest.raises(RuntimeError, match="transaction open"):
        db.writer.run(leaves_open)
    assert read(db, "SELECT COUNT(*) FROM tournaments") == [(0,)]
    # the writer still works afterwards
    assert db.writer.run(lambda c: c.in_transaction) is False


def test_run_times_out_without_running_when_the_writer_is_busy(db):
    release = threading.Event()
    started = threading.Event()
    blocker = threading.Thread(target=db.writer.run,
                               args=(lambda c: (started.set(), release.wait(10)),))
    blocker.start()
    assert started.wait(5)
    ran = []
    with pytest.raises(Unavailable):
        db.writer.run(lambda c: ran.append(1), timeout=0.05)
    release.set()
    blocker.join(5)
    assert db.writer.flush(5.0)
    assert ran == []


def test_an_event_that_cannot_be_processed_is_stored_bare_and_the_rest_normally(db, feed):
    class Broken:
        type = "points"

        def model_dump(self, **kwargs):
            raise ValueError("model cannot be dumped")

    good = feed.events(["pt1;3;", "pt2;2;"])
    bad = IngestedEvent("session-1", 99, 0, good[0].received_at, good[0].received_ns,
                        "10.0.0.5", 50000, "pt1;?;", None, Broken())
    store(db, [good[0], bad, good[1]])
    rows = read(db, "SELECT raw_data, is_valid, error_message FROM pss_events_v2 ORDER BY id")
    assert [r[0] for r in rows] == ["pt1;3;", "pt1;?;", "pt2;2;"]
    assert rows[1][1] == 0 and "model cannot be dumped" in rows[1][2]
    assert rows[0][1] == rows[2][1] == 1
    assert db.writer.stats()["stored"] == 3 and db.writer.stats()["lost"] == 0


def test_matches_rounds_scores_and_warnings_follow_the_feed(db, feed):
    events = feed.events(match_datagrams())
    store(db, events[:20])  # several batches: state carries over between transactions
    store(db, events[20:])
    (match,) = read(db, "SELECT id, match_number, phase, category, blue_score, red_score, "
                        "blue_warnings, red_warnings, current_round, winner, winner_name, "
                        "win_classification, status FROM pss_matches")
    e = MATCH_EXPECTED
    assert match[1:] == (e["match_number"], e["phase"], e["category"], e["blue_score"],
                         e["red_score"], e["blue_warnings"], e["red_warnings"],
                         e["current_round"], e["winner"], e["winner_name"],
                         e["win_classification"], e["status"])
    rounds = read(db, "SELECT round_number, blue_score, red_score, winner FROM pss_rounds "
                      "WHERE match_id = ? ORDER BY round_number", (match[0],))
    assert rounds == [(n, b, r, {"blue": 1, "red": 2}[w]) for n, b, r, w in e["rounds"]]
    scores = read(db, "SELECT r.round_number, s.athlete, s.points FROM pss_scores s "
                      "JOIN pss_rounds r ON r.id = s.round_id ORDER BY s.id")
    assert scores == [(n, {"blue": 1, "red": 2}[a], p) for n, a, p in e["scores"]]
    assert read(db, "SELECT athlete, warnings FROM pss_warnings") == [(2, 1)]
    athletes = read(db, "SELECT ma.athlete_position, a.short_name, a.country_code FROM "
                        "pss_match_athletes ma JOIN pss_athletes a ON a.id = ma.athlete_id "
                        "ORDER BY ma.athlete_position")
    assert athletes == [(1, "K. ARSLAN", "TUR"), (2, "J. MORENO", "ESP")]
    # every event from FightLoaded on belongs to the match; "hel;" came before it
    assert read(db, "SELECT match_id FROM pss_events_v2 ORDER BY id LIMIT 2") == [
        (None,), (match[0],)]
    score_event = read(db, "SELECT e.raw_data FROM pss_scores s JOIN pss_events_v2 e "
                           "ON e.id = s.event_id ORDER BY s.id")
    assert score_event == [("pt1;3",), ("pt2;2",), ("pt1;4",)]


def test_each_fight_loaded_starts_a_match_per_source(db):
    court1 = Feed("s", ("10.0.0.1", 6001))
    court2 = Feed("s", ("10.0.0.2", 6001))
    store(db, court1.events(match_datagrams("1")) + court2.events(match_datagrams("2")))
    store(db, court1.events(match_datagrams("3")))
    assert read(db, "SELECT match_number, source_ip FROM pss_matches ORDER BY id") == [
        ("1", "10.0.0.1"), ("2", "10.0.0.2"), ("3", "10.0.0.1")]
    counts = read(db, "SELECT m.match_number, COUNT(e.id) FROM pss_matches m JOIN "
                      "pss_events_v2 e ON e.match_id = m.id GROUP BY m.id ORDER BY m.id")
    per_match = len(match_datagrams()) - 1  # all but "hel;"
    # court 1's second "hel;" comes before its FightLoaded: it still belongs to match 1
    assert counts == [("1", per_match + 1), ("2", per_match), ("3", per_match)]


def test_the_shared_fixture_match_reaches_its_expected_state(db, shared_dir):
    fixture = shared_dir / "fixtures" / "match_basic.jsonl"
    if not fixture.exists():
        pytest.skip("shared fixtures not available")
    expected = json.loads((shared_dir / "fixtures" / "match_basic.expect.json").read_text())
    lines = [json.loads(line) for line in fixture.read_text(encoding="utf-8").splitlines()]
    store(db, Feed().events([line["datagram"] for line in lines]))
    (match,) = read(db, "SELECT id, match_number, blue_score, red_score, blue_warnings, "
                        "red_warnings, current_round, winner, winner_name, win_classification "
                        "FROM pss_matches")
    assert match[1:] == (
        expected["match_number"], expected["current_scores"]["blue"],
        expected["current_scores"]["red"], expected["warnings"]["blue"],
        expected["warnings"]["red"], expected["round"], expected["winner_side"].lower(),
        expected["winner_name"], expected["classification"])
    rounds = read(db, "SELECT blue_score, red_score, winner FROM pss_rounds WHERE match_id = ? "
                      "ORDER BY round_number", (match[0],))
    assert rounds == list(zip(expected["round_scores"]["blue"], expected["round_scores"]["red"],
                              expected["round_winners"], strict=True))


def test_sessions_and_senders_are_counted(db):
    db.writer.submit_session(UdpSession(
        session_id="sim-1", bind="127.0.0.1", port=6000, started_at="2026-11-28T12:00:00.000000Z",
        stopped_at=None, simulated=True, status="running", packets_received=0))
    a = Feed("sim-1", ("127.0.0.1", 40001))
    b = Feed("sim-1", ("127.0.0.1", 40002))
    store(db, a.events(["pt1;3;", "clk;2:00;start\r\nsc1;0;sc2;0\r\n"]) + b.events(["rst;"]))
    db.writer.submit_session(UdpSession(
        session_id="sim-1", bind="127.0.0.1", port=6000, started_at="2026-11-28T12:00:00.000000Z",
        stopped_at="2026-11-28T12:05:00.000000Z", simulated=True, status="stopped",
        packets_received=3))
    assert db.writer.flush(5.0)
    (session,) = read(db, "SELECT is_simulated, status, stopped_at, events_stored, "
                          "packets_received, unknown_events, counters FROM udp_server_sessions")
    assert session[:6] == (1, "stopped", "2026-11-28T12:05:00.000000Z", 4, 3, 1)
    assert json.loads(session[6])["packets_received"] == 3
    clients = read(db, "SELECT source_port, packets, events FROM udp_client_connections "
                       "ORDER BY source_port")
    assert clients == [(40001, 2, 3), (40002, 1, 1)]


@pytest.mark.sqlite_only(reason="fails writes with SQLite's max_page_count")
def test_closing_with_a_write_still_failing_counts_the_events_as_lost(open_db, feed):
    db = open_db(close_timeout=0.3)
    store(db, feed.events(["hel;"]))
    pages = db.writer.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    db.writer.run(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    assert db.writer.submit(feed.events(["clk;1:00\r\n"] * 200))
    assert not db.writer.flush(0.2)
    db.close()
    stats = db.writer.stats()
    assert stats["lost"] == 200 and stats["stored"] == 1
    assert not db.writer.submit(feed.events(["pt1;1;"]))  # closed: refused and counted
    assert db.writer.stats()["dropped"] == 1


@pytest.mark.sqlite_only(reason="PRAGMA synchronous is SQLite's")
def test_config_reaches_the_connection_and_the_archiver(open_db):
    db = open_db(synchronous="FULL", auto_archive_days=30)
    assert db.writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2
    assert db.auto_archiver is not None and db.auto_archiver.days_old == 30
    plain = open_db(Path(db.path).with_name("other.db"))
    assert plain.writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 1
    assert plain.auto_archiver is None


def test_a_bad_config_section_stops_start_up_naming_it(make_app):
    from restrike.host.hooks import StartupError

    from .conftest import DATABASE_ONLY

    app = make_app(builtins=DATABASE_ONLY, config={"database": {"synchronous": "SOMETIMES"}})
    with pytest.raises(StartupError, match=r"database.*synchronous"):
        app.start()
    assert "database" not in app.extensions


# -- ids, the fast path's equivalence, foreign keys, migrations 2-3 -----------------------------

FAR_FUTURE = "2100-01-01T00:00:00Z"


def event_ids(db) -> list[int]:
    return [r[0] for r in read(db, "SELECT id FROM pss_events_v2 ORDER BY id")]


@pytest.mark.sqlite_only(reason="SQLite's sqlite_sequence; PostgreSQL's ids come from a sequence "
                                "that never goes back")
def test_new_ids_never_take_an_archived_one_so_a_restore_never_conflicts(db, feed):
    from restrike.plugins.plugin_database import archive

    first = feed.events(match_datagrams())
    store(db, first)
    archived = event_ids(db)
    assert db.writer.run(lambda c: archive.archive_old_events(c, 0, now=FAR_FUTURE)) == len(first)
    assert event_ids(db) == []
    # Even with the sequence gone (a rebuilt table), ids stay above the archived ones.
    db.writer.run(lambda c: c.execute("DELETE FROM sqlite_sequence WHERE name = 'pss_events_v2'"))
    second = feed.events(["pt1;3;", "clk;1:00;start\r\nsc1;0;sc2;0\r\n"])
    store(db, second)
    new = event_ids(db)
    assert len(new) == len(second) and min(new) > max(archived)
    restored = db.writer.run(
        lambda c: archive.restore_from_archive(c, "2000-01-01", "2100-01-01"))
    assert restored == len(first)
    assert event_ids(db) == sorted(archived + new)
    # every event still has its own details, and later events go above all of them
    assert read(db, "SELECT COUNT(DISTINCT event_id) FROM pss_event_details") == [
        (len(first) + len(second),)]
    store(db, feed.events(["bye;"]))
    assert event_ids(db)[-1] == max(archived + new) + 1


def test_ids_interleave_with_rows_other_writers_insert(db, feed):
    store(db, feed.events(["hel;"]))

    def plain_insert(conn):  # what a run() function may do: let AUTOINCREMENT choose
        with transaction(conn):
            return conn.execute(
                "INSERT INTO pss_events_v2 (session_id, event_type_id, timestamp, raw_data, "
                "event_sequence, is_valid, created_at, recognition_status) "
                "SELECT session_id, event_type_id, timestamp, 'x;', 0, 1, created_at, 'unknown' "
                "FROM pss_events_v2 LIMIT 1 RETURNING id").fetchone()[0]

    other = db.writer.run(plain_insert)
    store(db, feed.events(["pt1;3;", "pt2;1;"]))
    assert event_ids(db) == [other - 1, other, other + 1, other + 2]
    assert db.writer.run(plain_insert) == other + 3  # sqlite_sequence followed the writer


def reference_rows(ev, match_round, match_clock) -> tuple[str, set]:
    """parsed_data and details of an event as the writer stored them before it was optimised:
    model_dump, json.dumps, one detail per field (the fast path must give the same)."""
    data = ev.event.model_dump(mode="json")
    parsed = {k: v for k, v in data.items() if v is not None and k != "raw"}
    parsed["description"] = describe(ev.event)
    parsed["match_round"] = match_round
    parsed["match_clock"] = match_clock

    def typed(value):
        if isinstance(value, bool):
            return ("true" if value else "false"), "bool"
        if isinstance(value, int):
            return str(value), "int"
        if isinstance(value, str):
            return value, "str"
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")), "json"

    details = {(k, *typed(v)) for k, v in data.items()
               if v is not None and k not in ("type", "code", "raw")}
    details |= {("source_ip", ev.source_ip, "str"), ("source_port", str(ev.source_port), "int"),
                ("index", str(ev.index), "int")}
    if ev.raw_b64 and ev.index == 0:  # the datagram's bytes, on its first message only
        details.add(("raw_b64", ev.raw_b64, "str"))
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":")), details


def test_parsed_data_and_details_are_what_the_model_says_through_every_cache_path(db):
    from restrike.plugins.plugin_udp.simulator import sender_datagrams

    # A small shape cache, so this feed also goes through misses, hits and clears.
    db.writer._store.shapes._max_size = 40
    courts = [Feed("sim", (f"10.0.0.{c + 1}", 6000)) for c in range(3)]
    events = []
    for court, court_feed in enumerate(courts):
        events += court_feed.events(sender_datagrams(3, court, 1))
    odd = Feed("sim", ("10.0.0.9", 7000))
    events += odd.events(ODD) + odd.datagram(base64.b64decode("cHQxO//+Mzs="))
    events += odd.datagram(b"pt2;\xff1;\r\nsc1;0;sc2;1\r\n")  # two messages, not UTF-8
    events += odd.events(['zz;\x01\x1f"\\é€😀\u2028;tab\there;', "Udp Port 6000 connected;"])
    store(db, events[:len(events) // 2])
    store(db, events[len(events) // 2:] + again(events[:50]))  # repeats: cache hits, new ids
    events += events[:50]
    rows = read(db, "SELECT id, raw_data, parsed_data FROM pss_events_v2 ORDER BY id")
    assert [r[1] for r in rows] == [ev.raw for ev in events]
    stored = {}
    for event_id, key, value, kind in read(
            db, "SELECT event_id, detail_key, detail_value, detail_type FROM pss_event_details"):
        stored.setdefault(event_id, set()).add((key, value, kind))
    matches: dict = {}  # per sender: [round, clock] of its current match (tracking.py's rules)
    for (event_id, _, parsed), ev in zip(rows, events, strict=True):
        key, kind = (ev.session_id, ev.source_ip, ev.source_port), ev.event.type
        if kind == "fight_loaded" or (key not in matches and kind in ("athletes", "match_config")):
            matches[key] = [None, None]
        if key in matches and kind in ("round", "clock"):
            matches[key][kind == "clock"] = ev.event.round if kind == "round" else ev.event.clock
        text, details = reference_rows(ev, *matches.get(key, (None, None)))
        assert parsed == text, ev.raw
        assert stored[event_id] == details, ev.raw


def test_json_text_is_json_dumps_for_every_code_point():
    from restrike.plugins.plugin_database.rows import json_text as _json

    for start in range(0, 0x110000, 0x1000):
        chars = "".join(chr(c) for c in range(start, start + 0x1000)
                        if not 0xD800 <= c <= 0xDFFF)
        value = {"s": chars, "n": [1, -2, 2**70, True, None], "d": {"1": chars[:7]}}
        assert _json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert _json({"f": 1e16}) == '{"f":1e+16}'  # floats: json.dumps's spelling


def test_a_batch_naming_a_deleted_match_is_stored_by_the_careful_path_without_dangling_ids(
        db, feed):
    events = feed.events(match_datagrams())
    store(db, events[:15])
    (match_id,) = read(db, "SELECT id FROM pss_matches")[0]
    # The match row goes away behind the tracker's back (its events keep no match, FK rules).
    db.writer.run(lambda c: c.execute("DELETE FROM pss_matches WHERE id = ?", (match_id,)))
    store(db, events[15:])
    assert read(db, "SELECT raw_data FROM pss_events_v2 ORDER BY id") == [
        (ev.raw,) for ev in events]
    stats = db.writer.stats()
    assert stats["stored"] == len(events) and stats["lost"] == 0
    assert "foreign key" in stats["last_error"].lower()  # either backend's wording
    assert read(db, "SELECT COUNT(*) FROM pss_events_v2 WHERE match_id IS NOT NULL AND "
                    "match_id NOT IN (SELECT id FROM pss_matches)") == [(0,)]
    if db.backend == "sqlite":  # PostgreSQL's foreign keys never let a dangling id in
        assert db.writer.run(lambda c: c.execute("PRAGMA foreign_key_check").fetchall()) == []


@pytest.mark.sqlite_only(reason="PostgreSQL's foreign keys are never off")
def test_run_functions_always_find_foreign_keys_on(db, feed):
    def foreign_keys(conn):
        return conn.execute("PRAGMA foreign_keys").fetchone()[0]

    store(db, feed.events(["pt1;3;"]))
    assert db.writer.run(foreign_keys) == 1
    db.writer.run(lambda c: c.execute("PRAGMA foreign_keys=OFF"))  # a function may change it
    store(db, feed.events(["pt2;3;"]))
    assert db.writer.run(foreign_keys) == 1
    with pytest.raises(sqlite3.IntegrityError):  # and SQLite enforces them in it
        db.writer.run(lambda c: c.execute(
            "INSERT INTO pss_event_details VALUES (999999, 'k', 'v', 'str', 't')"))


def test_session_first_and_last_event_follow_arrival_order_across_senders(db):
    a = Feed("s1", ("10.0.0.1", 6000))
    b = Feed("s1", ("10.0.0.2", 6000))
    first = b.events(["hel;"])
    middle = a.events(["pt1;3;", "clk;1:00\r\nsc1;0;sc2;0\r\n"])
    last = b.events(["bye;"])
    store(db, first + middle + last)
    assert read(db, "SELECT first_event_at, last_event_at, events_stored, packets_received "
                    "FROM udp_server_sessions") == [
        (first[0].received_at, last[0].received_at, 5, 4)]
    assert read(db, "SELECT source_ip, first_seen, last_seen, packets, events, bytes FROM "
                    "udp_client_connections ORDER BY source_ip") == [
        ("10.0.0.1", middle[0].received_at, middle[-1].received_at, 2, 3,
         sum(len(ev.raw.encode()) for ev in middle)),
        ("10.0.0.2", first[0].received_at, last[0].received_at, 2, 2, 4 + 4)]


def test_processing_time_is_stored_from_the_receivers_clock_only(db, feed):
    """processing_time_ms is the insert reading minus the receive reading of one clock, however
    long ago the event was received (no cut-off that depends on the machine's uptime); an event
    with no receive reading (0 or None) stores NULL."""
    before = clock_ns()
    fresh = feed.events(["pt1;3;"])
    # received 1 ns after boot: a reading of the same clock, so its duration is real, however
    # long the machine has been up
    since_boot = [dataclasses.replace(ev, received_ns=1) for ev in feed.events(["pt2;1;"])]
    none = [dataclasses.replace(ev, received_ns=missing)
            for missing, ev in zip((0, None), feed.events(["pt2;2;", "pt2;3;"]), strict=True)]
    submitted = clock_ns()
    store(db, fresh + since_boot + none)
    after = clock_ns()
    stored = [ms for (ms,) in read(db, "SELECT processing_time_ms FROM pss_events_v2 ORDER BY id")]
    assert before <= fresh[0].received_ns <= submitted

    def between(ms, low_ns, high_ns):  # stored to the microsecond
        return low_ns / 1e6 - 0.001 <= ms <= high_ns / 1e6 + 0.001

    assert between(stored[0], submitted - fresh[0].received_ns, after - fresh[0].received_ns)
    assert between(stored[1], submitted - 1, after - 1)
    assert stored[2:] == [None, None]


def test_version_1_files_get_the_new_details_tables_with_every_row(tmp_path, feed):
    from restrike.plugins.plugin_database.maintenance import connect_writer
    from restrike.plugins.plugin_database.migrations import apply_migrations, current_version
    from restrike.plugins.plugin_database.schema import MIGRATIONS

    conn = connect_writer(str(tmp_path / "old.db"))
    try:
        apply_migrations(conn, MIGRATIONS[:1])
        conn.execute("INSERT INTO udp_server_sessions (session_id, started_at, updated_at) "
                     "VALUES ('s', 't', 't')")
        conn.execute("INSERT INTO pss_events_v2 (session_id, event_type_id, timestamp, "
                     "raw_data, event_sequence, is_valid, created_at, recognition_status) "
                     "VALUES ('s', 1, 't', 'pt1;3', 1, 1, 't', 'recognized')")
        before = [("point_type", "3", "int", "t"), ("source_ip", "10.0.0.1", "str", "t")]
        conn.executemany("INSERT INTO pss_event_details VALUES (1, ?, ?, ?, ?)", before)
        conn.executemany("INSERT INTO pss_event_details_archive VALUES (7, ?, ?, ?, ?)", before)
        latest = MIGRATIONS[-1].version
        assert apply_migrations(conn) == latest and current_version(conn) == latest
        for table, event_id in (("pss_event_details", 1), ("pss_event_details_archive", 7)):
            assert [tuple(r) for r in conn.execute(
                f"SELECT detail_key, detail_value, detail_type, created_at FROM {table} "
                "WHERE event_id = ? ORDER BY detail_key", (event_id,))] == before
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)
                               ).fetchone()[0]
            assert "WITHOUT ROWID" in sql and " IN (" not in sql
            with pytest.raises(sqlite3.IntegrityError):  # the CHECK still holds
                conn.execute(f"INSERT INTO {table} VALUES (1, 'k', 'v', 'text', 't')")
        with pytest.raises(sqlite3.IntegrityError):  # and the foreign key
            conn.execute("INSERT INTO pss_event_details VALUES (2, 'k', 'v', 'str', 't')")
    finally:
        conn.close()


def test_two_models_with_the_same_raw_text_keep_their_own_fields(db, feed):
    from restrike.pss.protocol import Points

    (real,) = feed.events(["pt1;3;"])
    twin = dataclasses.replace(real, seq=real.seq + 1, event=Points(
        code="pt1", raw=real.raw, athlete=1, point_type=4))  # built by hand, not parsed
    store(db, [real, twin, *again([real])])
    points = read(db, "SELECT detail_value FROM pss_event_details WHERE detail_key = "
                      "'point_type' ORDER BY event_id")
    assert points == [("3",), ("4",), ("3",)]
    described = [json.loads(r[0])["description"] for r in read(
        db, "SELECT parsed_data FROM pss_events_v2 ORDER BY id")]
    assert described == [describe(real.event), describe(twin.event), describe(real.event)]


def test_a_match_ended_and_replaced_within_one_batch_keeps_its_final_state(db):
    court = Feed("s", ("10.0.0.1", 6001))
    store(db, court.events(match_datagrams("1")[:20]))
    # one batch: the end of match 1, then match 2 loaded on the same court (a deep queue)
    store(db, court.events(match_datagrams("1")[20:] + match_datagrams("2")[:5]))
    e = MATCH_EXPECTED
    assert read(db, "SELECT match_number, status, winner, winner_name, blue_score, red_score, "
                    "red_warnings, current_round FROM pss_matches ORDER BY id") == [
        ("1", "finished", e["winner"], e["winner_name"], e["blue_score"], e["red_score"],
         e["red_warnings"], e["current_round"]),
        ("2", "loaded", None, None, 0, 0, 0, None)]
    (first,) = read(db, "SELECT MIN(id) FROM pss_matches")[0]
    assert read(db, "SELECT round_number, winner FROM pss_rounds WHERE match_id = ? "
                    "ORDER BY round_number", (first,)) == [(1, 1), (2, 2), (3, 1)]


def test_the_match_rows_say_what_the_live_scoreboard_says(db):
    # One match-state model: tracking keeps the domain's MatchState, no state class of its own.
    from restrike.plugins.plugin_database import tracking
    from restrike.plugins.plugin_udp.simulator import sender_datagrams
    from restrike.pss.match import MatchState

    own = [name for name, value in vars(tracking).items()
           if isinstance(value, type) and value.__module__ == tracking.__name__
           and "State" in name]
    assert own == [] and tracking.MatchState is MatchState
    live = MatchState()
    feed = Feed("sim-live")
    for data in sender_datagrams(11, 0, 2):  # two whole matches, from the same source
        events = feed.datagram(data)
        for ev in events:
            live.apply(ev.event, ev.received_ns, ev.received_at)
        store(db, events)
    shown = live.snapshot()
    (row,) = read(db, "SELECT status, current_round, clock, blue_score, red_score, "
                      "blue_warnings, red_warnings, winner, winner_name, match_number "
                      "FROM pss_matches ORDER BY id DESC LIMIT 1")
    assert row == (shown["status"], shown["round"], shown["clock"]["text"],
                   shown["current_scores"]["blue"], shown["current_scores"]["red"],
                   shown["warnings"]["blue"], shown["warnings"]["red"],
                   (shown["winner"]["side"] or "").lower() or None, shown["winner"]["name"],
                   shown["match"]["number"])
    rounds = read(db, "SELECT blue_score, red_score, winner FROM pss_rounds WHERE match_id = "
                      "(SELECT MAX(id) FROM pss_matches) ORDER BY round_number")
    assert [r[:2] for r in rounds] == list(zip(shown["round_scores"]["blue"],
                                               shown["round_scores"]["red"], strict=True))
    assert [r[2] or 0 for r in rounds] == shown["round_winners"][:len(rounds)]


def test_the_writer_leaves_no_reference_cycles_behind(db, feed):
    # The app runs the collector's full pass rarely (host.cli.tune_gc: after some 100 million
    # allocations), so whatever the writer leaves in reference cycles stays in memory for hours:
    # the match tracker's snapshot of each batch and the matches it saved pointed to each other,
    # and every replaced match kept a copy of its whole state (the app grew by ~100 MB per
    # million events). Two matches from one source, a batch per datagram, as a live feed comes.
    gc.collect()
    gc.disable()
    try:
        for _ in range(2):
            for datagram in match_datagrams():
                store(db, feed.datagram(datagram))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = sorted({type(o).__name__ for o in gc.garbage
                       if type(o).__module__.startswith("restrike")})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
    assert read(db, "SELECT COUNT(*) FROM pss_matches") == [(2,)]
