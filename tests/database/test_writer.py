"""The single writer on real SQLite files: order, raw text, details ids, durability, disk full,
a full queue, run(), and the match state it keeps."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from host.errors import Unavailable
from plugins.plugin_database.service import DB_FILE
from plugins.plugin_udp.ingested import IngestedEvent

from .conftest import MATCH_EXPECTED, Feed, match_datagrams, read, store

ODD = [
    "pt1;3;",
    "pt2;5\r\n",
    "hl1;50hl2;40\r\n",
    "clk;2:00;start\r\nsc1;0;sc2;0\r\n",
    "rst;",
    "Udp Port 6000 connected;",
    "pt1;9;",
    "hl2;abc;",
    "",
    "at1;N. O'BRIEN;Niamh O'BRIEN;IRL;at2;Z. ŻÓŁTY;Zofia ŻÓŁTY;POL;",
    "wmh;Robert'); DROP TABLE pss_events_v2;--;2-0 PTF",
]


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
    for (event_id, raw, *_), ev in zip(rows, events):
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


def test_a_committed_batch_is_on_disk_for_another_connection_without_closing(db, feed, tmp_path):
    store(db, feed.events(["pt1;3;", "pt2;1;"]))
    other = sqlite3.connect(tmp_path / DB_FILE)
    try:
        assert other.execute("SELECT COUNT(*) FROM pss_events_v2").fetchone()[0] == 2
    finally:
        other.close()


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


def test_a_full_queue_drops_whole_batches_counts_them_and_never_blocks(open_db, feed):
    db = open_db(queue_max_events=1000)
    release = threading.Event()
    started = threading.Event()
    blocker = threading.Thread(
        target=db.writer.run, args=(lambda c: (started.set(), release.wait(10)),))
    blocker.start()
    assert started.wait(5)
    batch = feed.events(["clk;1:00\r\n"] * 400)
    accepted = [db.writer.submit(batch) for _ in range(4)]  # the writer is busy: 1600 > 1000
    assert accepted == [True, True, False, False]
    stats = db.writer.stats()
    assert stats["dropped"] == 800 and stats["dropped_batches"] == 2 and stats["pending"] == 800
    release.set()
    blocker.join(5)
    assert db.writer.flush(10.0)
    assert read(db, "SELECT COUNT(*) FROM pss_events_v2") == [(800,)]
    assert db.writer.stats()["stored"] == 800


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
                              expected["round_winners"]))


def test_sessions_and_senders_are_counted(db):
    db.writer.submit_session({"session_id": "sim-1", "bind": "127.0.0.1", "port": 6000,
                              "started_at": "2026-11-28T12:00:00.000000Z", "stopped_at": None,
                              "simulated": True, "status": "running", "packets_received": 0})
    a = Feed("sim-1", ("127.0.0.1", 40001))
    b = Feed("sim-1", ("127.0.0.1", 40002))
    store(db, a.events(["pt1;3;", "clk;2:00;start\r\nsc1;0;sc2;0\r\n"]) + b.events(["rst;"]))
    db.writer.submit_session({"session_id": "sim-1", "bind": "127.0.0.1", "port": 6000,
                              "started_at": "2026-11-28T12:00:00.000000Z",
                              "stopped_at": "2026-11-28T12:05:00.000000Z", "simulated": True,
                              "status": "stopped", "packets_received": 3})
    assert db.writer.flush(5.0)
    (session,) = read(db, "SELECT is_simulated, status, stopped_at, events_stored, "
                          "packets_received, unknown_events, counters FROM udp_server_sessions")
    assert session[:6] == (1, "stopped", "2026-11-28T12:05:00.000000Z", 4, 3, 1)
    assert json.loads(session[6]) == {"packets_received": 3}
    clients = read(db, "SELECT source_port, packets, events FROM udp_client_connections "
                       "ORDER BY source_port")
    assert clients == [(40001, 2, 3), (40002, 1, 1)]


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


def test_config_reaches_the_connection_and_the_archiver(open_db):
    db = open_db(synchronous="FULL", auto_archive_days=30)
    assert db.writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2
    assert db.auto_archiver is not None and db.auto_archiver.days_old == 30
    plain = open_db(Path(db.path).with_name("other.db"))
    assert plain.writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 1
    assert plain.auto_archiver is None


def test_a_bad_config_section_stops_start_up_naming_it(make_app):
    from host.hooks import StartupError

    from .conftest import DATABASE_ONLY

    app = make_app(builtins=DATABASE_ONLY, config={"database": {"synchronous": "SOMETIMES"}})
    with pytest.raises(StartupError, match="database.*synchronous"):
        app.start()
    assert "database" not in app.extensions
