"""Courts (issue 13): the court of sessions and matches, the natural key of events, the live
view ``get_courts`` and its ``courts_changed`` push, on real SQLite files."""

from __future__ import annotations

import socket
import threading

import pytest

from restrike.plugins.plugin_database import courts as courts_module
from restrike.plugins.plugin_database.service import DatabaseConfig
from tests.cli import assert_one_line, run_cli
from tests.conftest import wait_for
from tests.database.conftest import DATABASE_ONLY, Feed, call, match_datagrams, read, store


def test_sessions_and_matches_carry_the_court_and_get_courts_shows_each_courts_match(
        open_db, tmp_path):
    path = tmp_path / "shared.db"
    halves = {"Court 1": (match_datagrams("101"), 20), "Court 2": (match_datagrams(
        "202", blue=("A. BLUE", "Anna BLUE", "GER"), red=("R. RED", "Rita RED", "FRA")), 999)}
    for court, (datagrams, upto) in halves.items():  # one instance after the other, one file
        db = open_db(path, court=court)
        store(db, Feed(f"session-{court}").events(datagrams[:upto]))
        db.close()
    db = open_db(path, court="Court 1")
    assert read(db, "SELECT court, COUNT(*) FROM udp_server_sessions GROUP BY court "
                    "ORDER BY court") == [
        ("Court 1", 1), ("Court 2", 1)]
    assert read(db, "SELECT court, match_number FROM pss_matches ORDER BY id") == [
        ("Court 1", "101"), ("Court 2", "202")]
    with db.pool.connection() as conn:
        view = courts_module.courts(conn, "Court 1", 30.0)
    assert [c["court"] for c in view["courts"]] == ["Court 1", "Court 2"]
    one, two = view["courts"]
    assert one["local"] and not two["local"]
    assert one["health"] == "connected" and one["spool_depth"] == 0
    m1 = one["match"]
    # the first 20 datagrams: round 1 running, blue 3 (sc1;3;sc2;0), red one gam-jeom
    assert (m1["number"], m1["status"], m1["round"], m1["clock"]) == ("101", "running", 1, "1:58")
    assert m1["scores"] == {"blue": 3, "red": 0} and m1["warnings"] == {"blue": 0, "red": 1}
    assert m1["athletes"]["blue"] == {"short": "K. ARSLAN", "long": "Kerem ARSLAN",
                                      "country": "TUR"}
    assert m1["winner"] is None
    m2 = two["match"]
    assert (m2["status"], m2["scores"], m2["athletes"]["red"]["country"]) == (
        "finished", {"blue": 4, "red": 0}, "FRA")
    assert m2["winner"] == {"side": "blue", "name": "A. BLUE", "classification": "2-1 PTF"}
    with db.pool.connection() as conn:  # long after the last event: silent
        later = courts_module.courts(conn, "Court 1", 30.0, now="2999-01-01T00:00:00.000000Z")
    assert {c["health"] for c in later["courts"]} == {"silent"}


def test_an_event_is_stored_once_per_session_sequence_and_index(db):
    feed = Feed("key-session")
    events = feed.events(["pt1;3;\r\nsc1;3;sc2;0\r\n", "clk;1:59"])
    store(db, events)
    store(db, events)  # the same batch again (a resend): its events are there already
    rows = read(db, "SELECT event_sequence, datagram_index, raw_data FROM pss_events_v2 "
                    "ORDER BY id")
    assert rows == [(1, 0, "pt1;3;"), (1, 1, "sc1;3;sc2;0"), (2, 0, "clk;1:59")]


def test_tournament_statistics_filter_by_court(open_db, tmp_path):
    path = tmp_path / "two.db"
    for court, number in (("A", "1"), ("B", "2")):
        db = open_db(path, court=court)
        store(db, Feed(f"s-{court}").events(match_datagrams(number)))
        db.close()
    db = open_db(path)
    with db.pool.connection() as conn:
        from restrike.plugins.plugin_database.statistics import tournament_statistics
        assert tournament_statistics(conn, None, None)["matches"] == 2
        assert tournament_statistics(conn, None, None, court="A")["matches"] == 1
        assert tournament_statistics(conn, None, None, court="C")["matches"] == 0


@pytest.mark.parametrize("name, reason", [("", "must not be empty"),
                                          ("x" * 65, "at most 64 characters"),
                                          ("Court\x071", "printable")])
def test_a_bad_court_name_is_refused_naming_the_field(name, reason, tmp_path):
    with pytest.raises(ValueError, match=reason):
        DatabaseConfig(court=name)
    assert_one_line(run_cli("--headless", "--data-dir", str(tmp_path), "--court", name),
                    "--court", reason)


def test_the_default_court_is_the_host_name():
    assert DatabaseConfig().court == socket.gethostname()[:64].strip()


def test_get_courts_answers_through_the_registry_and_commits_push_courts_changed(make_app):
    app = make_app(builtins=DATABASE_ONLY, config={"database": {"court": "Mat 3",
                                                                "pool_max_size": 4}})
    seen: list = []
    got = threading.Event()

    def sink(batch):
        if any(item["event"] == courts_module.PUSH for item in batch):
            seen.append(batch)
            got.set()

    app.push.add_sink("test", sink, max_pending=100)
    app.start()
    assert call(app, "get_courts")["courts"] == []
    service = app.extensions["database"]
    store(service, Feed("mat-3").events(match_datagrams("7")[:12]))
    wait_for(got.is_set, 10, message="a courts_changed push after the commit")
    (court,) = call(app, "get_courts")["courts"]
    assert (court["court"], court["match"]["number"], court["health"]) == ("Mat 3", "7",
                                                                           "connected")


def test_the_notifier_emits_the_last_change_after_a_burst():
    emitted = threading.Semaphore(0)
    notifier = courts_module.ChangeNotifier(emitted.release, min_interval=0.2).start()
    try:
        for _ in range(1000):
            notifier.changed()
        assert emitted.acquire(timeout=5)
        wait_for(lambda: notifier.emitted >= 1 and not notifier._changed.is_set(), 5)
        assert notifier.emitted <= 2 < notifier.signals  # coalesced, none lost at the end
    finally:
        notifier.stop()


def test_a_results_desk_with_no_udp_binds_no_udp_port_and_shows_the_courts(open_db, tmp_path):
    """``restrike --headless --no-udp``, a real subprocess on a file a court wrote: no UDP
    socket at all, ``get_courts`` shows that court's match, starting UDP is refused."""
    import httpx
    import psutil

    from restrike.plugins.plugin_database.service import DB_FILE
    from tests.cli import TOKEN, start_headless, stop

    data = tmp_path / "desk"
    data.mkdir()
    court = open_db(data / DB_FILE, court="Court 9")
    store(court, Feed("court-9").events(match_datagrams("909")))
    court.close()
    # the court's database: its file in the desk's data dir, or its PostgreSQL database (the
    # test server has no password, so the displayed URL is the URL)
    where = [] if court.url is None else ["--database-url", court.url.display]
    proc, base = start_headless(data, "--no-udp", "--log-level", "WARNING", *where)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.post(f"{base}/api/invoke/get_courts", json=[], headers=headers,
                            timeout=10).json()
        (shown,) = answer["courts"]
        assert (shown["court"], shown["local"]) == ("Court 9", False)
        assert shown["match"]["number"] == "909" and shown["match"]["status"] == "finished"
        assert shown["match"]["winner"]["side"] == "blue"
        assert [c for c in psutil.Process(proc.pid).net_connections(kind="udp")] == []
        refused = httpx.post(f"{base}/api/invoke/start_udp_server", json=[], headers=headers,
                             timeout=10)
        assert refused.status_code == 503 and "--no-udp" in refused.json()["error"]["message"]
        assert [c for c in psutil.Process(proc.pid).net_connections(kind="udp")] == []
    finally:
        stop(proc)
