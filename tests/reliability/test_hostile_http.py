"""Hostile HTTP clients on the venue network (#10 items 3, 4, 5, 7), against the real headless
app: half-open connections, too many connections, EMFILE, huge and deeply nested bodies, Host
names for every bind address, and an event-stream client that stops reading.

Each test sets short limits through the ``"http"`` section of the config file so it observes
the server closing things without waiting for the production defaults.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import threading
import time

import httpx
import psutil
import pytest
import uvicorn

from restrike.host.http import create_http_app
from restrike.host.http_guard import allowed_host_names
from tests.reliability.conftest import TOKEN, Headless, Sender, free_port, wait_for

HALF_OPEN = 2_000


def raise_nofile(wanted: int) -> None:
    """This test process holds thousands of sockets: raise its own soft limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def half_open(app: Headless, count: int) -> list[socket.socket]:
    """``count`` connections that send the start of a request head and never finish it."""
    opened = []
    head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{app.http_port}\r\n".encode()
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", app.http_port), timeout=10)
        s.sendall(head)
        opened.append(s)
    return opened


def closed_by_server(sockets: list[socket.socket], timeout: float) -> int:
    """Wait until the server has closed every socket (EOF or reset); returns how many it
    closed within ``timeout``."""
    selector = selectors.DefaultSelector()
    for s in sockets:
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    closed = 0
    deadline = time.monotonic() + timeout
    while closed < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            try:
                data = key.fileobj.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                closed += 1
    selector.close()
    return closed


def still_open(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has not closed (nothing readable on them yet)."""
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
    readable = len(selector.select(timeout=0))
    selector.close()
    return len(sockets) - readable


def close_all(sockets: list[socket.socket]) -> None:
    for s in sockets:
        s.close()


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` + ``body`` on a raw socket, read the whole answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head.encode("latin-1") + body)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


@pytest.fixture
def hostile(tmp_path):
    """``hostile(**http_limits)``: a started headless app with that ``"http"`` config."""
    apps = []

    def start(cls=Headless, **http) -> Headless:
        app = cls(tmp_path / f"app{len(apps)}", config={"http": http})
        apps.append(app)
        return app.start()

    yield start
    for app in apps:
        app.close()


# ------------------------------------------------------------------------ half-open connections


@pytest.mark.slow
def test_half_open_connections_neither_block_the_operator_nor_stay_open(hostile):
    raise_nofile(HALF_OPEN * 2 + 512)
    timeout = 15.0
    app = hostile(header_timeout=timeout)
    sockets = half_open(app, HALF_OPEN)
    try:
        started = time.monotonic()
        answer = app.invoke("list_plugins", timeout=5)  # the functional bound: answered at all
        assert answer.status_code == 200 and {"database", "udp"} <= {p["name"]
                                                                     for p in answer.json()}
        assert time.monotonic() - started < 5
        stats = app.call("get_http_stats")
        assert stats["open_connections"] >= HALF_OPEN, "the half-open ones were held meanwhile"
        assert still_open(sockets) == HALF_OPEN and stats["header_timeouts"] == 0
        # ... and the server closes every one of them once the head timeout has passed.
        assert closed_by_server(sockets, timeout + 30) == HALF_OPEN
        assert app.call("get_http_stats")["header_timeouts"] >= HALF_OPEN
    finally:
        close_all(sockets)


def test_a_request_head_that_never_ends_is_closed_after_the_timeout(hostile):
    app = hostile(header_timeout=1)
    sockets = half_open(app, 3)
    with socket.create_connection(("127.0.0.1", app.http_port), timeout=10) as silent:
        sockets.append(silent)  # connects and sends nothing at all
        try:
            assert closed_by_server(sockets, 30) == 4
        finally:
            close_all(sockets)
    assert app.call("get_http_stats")["header_timeouts"] >= 4


def test_beyond_the_connection_limit_the_oldest_half_open_ones_make_room(hostile):
    app = hostile(max_connections=20, header_timeout=600)
    sockets = half_open(app, 100)
    try:
        assert app.invoke("list_plugins", timeout=5).status_code == 200
        stats = app.call("get_http_stats")
        assert stats["evicted"] >= 80 and stats["open_connections"] <= 21
        assert closed_by_server(sockets[:80], 20) == 80, "the oldest were closed"
    finally:
        close_all(sockets)


def test_accept_errors_from_exhausted_file_descriptors_are_logged_rate_limited(hostile):
    app = hostile(header_timeout=1)
    open_fds = len(os.listdir(f"/proc/{app.pid}/fd"))
    soft, hard = resource.prlimit(app.pid, resource.RLIMIT_NOFILE)
    before = app.log_path.stat().st_size
    resource.prlimit(app.pid, resource.RLIMIT_NOFILE, (open_fds + 10, hard))
    sockets = []
    try:
        for _ in range(300):  # connects complete in the kernel's backlog; accept() fails
            s = socket.create_connection(("127.0.0.1", app.http_port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\n")
            sockets.append(s)
        # Several rounds of EMFILE: accepted ones time out, the next ones are accepted, and
        # accept fails again (without the rate limit: one traceback per queued connection
        # each second, megabytes within seconds).
        wait_for(lambda: "out of system resource" in app.log()
                 and _header_timeouts(app) >= 20, 60, 0.2)
    finally:
        close_all(sockets)
        resource.prlimit(app.pid, resource.RLIMIT_NOFILE, (soft, hard))
    grown = app.log_path.stat().st_size - before
    assert grown < 20_000, f"the log grew by {grown} bytes:\n{app.log()[-3000:]}"
    assert app.log().count("out of system resource") <= 3
    assert app.invoke("list_plugins", timeout=10).status_code == 200


def _header_timeouts(app: Headless) -> int:
    try:
        return app.call("get_http_stats", timeout=2)["header_timeouts"]
    except httpx.HTTPError:
        return 0  # the server is out of descriptors right now: our own request waits too


# -------------------------------------------------------------------------------- request bodies


def test_a_body_declared_larger_than_the_limit_is_refused_before_it_is_read(hostile):
    app = hostile(max_body_bytes=100_000)
    status, body = raw_request(app.http_port, (
        f"POST /api/invoke/list_plugins HTTP/1.1\r\nHost: 127.0.0.1:{app.http_port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"))
    assert status == 413
    error = json.loads(body)["error"]
    assert error["type"] == "validation_error" and error["field"] == "body"
    assert "100000 bytes" in error["message"]
    assert app.call("get_http_stats")["body_too_large"] == 1


def test_an_undeclared_body_is_counted_as_it_arrives_and_refused_past_the_limit(hostile):
    app = hostile(max_body_bytes=100_000)
    rss_before = psutil.Process(app.pid).memory_info().rss
    payload = b"[" + b"1," * 50_000  # one byte over the limit, never a complete document
    assert len(payload) == 100_001
    chunk = f"{len(payload):x}\r\n".encode() + payload + b"\r\n"
    status, body = raw_request(app.http_port, (
        f"POST /api/invoke/list_plugins HTTP/1.1\r\nHost: 127.0.0.1:{app.http_port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"), chunk)
    assert status == 413 and json.loads(body)["error"]["field"] == "body"
    assert psutil.Process(app.pid).memory_info().rss - rss_before < 50 * 1024 * 1024


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000,
                                 b'{"a":' * 5_000 + b"1" + b"}" * 5_000, b"[" * 65 + b"]" * 65])
def test_deeply_nested_json_is_a_validation_error_naming_the_body(hostile, raw):
    app = hostile()
    answer = httpx.post(f"{app.base}/api/invoke/get_events", content=raw, timeout=10,
                        headers={"Authorization": f"Bearer {TOKEN}",
                                 "Content-Type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "validation_error" and error["field"] == "body"
    assert "64 levels" in error["message"]
    assert "Traceback" not in app.log() and "RecursionError" not in app.log()
    assert app.call("list_plugins")  # and the server goes on


def test_a_body_that_never_arrives_gets_408(hostile):
    app = hostile(body_timeout=1)
    status, body = raw_request(app.http_port, (
        f"POST /api/invoke/list_plugins HTTP/1.1\r\nHost: 127.0.0.1:{app.http_port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 10\r\n\r\n"), b"[")
    assert status == 408 and json.loads(body)["error"]["field"] == "body"


def test_nested_json_within_the_limit_still_works(hostile):
    app = hostile()
    answer = app.invoke("get_events", {"filters": {"eventType": "pt1"}})
    assert answer.status_code == 200, answer.text


# --------------------------------------------------------------------------------- Host names


class AnyAddress(Headless):
    def command_line(self) -> list[str]:
        return [*super().command_line(), "--http-bind", "0.0.0.0"]


def test_the_host_check_stays_on_for_every_bind_address(hostile):
    app = hostile(AnyAddress)
    port = app.http_port
    auth = {"Authorization": f"Bearer {TOKEN}"}
    interfaces = sorted(n for n in allowed_host_names("0.0.0.0")
                        if n not in ("localhost", "127.0.0.1", "::1"))
    accepted = ["LOCALHOST", f"LocalHost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}",
                socket.gethostname().upper(), f"{socket.getfqdn()}:{port}", *interfaces]
    for host in accepted:
        answer = httpx.post(f"{app.base}/api/invoke/list_plugins", json=[],
                            headers={**auth, "Host": host})
        assert answer.status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", "0.0.0.0", f"0.0.0.0:{port}",
                 "localhost.evil.example", "127.0.0.1.nip.io", ""):
        answer = httpx.post(f"{app.base}/api/invoke/stop_udp_server", json=[],
                            headers={**auth, "Host": host})
        assert answer.status_code == 403, host
    assert app.call("get_udp_status") == "Running"


def test_allowed_host_names_add_to_the_machines_own(make_app):
    app = make_app(allowed_hosts=["Scoreboard.Local"])
    app.start()
    port = free_port()
    names = allowed_host_names("0.0.0.0", app.settings.allowed_hosts)
    http_app = create_http_app(app, TOKEN, allowed_hosts=names)
    server = uvicorn.Server(uvicorn.Config(http_app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 20, message="the HTTP server")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        url = f"http://127.0.0.1:{port}/api/invoke/list_plugins"
        for host, status in (("scoreboard.local", 200), (f"SCOREBOARD.LOCAL:{port}", 200),
                             ("scoreboard.local.evil.example", 403), ("evil.example", 403)):
            assert httpx.post(url, json=[], headers={**auth, "Host": host}).status_code == \
                status, host
    finally:
        server.should_exit = True
        thread.join(10)


# ------------------------------------------------------------------------- slow SSE subscribers


@pytest.mark.slow
def test_an_event_stream_client_that_stops_reading_is_bounded_counted_and_disconnected(hostile):
    max_pending = 50
    app = hostile(write_timeout=3, sse_max_pending=max_pending)
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: tiny window
    stuck.connect(("127.0.0.1", app.http_port))
    stuck.sendall((f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{app.http_port}\r\n"
                   f"Authorization: Bearer {TOKEN}\r\n\r\n").encode())
    assert b": connected" in stuck.recv(4096) or b": connected" in stuck.recv(4096)
    sender = Sender(app.udp_port, seed=10, matches=500, rate=3000).start()
    pending_seen = []

    def sse_sink():
        stats = app.call("get_push_stats")
        sinks = [s for s in stats["sinks"] if s["name"] == "sse"]
        if sinks:
            pending_seen.append(sinks[0]["pending"])
        return stats

    try:
        # It stops reading: its pushes pile up only to the bound, the oldest dropped, counted...
        wait_for(lambda: (s := sse_sink())["dropped"] > 0 and s, 60, 0.1, "dropped pushes")
        # ... and once its writes have been stuck for write_timeout, it is disconnected.
        stats = wait_for(lambda: (s := sse_sink())["disconnected_stuck"] >= 1 and s, 60, 0.2,
                         "the stuck client to be disconnected")
    finally:
        sender.finish()
    assert not [s for s in stats["sinks"] if s["name"] == "sse"], "its sink is gone"
    assert stats["dropped"] > 0, "what was dropped stays counted after the sink is removed"
    assert max(pending_seen) <= max_pending + 10, "at most the bound plus one per snapshot name"
    assert app.call("get_http_stats")["write_timeouts"] >= 1
    stuck.settimeout(30)
    try:
        while stuck.recv(1 << 20):
            pass  # what the kernel still holds for it, then the end
    except ConnectionResetError:
        pass  # the server aborted the connection: what it buffered is freed
    stuck.close()
    # The server is fine and a new subscriber is served.
    with httpx.stream("GET", f"{app.base}/api/events", timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as events:
        assert next(events.iter_lines()) == ": connected"
