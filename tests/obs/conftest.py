"""Fixtures of the instant-replay tests: one real headless OBS for the session, apps wired to it."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import wait_for
from tests.obs.obs_process import ObsProcess

RB_SECONDS = 5   # a short replay buffer: the tests wait for it to fill


@pytest.fixture(scope="session")
def obs_server():
    """A real OBS Studio (headless, Xvfb) with a 5 s replay buffer, for the whole session."""
    obs = ObsProcess(rb_seconds=RB_SECONDS)
    try:
        yield obs.start()
    finally:
        obs.close()


@pytest.fixture
def spare_obs():
    """An OBS of this test only, not started: tests start, kill and restart it."""
    obs = ObsProcess(rb_seconds=RB_SECONDS)
    try:
        yield obs
    finally:
        obs.close()


def obs_section(*instances, **extra) -> dict:
    section = {"instances": list(instances), "replay_seconds": RB_SECONDS,
               "start_at_seconds": 1, "autoplay": False, "reconnect_max": 0.5,
               "player_args": ["--vo=null", "--ao=null"]}
    section.update(extra)
    return section


@pytest.fixture
def obs_app(make_app):
    """``obs_app(*instances, **obs_settings)``: a started app (database, UDP, OBS) and a
    ``call(name, args)`` that goes through the command binder."""

    def factory(*instances, **extra):
        app = make_app(config={"obs": obs_section(*instances, **extra)}).start()
        return app, lambda name, args=None: app.commands.call(name, args)

    return factory


class Feed:
    """A PSS sender (one court) on a real UDP socket."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port, self.target = self.sock.getsockname()[1], ("127.0.0.1", port)

    def send(self, *lines: str) -> None:
        for line in lines:
            self.sock.sendto(line.encode() + b"\r\n", self.target)

    def close(self):
        self.sock.close()


@pytest.fixture
def feed():
    feeds = []

    def factory(app) -> Feed:
        feeds.append(Feed(app.settings.config["udp"]["port"]))
        return feeds[-1]

    yield factory
    for f in feeds:
        f.close()


MATCH_START = ("hel;", "pre;FightLoaded",
               "at1;K. ARSLAN;Kerem ARSLAN;TUR;at2;J. MORENO;Jaime MORENO;ESP;",
               ("mch;214;Quarterfinal;M- 68 kg;;#0000ff;#FFFFFF;#ff0000;#FFFFFF;7f3c21aa;Senior;"
                "3;120;cntDown;22;14"),
               "rnd;1", "rdy;FightReady", "clk;2:00;start")


def stored(app, code: str) -> int:
    """How many events of ``code`` the database has committed."""
    with app.extensions["database"].pool.connection() as conn:
        return conn.execute("SELECT COUNT(*) FROM pss_events_v2 e JOIN pss_event_types t "
                            "ON t.id = e.event_type_id WHERE t.code = ?", (code,)).fetchone()[0]


def wait_ready(app, name="cam-1", timeout=60):
    inst = app.extensions["obs"].instances[name]
    wait_for(inst.ready.is_set, timeout, message=f"OBS {name} ready: {inst.status()}")
    return inst
