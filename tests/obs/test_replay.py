"""Instant replay against a real OBS Studio and a real mpv (issue 15).

The core path: a match fed over UDP to the real app; the challenge (``ch1``) saves OBS's replay
buffer; the clip is a file ffprobe reads as about ``replay_seconds`` of video, a
``recorded_videos`` row linked to the match and the court, with the events inside it as its
timeline; ``get_replay_clips(matchId)`` returns it; mpv plays it from a mark (checked over its
IPC). The buffer fills in real time, so the tests wait for it to hold ``RB_SECONDS`` of video
before the challenge (a condition on the video, not a synchronisation sleep).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from restrike.host.errors import CommandError
from tests.conftest import wait_for
from tests.obs.conftest import MATCH_START, RB_SECONDS, stored, wait_ready
from tests.obs.obs_process import ffprobe


def wait_buffer_full(inst, since: float) -> None:
    """OBS's buffer holds RB_SECONDS of video once it has run that long after ``since``."""
    wait_for(lambda: time.monotonic() - since > RB_SECONDS + 0.5, timeout=RB_SECONDS + 10,
             interval=0.1, message="the replay buffer to fill")


def test_challenge_saves_a_clip_of_the_match_with_its_timeline(obs_server, obs_app, feed):
    app, call = obs_app(obs_server.instance())
    inst = wait_ready(app)
    ready_at = time.monotonic()
    court = feed(app)
    court.send(*MATCH_START)
    wait_for(lambda: stored(app, "clk") >= 1, message="the match stored")
    wait_buffer_full(inst, ready_at)
    court.send("pt1;2", "hl1;40", "clk;1:50", "ch1")

    clips = wait_for(lambda: call("get_replay_clips"), timeout=30, message="a clip")
    clip = clips[0]
    match = call("pss_get_matches")[0]
    assert clip["match_id"] == match["id"]
    assert clip["match_number"] == "214"
    assert clip["court"] == f"127.0.0.1:{court.port}"
    assert clip["trigger"] == "ch1" and clip["instance"] == "cam-1"
    assert clip["blue"]["short_name"] == "K. ARSLAN"
    assert call("get_replay_clips", {"matchId": match["id"]})[0]["id"] == clip["id"]
    assert call("get_replay_clips", {"athlete": "moreno"})[0]["id"] == clip["id"]
    assert call("get_replay_clips", {"athlete": "nobody"}) == []

    # the file: moved under the data dir, video of about replay_seconds
    path = Path(clip["path"])
    assert clip["file_exists"] and path.parent == Path(app.settings.data_dir) / "clips"
    info = ffprobe(path)
    assert {s["codec_type"] for s in info["streams"]} >= {"video"}
    assert abs(float(info["format"]["duration"]) - RB_SECONDS) < 1.5

    # the timeline: the events received inside the clip, with their offsets
    codes = [m["code"] for m in clip["events"]]
    assert {"pt1", "hl1", "ch1"} <= set(codes)
    assert all(0 <= m["offset_ms"] <= clip["duration_s"] * 1000 for m in clip["events"])
    assert clip["trigger_event_id"] == next(m["event_id"] for m in clip["events"]
                                            if m["code"] == "ch1")
    status = call("obs_get_status")
    assert status["counters"]["clips"] == 1 and status["instances"][0]["connected"]

    # play it from the pt1 mark: mpv's IPC says which file and where
    mark = next(m for m in clip["events"] if m["code"] == "pt1")
    call("replay_play", {"clipId": clip["id"], "offsetSeconds": mark["offset_ms"] / 1000})
    player = app.extensions["obs"].player
    state = wait_for(lambda: (s := player.state())["position"] is not None and s,
                     message="mpv playing")
    assert state["path"] == str(path)
    assert state["position"] >= mark["offset_ms"] / 1000 - 0.1
    call("replay_control", {"action": "pause"})
    call("replay_control", {"action": "speed", "value": 0.25})
    call("replay_control", {"action": "frame_step"})   # plays one frame, then pauses again
    wait_for(lambda: (s := player.state())["paused"] is True and s["speed"] == 0.25,
             message="paused at 0.25x after one frame")
    call("replay_control", {"action": "seek", "value": 0.5})
    wait_for(lambda: abs((player.state()["position"] or -9) - 0.5) < 0.2, message="seeked")
    call("replay_control", {"action": "stop"})
    wait_for(lambda: not player.state()["playing"], message="mpv gone")


def test_two_challenges_in_one_second_make_one_clip_and_count_the_other(obs_server, obs_app,
                                                                        feed):
    app, call = obs_app(obs_server.instance())
    wait_ready(app)
    court = feed(app)
    court.send(*MATCH_START)
    court.sock.sendto(b"ch1\r\nch2\r\n", court.target)   # one datagram, one batch
    wait_for(lambda: call("get_replay_clips"), timeout=30, message="a clip")
    svc = app.extensions["obs"]
    wait_for(lambda: not svc.status()["saving"], message="the save done")
    counters = call("obs_get_status")["counters"]
    assert counters["triggers"] == 2 and counters["coalesced"] == 1
    assert counters["clips"] == 1 and len(call("get_replay_clips")) == 1
    # a manual save right after is coalesced too (less than a second): said, not an error
    result = call("replay_save_now")
    if result["coalesced"]:
        assert result["clips"] == []
    # and a challenge's decision message (ch1;1;0) never saves
    before = call("obs_get_status")["counters"]["triggers"]
    court.send("ch1;1;0", "clk;1:40")
    wait_for(lambda: stored(app, "clk") >= 2, message="the decision stored")
    assert call("obs_get_status")["counters"]["triggers"] == before


def test_manual_replay_without_a_feed(obs_server, obs_app):
    app, call = obs_app(obs_server.instance())
    wait_ready(app)
    result = call("replay_save_now")
    assert not result["coalesced"] and result["errors"] == []
    clip = result["clips"][0]
    assert clip["trigger"] == "manual" and clip["match_id"] is None
    assert Path(clip["path"]).is_file()
    # delete: the row and the file go
    assert call("replay_delete", {"clipId": clip["id"]})["file_deleted"] is True
    assert not Path(clip["path"]).exists() and call("get_replay_clips") == []
    with pytest.raises(CommandError) as err:
        call("replay_delete", {"clipId": clip["id"]})
    assert err.value.type == "not_found"


def test_a_missing_clip_file_is_reported_not_a_crash(obs_server, obs_app):
    app, call = obs_app(obs_server.instance())
    wait_ready(app)
    clip = call("replay_save_now")["clips"][0]
    Path(clip["path"]).unlink()
    listed = call("get_replay_clips")[0]
    assert listed["id"] == clip["id"] and listed["file_exists"] is False
    with pytest.raises(CommandError) as err:
        call("replay_play", {"clipId": clip["id"]})
    assert err.value.type == "unavailable" and "missing" in err.value.message


def test_mpv_missing_is_a_plain_error_and_nothing_else_stops(obs_server, obs_app, feed):
    app, call = obs_app(obs_server.instance(), player="mpv-is-not-installed-here",
                        autoplay=True)
    wait_ready(app)
    court = feed(app)
    court.send(*MATCH_START, "ch2")
    clip = wait_for(lambda: call("get_replay_clips"), timeout=30, message="a clip")[0]
    # autoplay failed (no player): counted and said; the feed goes on being stored
    wait_for(lambda: call("obs_get_status")["counters"]["play_failures"] == 1)
    assert "not installed" in call("obs_get_status")["last_error"]
    with pytest.raises(CommandError) as err:
        call("replay_play", {"clipId": clip["id"]})
    assert err.value.type == "unavailable"
    assert "mpv-is-not-installed-here is not installed" in err.value.message
    court.send("clk;1:59")
    wait_for(lambda: stored(app, "clk") >= 2, message="the feed still stored")


def test_wrong_password_is_said_plainly_and_the_password_never_shows(obs_server, obs_app,
                                                                     caplog):
    secret = "not-the-right-one-x7"
    app, call = obs_app(obs_server.instance(password=secret))
    status = wait_for(lambda: (s := call("obs_get_status"))["instances"][0]["last_error"] and s,
                      timeout=20, message="the login refused")
    inst = status["instances"][0]
    assert inst["connected"] is False
    assert inst["last_error"] == "OBS refused the password (wrong password?)"
    assert call("obs_get_config")["instances"][0] == {
        "name": "cam-1", "host": obs_server.host, "port": obs_server.port, "password_set": True}
    with pytest.raises(CommandError) as err:
        call("replay_save_now")
    assert err.value.type == "unavailable" and "no OBS instance is connected" in err.value.message
    assert secret not in caplog.text and obs_server.password not in caplog.text
    assert secret not in repr(app.extensions["obs"].config)


def test_obs_not_running_at_start_then_started(spare_obs, obs_app):
    app, call = obs_app(spare_obs.instance())
    wait_for(lambda: call("obs_get_status")["instances"][0]["last_error"], timeout=20)
    inst = call("obs_get_status")["instances"][0]
    assert inst["connected"] is False
    assert inst["last_error"].startswith("OBS is not running, or its WebSocket server is off")
    spare_obs.start()
    wait_ready(app)
    status = call("obs_get_status")["instances"][0]
    assert status["connected"] and status["replay_buffer_active"]
    assert status["buffer_started_by_restrike"] == 1 and status["last_error"] is None


def test_obs_killed_and_restarted_mid_match(spare_obs, obs_app, feed):
    spare_obs.start()
    app, call = obs_app(spare_obs.instance())
    wait_ready(app)
    court = feed(app)
    court.send(*MATCH_START)
    spare_obs.kill()
    wait_for(lambda: not call("obs_get_status")["instances"][0]["connected"], timeout=20,
             message="the loss seen")
    assert "lost" in call("obs_get_status")["instances"][0]["last_error"]
    court.send("ch1", "clk;1:58")   # a challenge while OBS is down: said, feed goes on
    wait_for(lambda: stored(app, "clk") >= 2, message="the feed still stored")
    wait_for(lambda: call("obs_get_status")["counters"]["save_failures"] >= 1)
    spare_obs.start()
    wait_ready(app, timeout=60)
    assert call("obs_get_status")["instances"][0]["buffer_started_by_restrike"] == 2
    court.send("ch2")
    clip = wait_for(lambda: call("get_replay_clips"), timeout=30,
                    message=f"a clip ({app.extensions['obs'].status()})")[0]
    assert clip["trigger"] == "ch2" and clip["match_id"] is not None


def test_one_challenge_saves_every_camera_at_once(obs_server, spare_obs, obs_app, feed):
    spare_obs.start()
    app, call = obs_app(obs_server.instance("cam-1"), spare_obs.instance("cam-2"))
    wait_ready(app, "cam-1")
    wait_ready(app, "cam-2")
    court = feed(app)
    court.send(*MATCH_START, "ch2")
    clips = wait_for(lambda: len(c := call("get_replay_clips")) == 2 and c, timeout=30,
                     message="two clips")
    assert {c["instance"] for c in clips} == {"cam-1", "cam-2"}
    assert len({c["match_id"] for c in clips}) == 1 and clips[0]["match_id"] is not None
    assert len({c["path"] for c in clips}) == 2 and all(c["file_exists"] for c in clips)
    assert call("obs_get_status")["counters"]["saves"] == 2
