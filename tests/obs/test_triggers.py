"""The trigger table's rules (scope, throttle, decisions) on events of the real parser, and the
scope wired to the real tournament context through the app."""

from __future__ import annotations

import itertools
from pathlib import Path

import obsws_python as obsws
import pytest

from restrike.host.errors import CommandError
from restrike.plugins.plugin_obs.triggers import Matcher, Trigger
from restrike.pss.ingested import ingest_datagram
from tests.conftest import wait_for
from tests.obs.conftest import MATCH_START, stored, wait_ready

_seq = itertools.count(1)


def events(*lines, port=5000):
    return [ev for line in lines for ev in ingest_datagram(
        line.encode() + b"\r\n", session_id="s", seq=next(_seq), received_at="",
        received_ns=0, source_ip="10.0.0.1", source_port=port)]


def fired(matcher, evs, context=(None, None)):
    return [row.code for ev in evs for row in matcher.match(ev, context)]


def test_only_requests_fire_and_disabled_rows_never():
    m = Matcher([Trigger(code="ch1"), Trigger(code="ch2", enabled=False), Trigger(code="ch0")])
    assert fired(m, events("ch1", "ch1;1;0", "ch1;-1", "ch2", "ch0", "pt1;2")) == ["ch1", "ch0"]


def test_scope_follows_the_tournament_context():
    m = Matcher([Trigger(code="ch1", scope="tournament"), Trigger(code="ch2", scope="day")])
    evs = events("ch1", "ch2")
    assert fired(m, evs) == []
    assert fired(m, evs, (7, None)) == ["ch1"]
    assert fired(m, evs, (7, 3)) == ["ch1", "ch2"]


def test_throttle_once_per_round_and_per_match_per_court():
    m = Matcher([Trigger(code="hl1", throttle="round"), Trigger(code="ch1", throttle="match")])
    assert fired(m, events("mch;1", "rnd;1", "hl1;30", "hl1;40", "ch1", "ch1")) == ["hl1", "ch1"]
    assert fired(m, events("rnd;2", "hl1;50", "ch1")) == ["hl1"]          # new round only
    assert fired(m, events("hl1;50", "ch1", port=6000)) == ["hl1", "ch1"]  # another court
    assert fired(m, events("pre;FightLoaded", "rnd;1", "hl1;20", "ch1")) == ["hl1", "ch1"]


def test_a_tournament_scoped_trigger_fires_once_the_context_is_set(obs_server, obs_app, feed):
    app, call = obs_app(obs_server.instance())
    call("replay_set_triggers", {"triggers": [{"code": "ch1", "scope": "tournament"}]})
    wait_ready(app)
    court = feed(app)
    court.send(*MATCH_START, "ch1", "clk;1:59")
    wait_for(lambda: stored(app, "clk") >= 2, message="the feed stored")
    assert call("obs_get_status")["counters"]["triggers"] == 0
    tournament = call("tournament_create", {"name": "Open"})
    call("set_udp_tournament_context", {"tournamentId": tournament["id"]})
    court.send("ch1")
    clip = wait_for(lambda: call("get_replay_clips"), timeout=30, message="a clip")[0]
    assert clip["trigger"] == "ch1"


def test_a_save_made_in_obs_itself_is_counted_and_left_alone(obs_server, obs_app):
    app, call = obs_app(obs_server.instance())
    wait_ready(app)
    req = obsws.ReqClient(host=obs_server.host, port=obs_server.port,
                          password=obs_server.password, timeout=10)
    try:
        req.save_replay_buffer()   # OBS's own hotkey, or another client, does the same
    finally:
        req.disconnect()
    inst = wait_for(lambda: (i := call("obs_get_status")["instances"][0])["unrequested_saves"]
                    and i, timeout=30, message="the save heard")
    # not ours to move or store: every client of this OBS hears every save
    assert Path(inst["last_unrequested_path"]).is_file()
    assert call("get_replay_clips") == []


def test_a_save_confirmed_after_its_wait_still_becomes_the_clip(obs_server, obs_app):
    app, call = obs_app(obs_server.instance(), save_timeout=0.001)   # OBS needs ~0.4 s
    wait_ready(app)
    with pytest.raises(CommandError) as err:
        call("replay_save_now")
    assert "did not report the saved replay within 0.001 s" in err.value.message
    clip = wait_for(lambda: call("get_replay_clips"), timeout=30, message="the late clip")[0]
    assert clip["trigger"] == "manual" and clip["file_exists"]
    inst = call("obs_get_status")["instances"][0]
    assert inst["late_saves"] == 1 and inst["save_failures"] == 1
