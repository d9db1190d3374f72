"""End-to-end fixtures: the real app as a subprocess, driven by Playwright.

- ``window_app``: ``python -m restrike`` (window mode): the real pywebview Qt window, reached over
  the Chrome DevTools Protocol (``RESTRIKE_CDP_PORT``); see shared/recipes/pywebview-qt-playwright.
- ``browser_app``: ``python -m restrike --headless`` with a token, opened in Debian's chromium.
- ``app``: either of them (parametrized), so a test runs against both transports.

Each is session-scoped: two app launches for the whole e2e suite (2 shared cores). Tests send
their own datagrams and wait on what they expect, so they do not depend on each other's order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, REPO, SHARED, free_port, wait_for

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
TOKEN = "e2e-token-5f1c"
START_TIMEOUT = 60.0
# `make screenshots` writes them into docs/screenshots/; a plain test run keeps its own copy
# aside, so running the tests does not rewrite the documentation's images.
SCREENSHOTS = Path(os.environ.get("RESTRIKE_SCREENSHOTS")
                   or Path(tempfile.gettempdir()) / "restrike-screenshots")
FIXTURES = SHARED / "fixtures"
DB_FILE = "restrike_vta.db"


@dataclass
class RunningApp:
    """A started app and the page showing its UI."""

    mode: str
    proc: subprocess.Popen
    page: Page
    udp_port: int
    data_dir: Path
    log_path: Path
    http_base: str | None = None
    context: object | None = None  # browser mode: the BrowserContext (for the overlay page)
    extra: dict = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE

    def invoke(self, name: str, args=None):
        """Call a command the way the page does (through api.js), return its result."""
        return self.page.evaluate("([n, a]) => window.restrikeInvoke(n, a)", [name, args])

    def send(self, datagrams: list[bytes], from_port: int = 0) -> None:
        """Send datagrams to the app's UDP port, in order, from one socket (a new sender, i.e.
        a new court, unless ``from_port`` names the port to send from)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            if from_port:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", from_port))
            for data in datagrams:
                s.sendto(data, ("127.0.0.1", self.udp_port))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def load_datagrams(name: str) -> list[bytes]:
    """A shared fixture file as the datagrams' bytes."""
    out = []
    for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        out.append(b64decode(item["datagram_b64"]) if "datagram_b64" in item
                   else item["datagram"].encode("utf-8"))
    return out


def parsed(datagrams: list[bytes]) -> list:
    """The events the app makes of these datagrams (its own parser), in order."""
    from restrike.pss.ingested import ingest_datagram

    events = []
    for seq, data in enumerate(datagrams, 1):
        events.extend(ingest_datagram(data, session_id="x", seq=seq, received_at="",
                                      received_ns=0, source_ip="127.0.0.1", source_port=1))
    return events


def _env(**extra) -> dict:
    env = dict(os.environ, RESTRIKE_LOAD_PLUGINS="", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _stop(proc: subprocess.Popen) -> int | None:
    """SIGTERM the app; its exit code (None if it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


def _wait_ui(page: Page) -> None:
    page.wait_for_function("() => window.__restrikeReady === true", timeout=START_TIMEOUT * 1000)
    page.wait_for_function("() => document.documentElement.dataset.ui === 'ready'",
                           timeout=START_TIMEOUT * 1000)



@pytest.fixture(scope="session")
def window_app(tmp_path_factory, pw):
    """The real desktop window (pywebview + Qt), attached over CDP."""
    with launch_window(tmp_path_factory.mktemp("window"), pw) as running:
        yield running
    code = running.extra["exit_code"]
    # SIGTERM closes the window and shuts the plugins down cleanly (exit 0, not killed).
    assert code == 0, f"window mode exited with {code} on SIGTERM:\n{running.log()}"


@contextlib.contextmanager
def launch_window(tmp: Path, pw, extra_args: tuple = ()):
    """``python -m restrike`` in window mode on ``tmp / "data"`` (plus ``extra_args``), attached
    over CDP; on exit SIGTERM, with the exit code in ``extra["exit_code"]``."""
    pytest.importorskip("webview")
    cdp, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = _env(RESTRIKE_CDP_PORT=str(cdp), PYWEBVIEW_GUI="qt",
               QTWEBENGINE_CHROMIUM_FLAGS="--no-sandbox --disable-gpu")
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"  # no X server: still a real QtWebEngine page
    log_path = tmp / "app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restrike", "--data-dir", str(tmp / "data"),
             "--udp-bind", "127.0.0.1", "--udp-port", str(udp_port), *extra_args],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = None
    try:
        def page_target():
            assert proc.poll() is None, f"the app exited:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{cdp}/json/list", timeout=1) as r:
                    return any(t.get("type") == "page" for t in json.load(r))
            except OSError:
                return False

        wait_for(page_target, START_TIMEOUT, 0.1, "the window's DevTools page")
        # no_defaults=True: QtWebEngine rejects Browser.setDownloadBehavior otherwise
        browser = pw.chromium.connect_over_cdp(f"http://127.0.0.1:{cdp}", no_defaults=True)
        try:
            page = browser.contexts[0].pages[0]
            _wait_ui(page)
            running = RunningApp("window", proc, page, udp_port, tmp / "data", log_path)
            yield running
        finally:
            browser.close()  # only disconnects
    finally:
        code = _stop(proc)
        if running is not None:
            running.extra["exit_code"] = code


@pytest.fixture(scope="session")
def browser_app(tmp_path_factory, pw):
    """``restrike --headless`` in Debian's chromium, at 1600x900."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make apt-test)")
    tmp = tmp_path_factory.mktemp("browser")
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    log_path = tmp / "app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restrike", "--headless", "--data-dir", str(tmp / "data"),
             "--udp-bind", "127.0.0.1", "--udp-port", str(udp_port),
             "--http-port", str(http_port), "--token", TOKEN],
            cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        def http_up():
            assert proc.poll() is None, f"the app exited:\n{log_path.read_text()}"
            try:
                urllib.request.urlopen(f"{base}/index.html?token={TOKEN}", timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(http_up, START_TIMEOUT, 0.1, "the HTTP server")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/?token={TOKEN}")
            _wait_ui(page)
            yield RunningApp("browser", proc, page, udp_port, tmp / "data", log_path,
                             http_base=base, context=context)
        finally:
            browser.close()
    finally:
        _stop(proc)


@pytest.fixture(scope="session", params=["window", "browser"])
def app(request) -> RunningApp:
    """The app in window mode, then in browser mode."""
    return request.getfixturevalue(f"{request.param}_app")


@pytest.fixture
def window_page(window_app) -> Page:
    return window_app.page


@pytest.fixture
def browser_page(browser_app) -> Page:
    return browser_app.page


@pytest.fixture
def db(app):
    """A connection to the app's database file (WAL: the app keeps running meanwhile)."""
    conn = sqlite3.connect(app.db_path, timeout=30, isolation_level=None)
    yield conn
    conn.close()


def goto_tab(page: Page, name: str) -> None:
    page.click(f"#tab-{name}")
    page.wait_for_selector(f"#panel-{name}:not([hidden])")


def overlay_page(browser_app: RunningApp, query: str = ""):
    """The OBS overlay of ``browser_app`` (``query`` appended to its URL) in a new page, once it
    is ready: ``(page, problems)``, the console errors and page errors it reports."""
    page = browser_app.context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{browser_app.http_base}/overlay/scoreboard.html?token={TOKEN}{query}")
    page.wait_for_function("() => document.documentElement.dataset.ui === 'ready'", timeout=30_000)
    return page, problems


def wait_stored(app: RunningApp, at_least: int, timeout: float = 30.0) -> None:
    """Wait until the database holds at least this many events (main table)."""
    def enough():
        info = app.invoke("database_get_info")
        return info["row_counts"]["pss_events_v2"] >= at_least
    wait_for(enough, timeout, 0.2, f"{at_least} stored events")


def dd(page: Page, dl: str, key: str):
    """The locator of a statistic (``<dd data-key=...>``) of a statistics list."""
    return page.locator(f"{dl} dd[data-key='{key}']")


__all__ = ["RunningApp", "SCREENSHOTS", "TOKEN", "dd", "goto_tab", "load_datagrams",
           "overlay_page", "parsed", "wait_stored", "wait_for"]
