"""Shared fixtures: real apps on real temporary data dirs, free ports, the shared fixtures."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

# Third-party plugins are not loaded in tests unless a test asks (datasette does the same).
os.environ["RESTRIKE_LOAD_PLUGINS"] = ""

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RESTRIKE_SHARED_DIR", REPO.parent / "shared"))
CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium, the browser Playwright drives (never a download; ``make apt-test``)."""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 right now (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02, message: str = ""):
    """Poll ``condition()`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def pw():
    """The one Playwright driver of the test session: two sync drivers cannot run in one thread,
    so every test that drives a browser or the window asks for this one."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        yield playwright


def _pg_server(crash_safe: bool = False):
    from .pg_server import ServerMissing, start_server

    try:
        return start_server(crash_safe)
    except ServerMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the test session (``tests/pg_server.py``), with a
    migrated template: ``pg_server.database()`` is the URL of a fresh migrated database."""
    from restrike.plugins.plugin_database.service import DatabaseService

    server = _pg_server()
    try:
        server.admin("CREATE DATABASE restrike_template")
        DatabaseService.open(server.url("restrike_template")).close()
        server.template = "restrike_template"
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def own_pg_server():
    """A PostgreSQL server of one test module alone: an outage test stops and starts it
    (``stop("immediate")``, ``start()``) without touching the session's ``pg_server``; what it
    acknowledged survives such a crash, as on a real server."""
    server = _pg_server(crash_safe=True)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def stoppable_pg_server(own_pg_server):
    """``own_pg_server`` for a test that stops it: running again after every test, whatever
    happened, so the next test of the module starts on a server that answers."""
    yield own_pg_server
    own_pg_server.ensure_running()


@pytest.fixture
def shared_dir() -> Path:
    return SHARED


@pytest.fixture
def make_app(tmp_path):
    """Build (not start) an App on a temporary data dir; stopped at the end of the test."""
    from restrike.host.app import App
    from restrike.host.settings import Settings

    apps = []

    def factory(builtins=None, extra_plugins=(), load_entrypoints=False, **settings):
        settings.setdefault("data_dir", tmp_path / f"data{len(apps)}")
        # udp_bind/udp_port/demo: shorthands for the udp section (--udp-bind, --udp-port, --demo)
        udp = {"bind": settings.pop("udp_bind", "127.0.0.1"),
               "port": (settings.pop("udp_port") if "udp_port" in settings
                        else free_port(socket.SOCK_DGRAM))}
        if settings.pop("demo", False):
            udp["demo"] = True
        config = dict(settings.get("config") or {})
        config["udp"] = {**udp, **config.get("udp", {})}
        settings["config"] = config
        app = App(Settings(**settings), builtins=builtins, extra_plugins=extra_plugins,
                  load_entrypoints=load_entrypoints)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.stop()


@pytest.fixture
def page_of(make_app, pw):
    """``page_of(app)``: the app's own HTTP bridge served from this process
    (``tests/served.py``), opened in chromium; yields the Playwright page."""
    from .served import serve_in_thread

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make apt-test)")
    opened = []

    def open_page(app):
        server, thread, port = serve_in_thread(app, "ui-token")
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu"])
        opened.append((server, thread, browser))
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?token=ui-token")
        page.wait_for_function("() => document.documentElement.dataset.ui === 'ready'",
                               timeout=60_000)
        return page

    yield open_page
    for server, thread, browser in opened:
        browser.close()
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def small_fs(tmp_path):
    """A mounted 1 MiB tmpfs (``tests/tmpfs.py``; root on Linux, else skipped) as a
    ``SmallFs``, unmounted at the end."""
    from .tmpfs import SmallFs, tmpfs

    with tmpfs(tmp_path / "small", "size=1m") as mount_point:
        yield SmallFs(mount_point)
