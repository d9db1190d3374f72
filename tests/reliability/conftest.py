"""Helpers of the reliability tests: the real app as a subprocess, its database, the feed.

``Headless`` runs ``python -m restrike --headless`` on a fixed data dir and fixed ports, so a test
can kill it (SIGKILL, SIGSTOP) and start it again on the same database and the same UDP port. Its
output goes to a file, never to a pipe nobody reads (a full pipe would block the app's logging
and look like a hang).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from restrike.pss.protocol import parse_text
from tests.conftest import REPO, free_port, wait_for
from tests.served import serve_in_thread

TOKEN = "reliability-token"
DB_FILE = "restrike_vta.db"
MEMORY_LIMIT = 2 * 1024**3
"""Address space of an app under test: a bug that allocates without bound (a feed value used
as a size) ends in a MemoryError in that app instead of exhausting this shared machine."""


class CommandFailed(AssertionError):
    """A command answered with an error envelope: ``status``, ``error`` {type, message, field}."""

    def __init__(self, name: str, status: int, error: dict):
        super().__init__(f"{name} failed with HTTP {status}: {error}")
        self.status = status
        self.error = error


class Headless:
    """One headless app process on ``data_dir``; ``start()`` may be called again after a kill."""

    def __init__(self, data_dir: Path, *, udp_port: int | None = None,
                 http_port: int | None = None, config: dict | None = None,
                 token: str = TOKEN, memory_limit: int | None = MEMORY_LIMIT):
        self.data_dir = Path(data_dir)
        self.udp_port = udp_port or free_port(socket.SOCK_DGRAM)
        self.http_port = http_port or free_port()
        self.token = token
        self.config = config
        self.memory_limit = memory_limit
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-app.log"
        self._client = httpx.Client(base_url=self.base, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command_line(self) -> list[str]:
        args = [sys.executable, "-m", "restrike", "--headless", "--data-dir", str(self.data_dir),
                "--udp-bind", "127.0.0.1", "--udp-port", str(self.udp_port),
                "--http-port", str(self.http_port), "--token", self.token,
                "--log-level", "WARNING"]
        if self.config is not None:
            config_path = self.data_dir.parent / f"{self.data_dir.name}-config.json"
            config_path.write_text(json.dumps(self.config), encoding="utf-8")
            args += ["--config", str(config_path)]
        return args

    def spawn(self) -> subprocess.Popen:
        """Start the process without waiting for it to be ready."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")  # the child owns a copy
        log.write(f"\n===== start {self.starts + 1} =====\n")
        log.flush()
        try:
            self.proc = subprocess.Popen(
                self.command_line(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ, RESTRIKE_LOAD_PLUGINS=""), start_new_session=True)
        finally:
            log.close()
        self._limit_memory()
        self.starts += 1
        return self.proc

    def _limit_memory(self) -> None:
        # prlimit on the started child rather than preexec_fn, which is unsafe while this
        # process runs threads (senders, event streams).
        import resource

        if self.memory_limit and hasattr(resource, "prlimit"):
            limit = (self.memory_limit, self.memory_limit)
            try:
                resource.prlimit(self.proc.pid, resource.RLIMIT_AS, limit)
            except ProcessLookupError:
                pass  # it already exited; start() reports why

    def start(self, timeout: float = 60.0) -> Headless:
        """Start and wait until the bridge answers a command."""
        self.spawn()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"the app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return self._client.post("/api/invoke/list_plugins", json=[],
                                         timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, 0.05, "the headless app to answer")
        return self

    def invoke(self, name: str, args=None, timeout: float = 30.0) -> httpx.Response:
        return self._client.post(f"/api/invoke/{name}", json=[] if args is None else args,
                                 timeout=timeout)

    def call(self, name: str, args=None, timeout: float = 30.0):
        """The command's result; ``CommandFailed`` on an error answer."""
        response = self.invoke(name, args, timeout)
        if response.status_code != 200:
            raise CommandFailed(name, response.status_code, response.json().get("error"))
        return response.json()

    def stats(self) -> dict:
        return self.call("get_udp_stats")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap: nothing of the app runs any more when this returns."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (an orderly shutdown) and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._client.close()


@pytest.fixture
def served():
    """``served(app)``: ``app``'s HTTP bridge served from this process (``serve_in_thread``);
    returns an httpx client that sends the token. Everything is stopped after the test."""
    running = []

    def serve(app) -> httpx.Client:
        server, thread, port = serve_in_thread(app, SERVED_TOKEN)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                              headers={"Authorization": f"Bearer {SERVED_TOKEN}"})
        running.append((server, thread, client))
        return client

    yield serve
    for server, thread, client in running:
        client.close()
        server.should_exit = True
        thread.join(10)


SERVED_TOKEN = "served-token"


class EventStream:
    """The app's Server-Sent Events, read by a thread: ``wait(name, predicate)`` returns the
    first payload of that push name the predicate accepts."""

    def __init__(self, app: Headless):
        import queue

        self.items: queue.Queue = queue.Queue()
        self._client = httpx.Client(base_url=app.base, timeout=httpx.Timeout(5, read=None),
                                    headers={"Authorization": f"Bearer {app.token}"})
        self._connected = threading.Event()
        self.thread = threading.Thread(target=self._read, name="test-sse", daemon=True)
        self.thread.start()
        assert self._connected.wait(10), "the event stream did not connect"

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/api/events") as response:
                for line in response.iter_lines():
                    if line.startswith(": connected"):
                        self._connected.set()
                    elif line.startswith("data: "):
                        for item in json.loads(line[6:]):
                            self.items.put((item["event"], item["payload"]))
        except (httpx.HTTPError, OSError):
            pass  # the app was killed: the stream simply ends
        finally:
            self.items.put(None)

    def wait(self, name: str, predicate=lambda payload: True, timeout: float = 30.0):
        """The first matching payload, or None when the stream ended (the app is gone)."""
        import queue
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.items.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {name} push within {timeout} s") from None
            if item is None:
                return None
            if item[0] == name and predicate(item[1]):
                return item[1]

    def close(self) -> None:
        self._client.close()


@pytest.fixture
def headless_factory(tmp_path):
    """``factory(name="app", **Headless kwargs)`` → a not yet started ``Headless``; all are
    killed at the end of the test."""
    apps: list[Headless] = []

    def factory(name: str = "app", **kwargs) -> Headless:
        app = Headless(tmp_path / name, **kwargs)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


# ------------------------------------------------------------------------------------- database


@contextmanager
def open_db(path: Path):
    """A plain connection to the app's file (reading only). Open it while the app runs, or
    after its last run: closing the last connection checkpoints the WAL."""
    conn = sqlite3.connect(str(path), timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def integrity(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA integrity_check`` lines (``["ok"]`` when sound) plus foreign key problems."""
    lines = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    fk = [tuple(row) for row in conn.execute("PRAGMA foreign_key_check")]
    return lines + [f"foreign key: {row}" for row in fk]


def expected_messages(datagrams: list[bytes]) -> list[list[str]]:
    """What the app stores for each datagram: the raw text of each of its messages."""
    return [[ev.raw for ev in parse_text(d.decode("utf-8", "replace"))] for d in datagrams]


def stored_session(conn: sqlite3.Connection, session_id: str,
                   archive: bool = False) -> list[sqlite3.Row]:
    """The events of a session in id order, with their source port and message index (from the
    main tables, or from main and archive tables together with ``archive=True``)."""
    pairs = [("pss_events_v2", "pss_event_details")]
    if archive:
        pairs.append(("pss_events_v2_archive", "pss_event_details_archive"))
    selects = [
        f"""SELECT e.id, e.event_sequence AS seq, e.raw_data AS raw,
               (SELECT detail_value FROM {details}
                WHERE event_id = e.id AND detail_key = 'source_port') AS port,
               (SELECT detail_value FROM {details}
                WHERE event_id = e.id AND detail_key = 'index') AS idx
        FROM {events} e WHERE e.session_id = :sid"""
        for events, details in pairs]
    return conn.execute(" UNION ALL ".join(selects) + " ORDER BY id",
                        {"sid": session_id}).fetchall()


def check_exact_prefix(rows, per_datagram: list[list[str]], port: int | None = None) -> int:
    """Assert the stored rows are exactly the first k datagrams of a sender, whole, in order,
    without gaps or duplicates (the session's ``seq`` counts that sender's datagrams from 1).
    Returns k."""
    datagrams = 0
    i = 0
    while i < len(rows):
        seq = rows[i]["seq"]
        assert seq == datagrams + 1, (
            f"datagram sequence jumps from {datagrams} to {seq} at event id {rows[i]['id']}: "
            f"a gap, a duplicate or a reordering")
        assert seq <= len(per_datagram), f"seq {seq} beyond the {len(per_datagram)} sent"
        expected = per_datagram[seq - 1]
        got = [r["raw"] for r in rows[i:i + len(expected)]]
        assert got == expected, f"datagram {seq}: stored {got!r}, sent {expected!r}"
        for k, r in enumerate(rows[i:i + len(expected)]):
            assert r["seq"] == seq, f"datagram {seq} is stored incompletely"
            assert r["idx"] == str(k), f"datagram {seq} message {k} stored as index {r['idx']}"
            if port is not None:
                assert r["port"] == str(port), f"event {r['id']} from port {r['port']}"
        i += len(expected)
        datagrams += 1
    return datagrams


# ----------------------------------------------------------------------------------------- feed


class Sender:
    """The simulator sending in a background thread (``plugins.plugin_udp.simulator.send``)."""

    def __init__(self, port: int, *, seed: int, matches: int, rate: float | None = None,
                 speed: float = 1.0, host: str = "127.0.0.1"):
        from restrike.plugins.plugin_udp import simulator

        self.stop_event = threading.Event()
        self.result: dict | None = None
        self.error: BaseException | None = None
        self.seed, self.matches = seed, matches

        def run():
            try:
                self.result = simulator.send((host, port), senders=1, rate=rate, speed=speed,
                                             matches=matches, seed=seed, stop=self.stop_event)
            except BaseException as exc:  # noqa: BLE001 - reported by finish()
                self.error = exc

        self.thread = threading.Thread(target=run, name="test-sender", daemon=True)

    def start(self) -> Sender:
        self.thread.start()
        return self

    def finish(self, stop: bool = True, timeout: float = 120.0) -> dict:
        if stop:
            self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the sender did not finish"
        if self.error:
            raise self.error
        return self.result

    def datagrams(self) -> list[bytes]:
        from restrike.plugins.plugin_udp.simulator import sender_datagrams

        return sender_datagrams(self.seed, 0, self.matches)


def send_all(port: int, datagrams, host: str = "127.0.0.1") -> int:
    """Send ``datagrams`` from one new socket; returns its source port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for d in datagrams:
            s.sendto(d, (host, port))
        return s.getsockname()[1]


__all__ = ["CommandFailed", "DB_FILE", "EventStream", "Headless", "Sender", "TOKEN",
           "check_exact_prefix", "expected_messages", "free_port", "integrity", "open_db",
           "send_all", "stored_session", "wait_for"]
