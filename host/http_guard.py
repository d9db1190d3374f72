"""What the HTTP server refuses from a hostile network: bounds in bytes and seconds per connection.

uvicorn and h11 already bound a request's head (h11: 16 KiB, else 400) and close idle keep-alive
connections (``timeout_keep_alive``), but nothing closes a connection whose request head never
ends, nor one that stops reading a response, and nothing limits the number of connections (each
holds a file descriptor until ``accept`` fails with EMFILE for everyone). ``GuardedH11Protocol``
adds those three bounds to uvicorn's own h11 protocol; ``read_json_body`` bounds a request body
in bytes, time and JSON nesting; ``RateLimitedLog`` keeps a flood of identical errors (EMFILE
from ``accept``, garbage requests) from growing the log by megabytes; ``allowed_host_names`` is
the Host allow-list (DNS rebinding) for any bind address.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import h11
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
STALLED = "restrike.write_stalled"
FD_RESERVE = 256
"""File descriptors kept free of HTTP connections for the database, logs and UDP socket."""


class HttpLimits(BaseModel):
    """The ``"http"`` section of the config file (all optional)."""

    model_config = ConfigDict(extra="forbid")

    header_timeout: float = Field(10.0, gt=0, le=3600)
    """Seconds a connection may take to send a request head; then it is closed."""
    body_timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds a request body may take to arrive; then 408."""
    write_timeout: float = Field(15.0, gt=0, le=3600)
    """Seconds a client may leave a response unread (the write buffer full); then disconnected."""
    max_connections: int = Field(4_096, ge=8, le=1_000_000)
    """Open HTTP connections; a new one beyond it closes the oldest still sending its head."""
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=1024**3)
    """A command's request body; larger → 413, counted without keeping it."""
    max_json_depth: int = Field(64, ge=2, le=500)
    """Nesting of arrays/objects in a command's body; deeper → 400."""
    sse_max_pending: int = Field(1_000, ge=10, le=100_000)
    """Pushes waiting per event-stream client; the oldest are dropped and counted beyond it."""


class HttpStats:
    """Counters of what the guards refused (``get_http_stats``)."""

    FIELDS = ("header_timeouts", "write_timeouts", "evicted", "refused", "body_too_large",
              "body_timeouts", "too_deep")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)
        self.open_connections = 0
        self.max_connections = 0

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {**self._counts, "open_connections": self.open_connections,
                    "max_connections": self.max_connections}


# ------------------------------------------------------------------------------- the Host check


def host_name(header: str) -> str:
    """``LocalHost.:8765`` → ``localhost``; ``[::1]:8765`` → ``::1`` (no port, lower case)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def allowed_host_names(bind: str, extra: list[str] | tuple = ()) -> frozenset[str]:
    """Names a request may give in ``Host``: loopback, the bind address, this machine's names
    and interface addresses, and ``extra`` (``--allowed-host``). A page served from any other
    name (DNS rebinding) is refused, whatever the bind address."""
    import psutil

    names = set(LOOPBACK_NAMES) | {bind}
    for lookup in (socket.gethostname, socket.getfqdn):
        try:
            names.add(lookup())
        except OSError:
            pass
    try:
        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(address.address.split("%", 1)[0])  # fe80::1%eth0: no zone
    except OSError:
        log.warning("could not list the network interfaces for the Host check", exc_info=True)
    names.update(extra)
    return frozenset(host_name(n) for n in names if n and host_name(n) not in ("0.0.0.0", "::"))


# ------------------------------------------------------------------------------ request bodies


class BodyRefused(Exception):
    """A body refused before binding: its HTTP status, and the ``HttpStats`` counter it adds to."""

    def __init__(self, status: int, message: str, counter: str | None = None):
        super().__init__(message)
        self.status = status
        self.counter = counter


def _error(status: int, message: str) -> JSONResponse:
    # Closing the connection after a refused body: the rest of it is not read (nor kept).
    return JSONResponse({"error": {"type": "validation_error", "field": "body",
                                   "message": message}}, status,
                        headers={"Connection": "close"} if status != 400 else None)


def nesting_too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests arrays/objects more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) \
            else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def decode_json_body(raw: bytes, max_depth: int) -> Any:
    """The JSON of a command body (None when empty), or ``BodyRefused`` (400) naming why."""
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except RecursionError:  # the C scanner's own limit (~1,000 levels) came first
        value = None
        too_deep = True
    except ValueError:
        raise BodyRefused(400, "request body is not valid JSON") from None
    else:
        too_deep = nesting_too_deep(value, max_depth)
    if too_deep:
        raise BodyRefused(400, f"request body nests arrays/objects more than {max_depth} "
                               "levels deep", counter="too_deep")
    return value


async def read_json_body(request: Request, limits: HttpLimits,
                         stats: HttpStats) -> tuple[Any, Response | None]:
    """``(arguments, None)`` or ``(None, error response)``: the body is counted as it arrives
    and never held beyond ``max_body_bytes`` (413), must arrive within ``body_timeout`` (408),
    and must be JSON nested at most ``max_json_depth`` levels (400)."""
    limit = limits.max_body_bytes
    too_large = f"request body is larger than {limit} bytes"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        stats.count("body_too_large")
        return None, _error(413, too_large)
    raw = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > limit:
                    stats.count("body_too_large")
                    return None, _error(413, too_large)
    except TimeoutError:
        stats.count("body_timeouts")
        return None, _error(408, f"request body did not arrive within {limits.body_timeout} s")
    try:
        return decode_json_body(bytes(raw), limits.max_json_depth), None
    except BodyRefused as refused:
        if refused.counter:
            stats.count(refused.counter)
        return None, _error(refused.status, str(refused))


# ------------------------------------------------------------------------------- connections


def guarded_protocol(limits: HttpLimits, stats: HttpStats) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a head timeout, a write-stall timeout and a connection
    limit (one class per server: the limits and the connections waiting for a head are its
    own)."""
    waiting: dict[GuardedH11Protocol, None] = {}  # insertion order: the oldest first
    stats.max_connections = limits.max_connections

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _stall_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                # Make room for this one: the oldest connection still sending its head is the
                # likeliest attacker; if every connection is busy, this one is refused.
                victim = next(iter(waiting), self)
                stats.count("evicted" if victim is not self else "refused")
                victim._close()
                if victim is self:
                    return
            self._wait_for_head()
            stats.open_connections = len(self.connections)

        def _wait_for_head(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.header_timeout, self._head_late)
                waiting[self] = None

        def _head_arrived(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            waiting.pop(self, None)

        def _head_late(self) -> None:
            self._head_timer = None
            stats.count("header_timeouts")
            self._close()

        def _close(self) -> None:
            self._head_arrived()
            self.transport.abort()  # abort: what is buffered for a stuck peer is freed at once

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._wait_for_head()  # a (next) request has begun and its head is not complete
            else:
                self._head_arrived()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # idle now: uvicorn's keep-alive timeout applies
            self._head_arrived()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stall_timer is None:
                self._stall_timer = self.loop.call_later(limits.write_timeout, self._stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None

        def _stalled(self) -> None:
            self._stall_timer = None
            stats.count("write_timeouts")
            if self.cycle is not None:  # tells the response why it ends (``write_stalled``)
                self.cycle.scope["state"][STALLED] = True
            self._close()

        def connection_lost(self, exc) -> None:
            self._head_arrived()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None
            super().connection_lost(exc)
            stats.open_connections = len(self.connections)

    return GuardedH11Protocol


def write_stalled(scope: Mapping[str, Any]) -> bool:
    """Whether the server disconnected this request's client for not reading its response."""
    return bool(scope.get("state", {}).get(STALLED))


def connection_limit(wanted: int) -> int:
    """``wanted`` connections, or fewer if the process may not open that many files: the soft
    RLIMIT_NOFILE is raised towards the hard one first, and ``FD_RESERVE`` stays free."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < target:
        new = target if hard == resource.RLIM_INFINITY else min(target, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - FD_RESERVE))


# -------------------------------------------------------------------------------------- logs


class RateLimitedLog(logging.Filter):
    """Lets through one record per message (its first line) and logger every ``interval``
    seconds; the next one that passes says how many were suppressed. Attached to the loggers a
    flood of connections can make talk (asyncio's EMFILE on accept, uvicorn's invalid
    requests)."""

    def __init__(self, interval: float = 10.0):
        super().__init__()
        self._interval = interval
        self._last: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg).split("\n", 1)[0][:200])
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (-self._interval, 0))
            if now - last < self._interval:
                self._last[key] = (last, suppressed + 1)
                return False
            self._last[key] = (now, 0)
            if len(self._last) > 1_000:  # bounded: forget the oldest templates
                for old in list(self._last)[:500]:
                    del self._last[old]
        if suppressed:
            record.msg = (f"{record.msg}\n({suppressed} more like this in the last "
                          f"{now - last:.0f} s not logged)")
        return True


def rate_limit_server_logs(interval: float = 10.0) -> None:
    """Install ``RateLimitedLog`` on asyncio's and uvicorn's loggers (once per process)."""
    for name in ("asyncio", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
            logger.addFilter(RateLimitedLog(interval))
