"""The Replay screen in the real window, with a real OBS and a real mpv (issue 15).

A challenge from the feed makes the Replay screen open with the new clip and its timeline;
clicking a mark starts mpv at that offset (read back over mpv's own IPC: the file and the
position); the window hides while mpv plays and comes back when it exits.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import SCREENSHOTS, START_TIMEOUT, launch_window

pytestmark = pytest.mark.e2e

RB = 5


@pytest.fixture(scope="module")
def replay_window(tmp_path_factory, pw):
    """OBS + the app in window mode with an ``obs`` section, attached over CDP."""
    from tests.obs.obs_process import ObsProcess

    obs = ObsProcess(rb_seconds=RB).start()
    try:
        tmp = tmp_path_factory.mktemp("replay-window")
        config = tmp / "config.json"
        config.write_text(json.dumps({"obs": {
            "instances": [obs.instance()], "replay_seconds": RB, "start_at_seconds": 1,
            "autoplay": False, "player_args": ["--vo=null", "--ao=null"]}}))
        with launch_window(tmp, pw, ("--config", str(config))) as running:
            yield running.page, running.udp_port
    finally:
        obs.close()


def mpv_get(ipc_path: str, prop: str):
    """One property read over mpv's JSON IPC, by the test itself."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(ipc_path)
        s.sendall(json.dumps({"command": ["get_property", prop], "request_id": 7}).encode()
                  + b"\n")
        buf = b""
        while True:
            buf += s.recv(65536)
            for line in buf.split(b"\n")[:-1]:
                msg = json.loads(line)
                if msg.get("request_id") == 7:
                    return msg.get("data")


def test_a_challenge_opens_the_clip_and_a_mark_plays_it_in_mpv(replay_window):
    page, udp_port = replay_window
    invoke = lambda n, a=None: page.evaluate("([n, a]) => window.restrikeInvoke(n, a)", [n, a])  # noqa: E731
    wait_for(lambda: invoke("obs_get_status")["instances"][0]["replay_buffer_active"],
             START_TIMEOUT, 0.2, "OBS ready")
    ready = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for line in ("pre;FightLoaded", "at1;A. BLUE;Ann BLUE;KOR;at2;B. RED;Bo RED;FRA;",
                     ("mch;301;Final;F- 49 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;x;Senior;3;120;"
                      "cntDown;22;14"), "rnd;1", "clk;2:00;start"):
            s.sendto(line.encode() + b"\r\n", ("127.0.0.1", udp_port))
        # the buffer must hold RB seconds of video before the challenge
        wait_for(lambda: time.monotonic() - ready > RB + 0.5, RB + 10, 0.1, "buffer full")
        for line in ("pt2;3", "clk;1:51", "ch1"):
            s.sendto(line.encode() + b"\r\n", ("127.0.0.1", udp_port))

    # the Replay screen opens by itself with the clip and its marks
    page.wait_for_selector("#panel-replay:not([hidden])", timeout=30_000)
    mark = page.wait_for_selector('#rp-timeline .rp-mark[data-code="pt2"]', timeout=30_000)
    assert page.locator("#rp-clip-title").inner_text().startswith("Match 301")
    assert page.locator("#rp-clips tr").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "replay-clip-1280x800.png"))
    offset = int(mark.get_attribute("data-offset")) / 1000
    assert page.evaluate("document.visibilityState") == "visible"
    mark.click()

    state = wait_for(lambda: (s := invoke("obs_get_status")["player"])["playing"] and s,
                     15, 0.1, "mpv started")
    clip = invoke("get_replay_clips")[0]
    assert mpv_get(state["ipc"], "path") == clip["path"]
    expected = max(0.0, offset - 1)   # a mark plays from one second before it
    pos = wait_for(lambda: mpv_get(state["ipc"], "time-pos"), 10, 0.05, "a position")
    assert expected - 0.1 <= pos <= expected + 2.0
    # the window hides while mpv plays, and comes back when mpv exits
    wait_for(lambda: page.evaluate("document.visibilityState") == "hidden", 10, 0.1,
             "the window hidden")
    invoke("replay_control", {"action": "stop"})
    wait_for(lambda: page.evaluate("document.visibilityState") == "visible", 10, 0.1,
             "the window back")
    assert not invoke("obs_get_status")["player"]["playing"]
