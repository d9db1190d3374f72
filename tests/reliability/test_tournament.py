"""A tournament on one PostgreSQL (issue 13, "done when"): two real restrike processes for two
courts write into one real server, each fed a match over real UDP; every event is stored once
with its court, and a third, ``--no-udp`` instance (a results desk) shows both live matches and
is told of each court's changes through LISTEN/NOTIFY (its push stream), not by polling."""

from __future__ import annotations

import json
import threading

import httpx
import psycopg
import pytest

from restrike.pss.ingested import ingest_datagram
from tests.conftest import wait_for
from tests.database.conftest import match_datagrams
from tests.reliability.conftest import Headless
from tests.tournament import Instance

pytestmark = pytest.mark.usefixtures("pg_server")


class Pushes:
    """The ``courts_changed`` pushes of an instance's event stream (``GET /api/events``),
    counted on a thread: ``wait_more(than)``."""

    def __init__(self, app: Headless):
        self.count = 0
        self._cond = threading.Condition()
        self._open = threading.Event()
        self._stop = False
        self._app = app
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._open.wait(10), "the event stream did not open"

    def _read(self) -> None:
        try:
            self._stream()
        except httpx.HTTPError:  # the app was killed at the end of the test
            if not self._stop:
                raise

    def _stream(self) -> None:
        headers = {"Authorization": f"Bearer {self._app.token}"}
        with httpx.stream("GET", f"{self._app.base}/api/events", headers=headers,
                          timeout=httpx.Timeout(10, read=None)) as stream:
            for line in stream.iter_lines():
                if line == ": connected":
                    self._open.set()
                if self._stop:
                    return
                if line.startswith("data: ") and any(
                        item["event"] == "courts_changed" for item in json.loads(line[6:])):
                    with self._cond:
                        self.count += 1
                        self._cond.notify_all()

    def wait_more(self, than: int, timeout: float = 15.0) -> int:
        with self._cond:
            assert self._cond.wait_for(lambda: self.count > than, timeout), \
                "no courts_changed push arrived"
            return self.count

    def close(self) -> None:
        self._stop = True


def expected_events(datagrams: list[str]) -> list[tuple[int, int, str]]:
    """``(datagram sequence, index in datagram, raw text)`` of every event, as the receiver
    numbers a session's datagrams (from 1)."""
    return [(ev.seq, ev.index, ev.raw) for seq, data in enumerate(datagrams, 1)
            for ev in ingest_datagram(data.encode("utf-8"), session_id="x", seq=seq,
                                      received_at="", received_ns=0, source_ip="127.0.0.1",
                                      source_port=1)]


def test_two_courts_into_one_postgresql_and_a_results_desk_sees_both_live(tmp_path,
                                                                          pg_server):
    url = pg_server.database()
    feeds = {
        "court-A": match_datagrams("101")[:20],  # round 1 running: blue 3, red 0
        "court-B": match_datagrams("202", blue=("A. BLUE", "Anna BLUE", "GER"),
                                   red=("R. RED", "Rita RED", "FRA")),  # finished, blue won
    }
    courts = {name: Instance(tmp_path / name, url, name) for name in feeds}
    desk = Instance(tmp_path / "desk", url, "results-desk", "--no-udp")
    pushes = None
    try:
        for app in (*courts.values(), desk):
            app.start()
        wait_for(lambda: desk.call("get_courts")["live"] == "notify", 20,
                 message="the desk listening")
        pushes = Pushes(desk)
        before = desk.call("get_courts")["listen"]
        for name, app in courts.items():
            app.send(feeds[name])
        for name, app in courts.items():
            count = len(expected_events(feeds[name]))
            wait_for(lambda app=app, count=count: app.stored() == count, 30,
                     message=f"{name}'s events stored")

        # every event stored once, with its court, as sent
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT s.court, e.session_id, e.event_sequence, e.datagram_index, e.raw_data "
                "FROM pss_events_v2 e JOIN udp_server_sessions s ON s.session_id = e.session_id "
                "ORDER BY s.court, e.event_sequence, e.datagram_index").fetchall()
            keys = conn.execute("SELECT COUNT(DISTINCT (session_id, event_sequence, "
                                "datagram_index)) FROM pss_events_v2").fetchone()[0]
            matches = conn.execute("SELECT court, match_number FROM pss_matches "
                                   "ORDER BY court").fetchall()
        assert keys == len(rows)
        for name, datagrams in feeds.items():
            mine = [row for row in rows if row[0] == name]
            assert len({row[1] for row in mine}) == 1  # one UDP session per court
            assert [row[2:] for row in mine] == expected_events(datagrams)
        assert len(rows) == sum(len(expected_events(d)) for d in feeds.values())
        assert matches == [("court-A", "101"), ("court-B", "202")]

        # the desk (no UDP, writes nothing) shows both live matches
        def both():
            answer = desk.call("get_courts")
            shown = {c["court"]: c for c in answer["courts"]}
            ready = set(shown) == set(feeds) and all(c["match"] for c in shown.values())
            return ready and shown
        shown = wait_for(both, 15, message="both courts on the desk")
        a, b = shown["court-A"]["match"], shown["court-B"]["match"]
        assert (a["number"], a["status"], a["round"], a["clock"]) == ("101", "running", 1,
                                                                      "1:58")
        assert a["scores"] == {"blue": 3, "red": 0} and a["winner"] is None
        assert a["athletes"]["blue"] == {"short": "K. ARSLAN", "long": "Kerem ARSLAN",
                                         "country": "TUR"}
        assert (b["number"], b["status"], b["scores"]) == ("202", "finished",
                                                           {"blue": 4, "red": 0})
        assert b["athletes"]["red"] == {"short": "R. RED", "long": "Rita RED", "country": "FRA"}
        assert b["winner"] == {"side": "blue", "name": "A. BLUE", "classification": "2-1 PTF"}
        assert {c["health"] for c in shown.values()} == {"connected"}
        assert not any(c["local"] for c in shown.values())
        assert desk.stats()["storage"]["batches"] == 0

        # a court scores: the desk's push stream says so, carried by a notification
        seen = pushes.wait_more(0)
        heard = desk.call("get_courts")["listen"]["notifications"]
        assert heard > before["notifications"]
        courts["court-A"].send(["pt1;2\r\n", "sc1;5;sc2;0\r\n"])
        pushes.wait_more(seen)
        wait_for(lambda: {c["court"]: c for c in desk.call("get_courts")["courts"]}[
            "court-A"]["match"]["scores"] == {"blue": 5, "red": 0}, 15,
            message="the new score on the desk")
        after = desk.call("get_courts")
        assert after["live"] == "notify" and after["listen"]["notifications"] > heard
        assert after["listen"]["connects"] == before["connects"] == 1  # no reconnect refresh
    finally:
        if pushes is not None:
            pushes.close()
        for app in (*courts.values(), desk):
            app.kill()
