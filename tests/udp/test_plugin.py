"""The UDP plugin inside a real app: its commands, sessions, settings, pushes and simulator.

Apps run the UDP plugin alone (plus recording plugins) on real sockets on 127.0.0.1; the
database plugin has its own integration test in ``test_ingest_integration.py``.
"""

from __future__ import annotations

import socket

import pluggy
import pytest

from restrike.host.errors import Conflict, InvalidArgument, NotFound, Unavailable
from tests.conftest import free_port, wait_for
from tests.udp.recorder import UDP_ONLY, Recorder, call, send

hookimpl = pluggy.HookimplMarker("restrike")


class Raiser:
    __name__ = "raiser"

    @hookimpl
    def restrike_pss_events(self, events):
        raise RuntimeError("this plugin fails on every batch")


@pytest.fixture
def udp_app(make_app):
    """Start an app with the UDP plugin and a recorder; returns (app, recorder, udp address)."""

    def start(recorder=None, extra=(), **settings):
        recorder = recorder or Recorder()
        app = make_app(builtins=UDP_ONLY, extra_plugins=(*extra, recorder), **settings).start()
        udp = app.settings.config["udp"]
        return app, recorder, (udp["bind"], udp["port"])

    return start


def test_autostart_runs_a_session_and_shutdown_ends_it_after_dispatching(udp_app):
    app, rec, address = udp_app()
    assert call(app, "get_udp_status") == "Running"
    [started] = rec.sessions
    assert started.status == "running" and started.stopped_at is None
    assert started.port == address[1] and started.bind == "127.0.0.1"
    assert started.simulated is False and started.started_at.endswith("Z")
    send(address, *[f"clk;1:{i:02d}\r\n".encode() for i in range(40)])
    wait_for(lambda: call(app, "get_udp_stats")["datagrams"] == 40)
    app.stop()
    assert len(rec.events) == 40  # everything received was dispatched before the hooks ran
    stopped = rec.sessions[-1]
    assert stopped.session_id == started.session_id
    assert stopped.status == "stopped" and stopped.stopped_at >= started.started_at
    assert stopped.packets_received == 40 and stopped.events == 40
    assert stopped.clients[0]["packets"] == 40


def test_autostart_off_waits_for_start_udp_server(udp_app):
    app, rec, _ = udp_app(config={"udp": {"autostart": False}})
    assert call(app, "get_udp_status") == "Stopped"
    assert rec.sessions == []
    assert call(app, "start_udp_server") == "Running"
    assert call(app, "start_udp_server") == "Running"  # idempotent: still one session
    assert len(rec.sessions) == 1


def test_stop_stops_receiving_and_start_resumes_in_a_new_session(udp_app):
    app, rec, address = udp_app()
    send(address, b"rnd;1\r\n")
    wait_for(lambda: len(rec.events) == 1)
    assert call(app, "stop_udp_server") == "Stopped"
    assert call(app, "get_udp_status") == "Stopped"
    send(address, b"rnd;2\r\n")  # nobody listens now
    assert call(app, "start_udp_server") == "Running"
    send(address, b"rnd;3\r\n")
    wait_for(lambda: len(rec.events) == 2)
    assert [e.raw for e in rec.events] == ["rnd;1", "rnd;3"]
    assert call(app, "get_udp_stats")["datagrams"] == 1  # the new session counts afresh
    first, second = rec.events
    assert first.session_id != second.session_id
    assert [s.status for s in rec.sessions] == ["running", "stopped", "running"]
    assert second.seq == 1


def test_port_in_use_is_an_error_state_not_a_failed_startup(udp_app):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        app, rec, _ = udp_app(udp_port=port)  # starts: the error is the plugin's state
        with pytest.raises(Unavailable, match=f"UDP port {port} on 127.0.0.1 is already in use"):
            call(app, "get_udp_status")
        with pytest.raises(Unavailable, match="already in use"):
            call(app, "start_udp_server")
        assert rec.sessions == []
        assert call(app, "get_udp_stats")["error"].endswith("already in use by another program")
    assert call(app, "start_udp_server") == "Running"  # once the port is free


def test_allow_list_rejects_counts_and_can_be_changed(udp_app):
    app, rec, address = udp_app(config={"udp": {"allowed_sources": ["10.20.30.40"]}})
    send(address, b"pt1;3\r\n", b"pt2;1\r\n")
    wait_for(lambda: call(app, "get_udp_stats")["rejected"] == 2)
    assert rec.events == [] and call(app, "get_udp_stats")["events"] == 0
    settings = call(app, "update_udp_settings", [{"allowedSources": ["127.0.0.0/8"]}])
    assert settings["allowed_sources"] == ["127.0.0.0/8"] and settings["port"] == address[1]
    send(address, b"pt1;3\r\n")
    wait_for(lambda: len(rec.events) == 1)
    assert call(app, "get_udp_stats")["rejected"] == 0  # counted per session


@pytest.mark.parametrize("change, field, reason", [
    ({"port": 70000}, "settings.port", "less than or equal to 65535"),
    ({"bind": "not-an-ip"}, "settings.bind", "'not-an-ip' is not an IPv4 or IPv6 address"),
    ({"receiveBuffer": 10}, "settings.receiveBuffer", "greater than or equal to 65536"),
    ({"allowedSources": ["court-1"]}, "settings.allowedSources", "not an IP address"),
    ({"colour": "red"}, "settings.colour", "settings.colour"),
])
def test_bad_settings_are_rejected_naming_the_field_and_change_nothing(udp_app, change, field,
                                                                       reason):
    app, rec, address = udp_app()
    before = call(app, "get_udp_settings")
    with pytest.raises(InvalidArgument, match=reason) as caught:
        call(app, "update_udp_settings", {"settings": change})
    assert caught.value.field == field
    assert call(app, "get_udp_settings") == before
    assert len(rec.sessions) == 1  # not restarted
    send(address, b"hel;\r\n")
    wait_for(lambda: len(rec.events) == 1)


def test_settings_changed_in_the_ui_are_used_at_the_next_start(make_app, tmp_path):
    from restrike.host.app import App
    from restrike.host.settings import Settings

    data_dir = tmp_path / "court-3"
    first = make_app(builtins=UDP_ONLY, data_dir=data_dir).start()
    port = free_port(socket.SOCK_DGRAM)
    call(first, "update_udp_settings", [{"port": port, "receiveBuffer": 4 * 1024 * 1024,
                                         "allowedSources": ["127.0.0.1"]}])
    call(first, "update_udp_settings", [{"receiveBuffer": 2 * 1024 * 1024}])  # merged
    first.stop()

    # Started as the CLI does without --udp-port: the saved port is used.
    again = App(Settings(data_dir=data_dir, config={"udp": {"bind": "127.0.0.1"}}),
                builtins=UDP_ONLY,
                load_entrypoints=False)
    try:
        again.start()
        settings = call(again, "get_udp_settings")
        assert (settings["port"], settings["receive_buffer"], settings["allowed_sources"]) == (
            port, 2 * 1024 * 1024, ["127.0.0.1"])
        assert call(again, "get_udp_stats")["port"] == port
    finally:
        again.stop()

    # An explicit port (--udp-port) wins over the saved one; the other saved fields still apply.
    explicit = free_port(socket.SOCK_DGRAM)
    third = make_app(builtins=UDP_ONLY, data_dir=data_dir, udp_port=explicit).start()
    settings = call(third, "get_udp_settings")
    assert settings["port"] == explicit and settings["receive_buffer"] == 2 * 1024 * 1024


def test_saved_settings_that_are_damaged_or_invalid_are_ignored_with_an_error(make_app, tmp_path,
                                                                               caplog):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    saved = data_dir / "udp-settings.json"
    for content, message in (("{not json", "cannot be read"),
                             ('{"receive_buffer": 5}', "not valid any more")):
        saved.write_text(content)
        caplog.clear()
        app = make_app(builtins=UDP_ONLY, data_dir=data_dir).start()
        assert call(app, "get_udp_settings")["receive_buffer"] == 8 * 1024 * 1024  # the default
        assert call(app, "get_udp_status") == "Running"
        assert message in caplog.text
        app.stop()


def test_a_new_port_restarts_the_server_there(udp_app):
    app, rec, old = udp_app()
    new_port = free_port(socket.SOCK_DGRAM)
    settings = call(app, "update_udp_settings", [{"port": new_port}])
    assert settings["port"] == new_port
    assert call(app, "get_udp_status") == "Running"
    assert [s.status for s in rec.sessions] == ["running", "stopped", "running"]
    assert rec.sessions[-1].port == new_port
    send(old, b"rnd;1\r\n")
    send(("127.0.0.1", new_port), b"rnd;2\r\n")
    wait_for(lambda: len(rec.events) == 1)
    assert rec.events[0].raw == "rnd;2"


def test_a_new_port_in_use_changes_nothing(udp_app):
    app, rec, address = udp_app()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(Unavailable, match=r"settings not changed: .* already in use"):
            call(app, "update_udp_settings", [{"port": taken.getsockname()[1]}])
    assert call(app, "get_udp_settings")["port"] == address[1]
    assert call(app, "get_udp_status") == "Running" and len(rec.sessions) == 1
    send(address, b"hel;\r\n")
    wait_for(lambda: len(rec.events) == 1)


def test_pss_listener_commands(udp_app):
    app, rec, _ = udp_app(config={"udp": {"autostart": False}})
    port = free_port(socket.SOCK_DGRAM)
    assert call(app, "pss_start_listener", [port]) == "Running"
    assert call(app, "pss_start_listener", {"port": port}) == "Running"  # same port: no restart
    assert len(rec.sessions) == 1 and rec.sessions[0].port == port
    with pytest.raises(InvalidArgument) as caught:
        call(app, "pss_start_listener", [0])
    assert caught.value.field == "port"
    assert call(app, "pss_stop_listener") == "Stopped"


def test_a_plugin_raising_on_every_batch_does_not_stop_ingest(udp_app):
    app, rec, address = udp_app(extra=(Raiser(),))
    for i in range(5):
        send(address, f"clk;1:0{i}\r\n".encode())
        wait_for(lambda i=i: len(rec.events) == i + 1)
    raiser = next(p for p in call(app, "list_plugins") if p["name"] == "raiser")
    assert raiser["errors"] >= 1 and "fails on every batch" in raiser["last_error"]
    assert call(app, "pss_get_match_state")["clock"]["text"] == "1:04"  # our own hook ran too
    assert call(app, "get_udp_stats")["deliver_errors"] == 0


def test_events_are_kept_in_the_ui_shape_newest_last_and_bounded(udp_app):
    app, rec, address = udp_app()
    send(address, b"rnd;2\r\n", b"clk;1:30\r\n", b"pt2;3\r\n", b"zzz;1\r\n", b"pt1;9\r\n")
    wait_for(lambda: len(call(app, "pss_get_events")) == 5)
    events = call(app, "pss_get_events")
    points = events[2]
    assert points == {
        "type": "points", "event_code": "pt2", "athlete": "red", "round": 2, "time": "1:30",
        "timestamp": rec.events[2].received_at, "raw_data": "pt2;3", "raw_b64": None,
        "raw_truncated": False, "description": "Red scores 3 (head)", "is_valid": True,
        "error": None, "seq": 3,
        "index": 0, "source": f"{rec.events[2].source_ip}:{rec.events[2].source_port}",
        "session_id": rec.events[2].session_id,
    }
    assert events[3]["type"] == "unknown" and events[3]["is_valid"] is False
    assert events[4]["type"] == "invalid" and "pt1" in events[4]["error"]
    assert call(app, "pss_get_events", {"limit": 2}) == events[-2:]
    send(address, *[f"clk;0:{i % 60:02d}\r\n".encode() for i in range(1100)])
    wait_for(lambda: call(app, "pss_get_events", [1])[0]["seq"] == 1105)
    events = call(app, "pss_get_events")
    assert len(events) == 1000 and events[-1]["seq"] == 1105 and events[0]["seq"] == 106


def test_pushes_match_state_and_events(udp_app):
    app, rec, address = udp_app()
    got = []
    app.push.add_sink("test", got.extend)
    send(address, b"pre;FightLoaded\r\n", b"rnd;1\r\n", b"pt1;2\r\n")
    wait_for(lambda: sum(len(p["payload"]) for p in got if p["event"] == "pss_event") == 3)
    states = [p["payload"] for p in got if p["event"] == "pss_match_state"]
    assert states[-1]["round"] == 1 and states[-1]["loaded"] is True
    assert states[-1]["source"] == f"127.0.0.1:{rec.events[0].source_port}"
    pushed = [e for p in got if p["event"] == "pss_event" for e in p["payload"]]
    assert [e["event_code"] for e in pushed] == ["pre", "rnd", "pt1"]


def test_status_changes_are_pushed(udp_app):
    app, rec, address = udp_app()
    got = []
    app.push.add_sink("test", got.extend)

    def last_status():
        pushed = [p["payload"] for p in got if p["event"] == "udp_status"]
        return pushed[-1] if pushed else None

    call(app, "stop_udp_server")
    wait_for(lambda: (last_status() or {}).get("status") == "Stopped")
    call(app, "start_udp_server")
    wait_for(lambda: last_status()["status"] == "Running")
    assert last_status()["port"] == address[1]
    assert last_status()["session_id"] == rec.sessions[-1].session_id


def test_match_state_by_source_and_unknown_source(udp_app):
    app, rec, address = udp_app()
    assert call(app, "pss_get_match_state")["source"] is None  # nothing yet: the empty state
    court1 = send(address, b"pre;FightLoaded\r\n", b"sc1;3;sc2;1\r\n")
    wait_for(lambda: len(rec.events) == 2)
    court2 = send(address, b"pre;FightLoaded\r\n", b"sc1;0;sc2;5\r\n")
    wait_for(lambda: len(rec.events) == 4)
    one = call(app, "pss_get_match_state", [f"127.0.0.1:{court1[1]}"])
    assert one["current_scores"] == {"blue": 3, "red": 1}
    latest = call(app, "pss_get_match_state")
    assert latest["source"] == f"127.0.0.1:{court2[1]}"
    assert latest["current_scores"] == {"blue": 0, "red": 5}
    with pytest.raises(NotFound) as caught:
        call(app, "pss_get_match_state", {"source": "10.0.0.1:1"})
    assert caught.value.field == "source"


def test_live_data_by_subsystem(udp_app):
    app, rec, address = udp_app()
    send(address, b"rnd;1\r\n")
    wait_for(lambda: len(rec.events) == 1)
    pss = call(app, "get_live_data", ["pss"])
    assert pss["match_state"]["round"] == 1 and pss["events"][-1]["raw_data"] == "rnd;1"
    udp = call(app, "get_live_data", {"subsystem": "udp"})
    assert udp["status"] == "Running" and udp["counters"]["datagrams"] == 1
    assert call(app, "get_live_data", ["obs"])["available"] is False
    with pytest.raises(InvalidArgument) as caught:
        call(app, "get_live_data", ["scoreboard"])
    assert caught.value.field == "subsystem"


def test_stats_metrics_and_memory_are_measured(udp_app):
    app, rec, address = udp_app()
    source = send(address, *[b"clk;1:00\r\n"] * 30, b"\xff\xfe")
    wait_for(lambda: len(rec.events) == 31)
    stats = call(app, "get_udp_stats")
    assert (stats["datagrams"], stats["events"], stats["events_valid"]) == (31, 31, 30)
    assert stats["events_unknown"] + stats["events_invalid"] == 1  # the bytes that are not text
    assert stats["bytes"] == 30 * 10 + 2
    assert stats["recorder"] == {"seen": 31}  # another plugin's section is merged in
    assert stats["clients"][0]["port"] == source[1] and stats["clients"][0]["packets"] == 31
    assert stats["receive_buffer_granted"] > 0 and stats["queue_high_water"] >= 1
    assert stats["session"]["packets_received"] == 31
    metrics = call(app, "get_udp_performance_metrics")
    assert metrics["rates_60s"]["datagrams_per_s"] > 0
    assert metrics["latency_receive_to_dispatch_10s"]["samples"] == 31
    assert metrics["queue"]["dropped"] == 0
    memory = call(app, "get_udp_memory_usage")
    assert memory["process_rss_bytes"] > 10_000_000
    assert memory["event_ring"] == 31 and memory["latency_samples"] == 31


def test_simulate_match_feeds_our_own_port_and_marks_the_session(udp_app):
    app, rec, _ = udp_app()
    with pytest.raises(InvalidArgument) as caught:
        call(app, "simulate_match", {"senders": 0})
    assert caught.value.field == "senders"
    started = call(app, "simulate_match", {"senders": 2, "speed": 10000, "matches": 1})
    assert started["running"] is True and started["senders"] == 2
    assert rec.sessions[-1].simulated is True
    assert rec.sessions[-1].session_id == rec.sessions[0].session_id
    done = wait_for(lambda: (s := call(app, "get_udp_stats")["simulation"]) and
                    not s["running"] and s, timeout=30)
    assert done["sent"] > 800 and done["errors"] == 0
    # the recorder is called after the UDP plugin's own hook: once it has every event of
    # every datagram sent, the match state has them too
    wait_for(lambda: (s := call(app, "get_udp_stats"))["dispatched_datagrams"] == done["sent"]
             and len(rec.events) == s["events"])
    assert len(call(app, "get_udp_stats")["clients"]) == 2
    state = call(app, "pss_get_match_state")
    assert state["winner"]["side"] in ("BLUE", "RED") and state["athletes"]["blue"]
    app.stop()
    assert rec.sessions[-1].simulated is True and rec.sessions[-1].status == "stopped"


def test_simulation_needs_a_running_server_and_runs_once_at_a_time(udp_app):
    app, _, _ = udp_app()
    call(app, "simulate_match", {"speed": 1})  # real time: runs until stopped
    with pytest.raises(Conflict):
        call(app, "simulate_match")
    wait_for(lambda: call(app, "get_udp_stats")["datagrams"] >= 1)  # hel; goes out at once
    stopped = call(app, "stop_simulation")
    assert stopped["running"] is False and stopped["sent"] >= 1
    call(app, "stop_udp_server")
    with pytest.raises(Unavailable, match="not running"):
        call(app, "simulate_match")


def test_demo_mode_feeds_the_app_until_shutdown(udp_app):
    app, rec, _ = udp_app(demo=True)
    wait_for(lambda: len(rec.events) >= 1, message="the demo feed")
    assert rec.events[0].raw == "hel;"
    assert rec.sessions[-1].simulated is True
    app.stop()  # must not wait for the (real-time) match to finish
    assert call(app, "get_udp_stats")["simulation"]["running"] is False


def test_a_bad_config_section_fails_startup_naming_the_field(make_app):
    app = make_app(builtins=UDP_ONLY, config={"udp": {"receive_buffer": "lots"}})
    with pytest.raises(Exception, match="receive_buffer"):
        app.start()


def test_the_simulate_cli_subcommand_is_offered(make_app):
    app = make_app(builtins=UDP_ONLY)
    assert "simulate" in app.hooks.cli_subcommands()
