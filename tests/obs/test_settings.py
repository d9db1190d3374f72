"""The OBS plugin's settings, trigger table and failure edges, through the real commands."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import obsws_python as obsws
import pytest

from restrike.host.errors import CommandError
from restrike.host.settings import Settings
from tests.conftest import wait_for
from tests.obs.conftest import MATCH_START, obs_section, stored, wait_ready

WITHOUT_OBS = (("database", "restrike.plugins.plugin_database.plugin"),
               ("udp", "restrike.plugins.plugin_udp.plugin"))


def test_restrike_runs_without_the_obs_plugin(make_app):
    app = make_app(builtins=WITHOUT_OBS).start()
    assert "obs" not in [p["name"] for p in app.list_plugins()]
    with pytest.raises(CommandError) as err:
        app.commands.call("replay_save_now")
    assert err.value.type == "not_found"
    # and nothing outside the plugin imports it (host/plugins.py only names it as a built-in)
    repo = Path(__file__).resolve().parents[2]
    sources = [*(repo / "host").rglob("*.py"), *(repo / "plugins" / "plugin_udp").rglob("*.py"),
               *(repo / "plugins" / "plugin_database").rglob("*.py")]
    importers = [p for p in sources if re.search(r"(from|import)\s+[.\w]*plugin_obs",
                                                 p.read_text())]
    assert importers == []


@pytest.mark.parametrize("section, words", [
    ({"replay_seconds": "20"}, "obs.replay_seconds: Input should be a valid integer"),
    ({"instances": [{"name": "a", "port": 0}]}, "obs.instances.0.port"),
    ({"replay_seconds": 10, "start_at_seconds": 12}, "must be less than replay_seconds"),
    ({"instances": [{"name": "a"}, {"name": "a"}]}, "two OBS instances have the same name"),
    ({"speed": 2}, "obs.speed: Extra inputs are not permitted"),
])
def test_a_bad_obs_section_stops_the_start_naming_the_field(make_app, section, words):
    app = make_app(config={"obs": section})
    with pytest.raises(Exception) as err:
        app.start()
    assert "config section 'obs' is invalid" in str(err.value) and words in str(err.value)


def test_settings_screen_saves_keeps_passwords_and_never_shows_them(obs_server, obs_app):
    app, call = obs_app()
    assert call("obs_get_status")["instances"] == []
    with pytest.raises(CommandError) as err:
        call("replay_save_now")
    assert "no OBS instance is configured" in err.value.message
    # add the instance from the screen
    saved = call("obs_update_config", {"config": {"instances": [obs_server.instance()]}})
    assert saved["instances"][0]["password_set"] is True and "password" not in saved["instances"][0]
    wait_ready(app)
    path = Path(app.settings.data_dir) / "obs-settings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # change the buffer settings only: the password stays (sent without one)
    inst = {k: v for k, v in obs_server.instance().items() if k != "password"}
    call("obs_update_config", {"config": {"instances": [inst], "replay_seconds": 6}})
    assert json.loads(path.read_text())["instances"][0]["password"] == obs_server.password
    wait_ready(app)
    assert call("obs_get_config")["replay_seconds"] == 6
    # strict and named: a string port, a start after the end
    for change, field in (({"instances": [{**inst, "port": "4455"}]}, "config.instances.0.port"),
                          ({"start_at_seconds": 30}, "config")):
        with pytest.raises(CommandError) as err:
            call("obs_update_config", {"config": change})
        assert err.value.type == "validation_error" and err.value.field.startswith(field)
    pushed = json.dumps(app.extensions["obs"].status())
    assert obs_server.password not in pushed


def test_trigger_table_is_data_validated_strictly(obs_server, obs_app, feed):
    app, call = obs_app(obs_server.instance())
    assert [t["code"] for t in call("replay_get_triggers")] == ["ch1", "ch2"]
    for bad, words in (([{"code": "CH1"}], "triggers.0.code"),
                       ([{"code": "ch1", "action": "switch_scene"}], "needs the scene"),
                       ([{"code": "ch1", "enabled": 1}], "triggers.0.enabled")):
        with pytest.raises(CommandError) as err:
            call("replay_set_triggers", {"triggers": bad})
        assert err.value.type == "validation_error" and words in (err.value.field or "") + \
            err.value.message
    table = [{"code": "pt1", "action": "switch_scene", "scene": "Replay"},
             {"code": "ch2", "throttle": "match"}]
    assert call("replay_set_triggers", {"triggers": table})[1]["throttle"] == "match"
    assert (Path(app.settings.data_dir) / "obs-triggers.json").is_file()
    wait_ready(app)
    court = feed(app)
    court.send(*MATCH_START, "pt1;2", "ch2", "ch1")
    # pt1 switched OBS's program scene; ch2 saved; ch1 is no longer a trigger
    kw = dict(host=obs_server.host, port=obs_server.port, password=obs_server.password)
    req = obsws.ReqClient(**kw, timeout=10)
    try:
        wait_for(lambda: req.get_current_program_scene().current_program_scene_name == "Replay",
                 message="the scene switched")
        req.set_current_program_scene("Scene")
    finally:
        req.disconnect()
    clip = wait_for(lambda: call("get_replay_clips"), timeout=30, message="a clip")[0]
    assert clip["trigger"] == "ch2"
    svc = app.extensions["obs"]
    wait_for(lambda: not svc.status()["saving"])
    # throttle "match": a second ch2 in the same match fires nothing
    before = svc.status()["counters"]["triggers"]
    court.send("ch2", "clk;1:33")
    wait_for(lambda: stored(app, "clk") >= 2)
    assert svc.status()["counters"]["triggers"] == before


def test_an_unusable_clip_folder_is_reported_and_the_clip_kept(obs_server, obs_app):
    app, call = obs_app(obs_server.instance(), clip_dir="/proc/restrike-clips")
    wait_ready(app)
    clip = call("replay_save_now")["clips"][0]
    assert Path(clip["path"]).parent == obs_server.record_dir and clip["file_exists"]
    status = call("obs_get_status")
    assert status["counters"]["store_failures"] == 1
    assert "could not be moved to /proc/restrike-clips" in status["last_error"]


def test_obs_recording_folder_full_is_said_and_nothing_else_stops(spare_obs, obs_app, feed):
    if not spare_obs.fill_record_dir():
        pytest.skip("mounting a small tmpfs needs root")
    spare_obs.start()
    app, call = obs_app(spare_obs.instance())
    status = wait_for(lambda: (i := call("obs_get_status")["instances"][0])["last_error"] and i,
                      timeout=40, message="the failure said")
    assert "recording folder full" in status["last_error"]
    assert not status["replay_buffer_active"]
    court = feed(app)
    court.send(*MATCH_START, "ch1", "clk;1:10")
    wait_for(lambda: stored(app, "clk") >= 2, message="the feed still stored")
    wait_for(lambda: call("obs_get_status")["counters"]["save_failures"] >= 1)


def test_settings_from_the_screen_win_over_the_config_file(tmp_path, make_app, obs_server):
    data = tmp_path / "d"
    data.mkdir()
    (data / "obs-settings.json").write_text(json.dumps(obs_section(obs_server.instance())))
    app = make_app(data_dir=data, config={"obs": obs_section()}).start()
    assert app.commands.call("obs_get_config")["instances"][0]["name"] == "cam-1"
    assert isinstance(app.settings, Settings)


def test_settings_that_cannot_be_written_change_nothing(obs_app):
    app, call = obs_app()
    blocker = Path(app.settings.data_dir) / "obs-settings.json.tmp"
    blocker.mkdir()   # the temporary file cannot be created: as a write error would
    with pytest.raises(CommandError) as err:
        call("obs_update_config", {"config": {"replay_seconds": 30}})
    assert err.value.type == "unavailable"
    assert err.value.message.startswith("the OBS settings could not be saved")
    assert call("obs_get_config")["replay_seconds"] == 5
    assert not (Path(app.settings.data_dir) / "obs-settings.json").exists()


def test_without_an_obs_configured_a_challenge_is_no_failure(obs_app, feed):
    app, call = obs_app()
    court = feed(app)
    court.send(*MATCH_START, "ch1", "clk;1:58")
    wait_for(lambda: stored(app, "clk") >= 2, message="the feed stored")
    status = call("obs_get_status")
    assert status["counters"]["save_failures"] == 0 and status["last_error"] is None
