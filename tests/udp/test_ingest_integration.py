"""The shared fixtures through the whole ingest path: real senders, the app, the commands.

``match_basic.jsonl`` must arrive complete and in each sender's order, from one sender and from
16 at once, and leave exactly the state of ``match_basic.expect.json``; the odd datagrams must all
be counted without hurting the receiver; with the database plugin, everything is stored.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
import threading

import pluggy
import pytest

from tests.conftest import wait_for

hookimpl = pluggy.HookimplMarker("restrike")
UDP_ONLY = (("udp", "restrike.plugins.plugin_udp.plugin"),)


class Collector:
    """Keeps every ingested event, by source, in arrival order."""

    __name__ = "collector"

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    @hookimpl
    def restrike_pss_events(self, events):
        with self._lock:
            self.events.extend(events)

    def by_source(self) -> dict[tuple[str, int], list]:
        out: dict = {}
        for e in list(self.events):
            out.setdefault((e.source_ip, e.source_port), []).append(e)
        return out


def load(shared_dir, name) -> list[bytes]:
    rows = [json.loads(line) for line in
            (shared_dir / "fixtures" / name).read_text("utf-8").splitlines() if line.strip()]
    return [base64.b64decode(r["datagram_b64"]) if "datagram_b64" in r
            else r["datagram"].encode("utf-8") for r in rows]


def expected(shared_dir) -> dict:
    return json.loads((shared_dir / "fixtures" / "match_basic.expect.json").read_text("utf-8"))


def assert_final_state(state: dict, expect: dict) -> None:
    assert state["athletes"] == {"blue": expect["blue"], "red": expect["red"]}
    assert state["round_scores"] == expect["round_scores"]
    assert state["current_scores"] == expect["current_scores"]
    assert state["warnings"] == expect["warnings"]
    assert state["round_winners"] == expect["round_winners"]
    assert state["round"] == expect["round"]
    assert state["winner"] == {"side": expect["winner_side"], "name": expect["winner_name"],
                               "classification": expect["classification"]}
    assert state["match"]["number"] == expect["match_number"]


def send_all(address, datagrams: list[bytes], senders: int) -> list[int]:
    """Send ``datagrams`` from ``senders`` sockets at once; returns their source ports."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(senders)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    go = threading.Barrier(senders)

    def run(s):
        go.wait()
        for data in datagrams:
            s.sendto(data, address)

    threads = [threading.Thread(target=run, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def messages(datagrams: list[bytes]) -> list[str]:
    """The message texts the parser makes of the fixture, in order (one datagram each here)."""
    return [d.decode("utf-8").rstrip("\r\n") for d in datagrams]


@pytest.mark.parametrize("senders", [1, 16])
def test_the_match_arrives_complete_in_order_and_gives_the_expected_state(make_app, shared_dir,
                                                                           senders):
    collector = Collector()
    app = make_app(builtins=UDP_ONLY, extra_plugins=(collector,)).start()
    address = (app.settings.config["udp"]["bind"], app.settings.config["udp"]["port"])
    datagrams = load(shared_dir, "match_basic.jsonl")
    expect = expected(shared_dir)
    assert len(datagrams) == expect["datagrams"]
    ports = send_all(address, datagrams, senders)
    total = len(datagrams) * senders
    wait_for(lambda: len(collector.events) == total, timeout=30,
             message=f"{total} events from {senders} sender(s)")
    by_source = collector.by_source()
    assert sorted(by_source) == sorted(("127.0.0.1", p) for p in ports)
    for events in by_source.values():
        assert [e.raw for e in events] == messages(datagrams)  # complete, in sending order
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs)
    assert sorted(e.seq for e in collector.events) == list(range(1, total + 1))
    for port in ports:
        state = app.commands.call("pss_get_match_state", {"source": f"127.0.0.1:{port}"})
        assert_final_state(state, expect)
    assert_final_state(app.commands.call("pss_get_match_state"), expect)
    stats = app.commands.call("get_udp_stats")
    assert (stats["datagrams"], stats["queue_dropped"]) == (total, 0)
    assert stats["kernel_drops"] in (0, None)  # None where /proc/net/udp does not exist
    assert len(stats["clients"]) == senders


def test_odd_datagrams_are_all_counted_and_the_receiver_goes_on(make_app, shared_dir):
    collector = Collector()
    app = make_app(builtins=UDP_ONLY, extra_plugins=(collector,)).start()
    address = (app.settings.config["udp"]["bind"], app.settings.config["udp"]["port"])
    datagrams = load(shared_dir, "odd_datagrams.jsonl")
    send_all(address, datagrams, 1)
    wait_for(lambda: (s := app.commands.call("get_udp_stats"))["dispatched_datagrams"]
             == len(datagrams) and len(collector.events) == s["events"])
    stats = app.commands.call("get_udp_stats")
    assert stats["datagrams"] == len(datagrams)
    assert stats["bytes"] == sum(map(len, datagrams))
    assert stats["events"] == len(collector.events)
    assert stats["events"] == stats["events_valid"] + stats["events_invalid"] \
        + stats["events_unknown"]
    assert {e.seq for e in collector.events} == set(range(1, len(datagrams) + 1))
    not_utf8 = [e for e in collector.events if e.raw_b64]
    assert [base64.b64decode(e.raw_b64) for e in not_utf8] == [b"pt1;\xff\xfe3;"]
    ui = app.commands.call("pss_get_events")
    assert len(ui) == stats["events"]
    assert any(e["raw_data"] == "" and e["is_valid"] is False for e in ui)  # the empty one
    assert app.commands.call("get_udp_status") == "Running"
    send_all(address, [b"pt1;3\r\n"], 1)
    wait_for(lambda: collector.events[-1].raw == "pt1;3")


@pytest.mark.skipif(importlib.util.find_spec("restrike.plugins.plugin_database.plugin") is None,
                    reason="the database plugin is not there yet")
def test_with_the_database_everything_received_is_stored(make_app, shared_dir):
    app = make_app().start()  # the real built-ins: database, then UDP
    address = (app.settings.config["udp"]["bind"], app.settings.config["udp"]["port"])
    # the odd ones first: the match that follows starts with pre;FightLoaded
    datagrams = load(shared_dir, "odd_datagrams.jsonl") + load(shared_dir, "match_basic.jsonl")
    send_all(address, datagrams, 1)
    wait_for(lambda: app.commands.call("get_udp_stats")["dispatched_datagrams"]
             == len(datagrams))
    events = app.commands.call("get_udp_stats")["events"]
    wait_for(lambda: app.commands.call("get_udp_stats")["storage"]["stored"] == events,
             message="every event committed")
    storage = app.commands.call("get_udp_stats")["storage"]
    assert storage["dropped"] == 0 and storage["lost"] == 0 and storage["failed_writes"] == 0
    [match] = [m for m in app.commands.call("pss_get_matches")
               if m.get("match_number") == expected(shared_dir)["match_number"]]
    stored = app.commands.call("pss_get_events_for_match", [match["id"]])
    assert len(stored) >= 500
    session_id = app.commands.call("get_udp_stats")["session"]["session_id"]
    app.commands.call("simulate_match", {"speed": 10000})
    wait_for(lambda: not app.commands.call("get_udp_stats")["simulation"]["running"], 30)
    app.stop()
    import sqlite3

    from restrike.plugins.plugin_database.service import DB_FILE

    # read the file the app left behind
    with sqlite3.connect(app.settings.data_dir / DB_FILE) as conn:
        row = conn.execute("SELECT status, is_simulated, stopped_at FROM udp_server_sessions "
                           "WHERE session_id = ?", (session_id,)).fetchone()
        count = conn.execute("SELECT COUNT(*) FROM pss_events_v2 WHERE session_id = ?",
                             (session_id,)).fetchone()[0]
    assert row[0] == "stopped" and row[1] == 1 and row[2]
    received = app.extensions["udp"].receiver.events  # the session's final count
    assert received > events  # the simulated match came in the same session
    assert count == received  # every event of the session stored, simulated ones included
