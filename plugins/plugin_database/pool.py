"""The pool of read-only SQLite connections that every read command uses.

Modelled on ``psycopg_pool.ConnectionPool`` (``min_size``/``max_size``, ``max_idle``,
``max_lifetime``, a ``check`` callable run on checkout, ``get_stats()``, ``connection()`` as a
context manager, ``getconn``/``putconn``), so a PostgreSQL backend can later put psycopg_pool
itself behind the same interface. Writes never go through this pool: the single ``db-writer``
thread owns the only writing connection.

Times: ``clock`` (injectable, default ``time.monotonic``) ages connections for ``max_idle`` and
``max_lifetime``; waiting for a free connection and the cleanup interval use real time.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from restrike.host.errors import Unavailable
from restrike.host.timeutil import now_iso

log = logging.getLogger(__name__)

# How many recent checkout waits the p99 is computed over (bounded: old samples fall off).
_WAIT_SAMPLES = 2048


class PoolTimeout(Unavailable):
    """No connection became free within the timeout (``unavailable`` for the page)."""


class PoolClosed(Unavailable):
    """The pool was closed (the app is shutting down)."""


def connect_reader(path: str, busy_timeout: float) -> sqlite3.Connection:
    """Open one read-only connection; every SQLite-only pragma of the readers lives here."""
    conn = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only=ON")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextlib.contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``with read_snapshot(conn):`` - the reads inside see one state of the database (a
    deferred ``BEGIN`` ... ``COMMIT``; inside a transaction already, that one's)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute(getattr(conn, "begin_snapshot", "BEGIN"))  # pg.READ_SNAPSHOT on PostgreSQL
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def check_connection(conn: sqlite3.Connection) -> None:
    """The health check run on every checkout: raises if the connection cannot run a query."""
    conn.execute("SELECT 1").fetchone()


def occupancy(in_use: int, idle: int, min_size: int, max_size: int) -> dict:
    """The gauges every pool reports under the same keys (``get_stats``, both backends)."""
    return {
        "available_connections": max_size - in_use,
        "max_connections": max_size,
        "min_connections": min_size,
        "pool_utilization": round(in_use / max_size * 100.0, 2),
        "in_use": in_use,
        "idle": idle,
    }


@dataclass(slots=True)
class _Entry:
    conn: sqlite3.Connection
    created_at: float
    last_used: float


@dataclass(slots=True, eq=False)
class _Waiter:
    event: threading.Event = field(default_factory=threading.Event)
    entry: _Entry | None = None
    closed: bool = False


class ConnectionPool:
    """A bounded, thread-safe pool of read-only connections to one SQLite file.

    ``min_size`` connections are opened at once and kept; more are opened on demand up to
    ``max_size``. A checkout waits at most ``timeout`` s, then raises :class:`PoolTimeout`.
    Every checkout runs ``SELECT 1`` (and ``check(conn)`` when given); a connection that fails
    is closed, counted in ``health_failures`` and replaced, never handed out. A connection
    older than ``max_lifetime`` is closed instead of being reused (``recycled``). The
    ``pool-cleanup`` thread runs :meth:`cleanup` every ``cleanup_interval`` s.
    """

    def __init__(
        self,
        path: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        max_idle: float = 300.0,
        max_lifetime: float = 3600.0,
        cleanup_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        check: Callable[[sqlite3.Connection], None] | None = None,
    ):
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if not 0 <= min_size <= max_size:
            raise ValueError(
                f"min_size must be between 0 and max_size ({max_size}), got {min_size}")
        if timeout <= 0 or cleanup_interval <= 0:
            raise ValueError("timeout and cleanup_interval must be > 0")
        self.path = str(path)
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = float(timeout)
        self.max_idle = float(max_idle)
        self.max_lifetime = float(max_lifetime)
        self.cleanup_interval = float(cleanup_interval)
        self._clock = clock
        self._check = check
        self._lock = threading.Lock()
        # LIFO: the most recently returned connection is reused first, so surplus ones stay
        # at the left end, age, and are closed by the cleanup.
        self._idle: collections.deque[_Entry] = collections.deque()
        self._in_use: dict[int, _Entry] = {}
        self._size = 0  # idle + in use + being opened
        self._closed = False
        self._waits_ms: collections.deque[float] = collections.deque(maxlen=_WAIT_SAMPLES)
        self._created = 0
        self._recycled = 0
        self._health_failures = 0
        self._wait_count = 0
        self._requests = 0
        self._timeouts = 0
        self._last_cleanup: str | None = None
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._wake = threading.Event()
        try:
            for _ in range(min_size):
                entry = self._open()
                with self._lock:
                    self._size += 1
                    self._idle.append(entry)
        except BaseException:
            for entry in self._idle:
                _close_quietly(entry.conn)
            raise
        self._thread = threading.Thread(target=self._cleanup_loop, name="pool-cleanup", daemon=True)
        self._thread.start()

    # -- checkout / return -------------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """``with pool.connection() as conn:`` — a healthy read connection, returned on exit."""
        conn = self.getconn(timeout)
        try:
            yield conn
        finally:
            self.putconn(conn)

    def getconn(self, timeout: float | None = None) -> sqlite3.Connection:
        """Check out a connection (wait at most ``timeout`` s, default the pool's); pair with
        :meth:`putconn`. Raises :class:`PoolTimeout` when exhausted, :class:`PoolClosed`.

        Waiters are served first come, first served: a returned connection goes straight to the
        oldest waiter, so a thread that returns and asks again cannot starve the others."""
        wait_for = self.timeout if timeout is None else float(timeout)
        started = time.monotonic()
        waited = False
        entry: _Entry | None = None
        waiter: _Waiter | None = None
        with self._lock:
            self._requests += 1
            if self._closed:
                raise PoolClosed("database pool closed")
            if self._idle:
                entry = self._idle.pop()
            elif self._size < self.max_size:
                self._size += 1  # reserve the slot; open outside the lock
            else:
                waiter = _Waiter()
                self._waiters.append(waiter)
        if waiter is not None:
            waited = True
            try:
                waiter.event.wait(max(0.0, started + wait_for - time.monotonic()))
            except BaseException:  # interrupted: give back whatever was handed over meanwhile
                self._abandon(waiter)
                raise
            with self._lock:
                if not waiter.event.is_set():
                    self._waiters.remove(waiter)
                    self._timeouts += 1
                    self._record_wait(started, waited)
                    raise PoolTimeout(
                        f"database pool exhausted: all {self.max_size} connections in use "
                        f"for {wait_for:.1f} s"
                    )
            if waiter.closed:
                raise PoolClosed("database pool closed")
            entry = waiter.entry  # None: a free slot was handed over instead
        if entry is None or not self._usable(entry):
            try:
                entry = self._open()  # a new slot, or the replacement of a bad connection
            except BaseException:
                self._release_slot()
                raise
        with self._lock:
            if self._closed:
                self._size -= 1
                _close_quietly(entry.conn)
                raise PoolClosed("database pool closed")
            self._in_use[id(entry.conn)] = entry
            self._record_wait(started, waited)
        return entry.conn

    def putconn(self, conn: sqlite3.Connection) -> None:
        """Return a connection taken with :meth:`getconn` (any open transaction is rolled back)."""
        with self._lock:
            entry = self._in_use.pop(id(conn), None)
        if entry is None:
            raise ValueError("connection does not belong to this pool (or was returned twice)")
        keep = True
        try:
            if conn.in_transaction:
                conn.rollback()
        except sqlite3.Error:
            keep = False  # broken: the next checkout would fail its check anyway
        now = self._clock()
        expired = now - entry.created_at >= self.max_lifetime
        if keep and not expired:
            entry.last_used = now
            with self._lock:
                if not self._closed:
                    self._give(entry)
                    return
        elif expired and keep:
            with self._lock:
                self._recycled += 1
        _close_quietly(conn)
        self._release_slot()

    # -- maintenance ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Run the cleanup now: close idle connections idle longer than ``max_idle`` beyond
        ``min_size``, close idle ones older than ``max_lifetime``, and reopen up to ``min_size``."""
        now = self._clock()
        to_close: list[_Entry] = []
        with self._lock:
            if self._closed:
                return
            keep: collections.deque[_Entry] = collections.deque()
            # Oldest-used first (left end), so the survivors are the recently used ones.
            surplus = self._size - self.min_size
            for entry in self._idle:
                if now - entry.created_at >= self.max_lifetime:
                    to_close.append(entry)
                    self._recycled += 1
                    surplus -= 1
                elif surplus > 0 and now - entry.last_used >= self.max_idle:
                    to_close.append(entry)
                    surplus -= 1
                else:
                    keep.append(entry)
            self._idle = keep
            self._size -= len(to_close)
            missing = self.min_size - self._size
            self._size += max(missing, 0)
            self._last_cleanup = now_iso()
        for entry in to_close:
            _close_quietly(entry.conn)
        for _ in range(max(missing, 0)):
            try:
                entry = self._open()
            except sqlite3.Error:
                log.exception("pool cleanup could not reopen a connection to %s", self.path)
                self._release_slot()
                continue
            with self._lock:
                if self._closed:
                    self._size -= 1
                    _close_quietly(entry.conn)
                    continue
                if self._waiters:
                    self._give(entry)
                else:
                    self._idle.appendleft(entry)  # unused yet: first in line for the cleanup
        if to_close:
            log.debug("pool cleanup closed %d idle connection(s)", len(to_close))

    def wake_cleanup(self) -> None:
        """Make the ``pool-cleanup`` thread run its round now instead of at the next interval."""
        self._wake.set()

    def get_stats(self) -> dict:
        """Counters and gauges of the pool (JSON-serialisable).

        ``available_connections`` idle ones plus slots not yet opened; ``max_connections``;
        ``pool_utilization`` in_use / max * 100; ``in_use``; ``idle``; ``created`` (opened in
        total); ``recycled`` (closed for age); ``health_failures`` (failed the checkout check);
        ``wait_count`` (checkouts that had to wait); ``requests_waiting`` (waiting now);
        ``timeouts``; ``wait_ms_p99`` (over the last checkouts); ``requests`` (checkouts asked
        for); ``last_cleanup`` (ISO time or None).
        """
        with self._lock:
            in_use = len(self._in_use)
            idle = len(self._idle)
            waits = sorted(self._waits_ms)
            stats = {
                **occupancy(in_use, idle, self.min_size, self.max_size),
                "size": self._size,
                "created": self._created,
                "recycled": self._recycled,
                "health_failures": self._health_failures,
                "wait_count": self._wait_count,
                "requests_waiting": len(self._waiters),
                "timeouts": self._timeouts,
                "requests": self._requests,
                "last_cleanup": self._last_cleanup,
            }
        stats["wait_ms_p99"] = round(_percentile(waits, 0.99), 3) if waits else 0.0
        return stats

    def close(self, timeout: float = 5.0) -> None:
        """Stop the cleanup thread and close idle connections; connections still checked out
        are closed when returned. Waiting checkouts get :class:`PoolClosed`. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = list(self._idle), collections.deque()
            self._size -= len(idle)
            for waiter in self._waiters:
                waiter.closed = True
                waiter.event.set()
            self._waiters.clear()
        self._wake.set()
        for entry in idle:
            _close_quietly(entry.conn)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _open(self) -> _Entry:
        conn = connect_reader(self.path, self.timeout)
        now = self._clock()
        with self._lock:
            self._created += 1
        return _Entry(conn, now, now)

    def _usable(self, entry: _Entry) -> bool:
        """Validate a connection about to be handed out; on failure close it (its slot stays
        reserved for the caller's replacement)."""
        if self._clock() - entry.created_at >= self.max_lifetime:
            with self._lock:
                self._recycled += 1
            _close_quietly(entry.conn)
            return False
        try:
            check_connection(entry.conn)
            if self._check is not None:
                self._check(entry.conn)
        except Exception as exc:  # noqa: BLE001 - any failure means "do not hand it out"
            log.warning("pool: closing a connection that failed its health check: %s", exc)
            with self._lock:
                self._health_failures += 1
            _close_quietly(entry.conn)
            return False
        return True

    def _give(self, entry: _Entry) -> None:
        """Hand ``entry`` to the oldest waiter, else put it in the idle list (lock held)."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.entry = entry
            waiter.event.set()
        else:
            self._idle.append(entry)

    def _abandon(self, waiter: _Waiter) -> None:
        with self._lock:
            if not waiter.event.is_set():
                self._waiters.remove(waiter)
                return
            if waiter.entry is not None and not self._closed:
                self._give(waiter.entry)
                return
        if waiter.entry is not None:
            _close_quietly(waiter.entry.conn)
        if not waiter.closed:
            self._release_slot()

    def _release_slot(self) -> None:
        """A connection was closed: its slot goes to the oldest waiter (to open a new one)."""
        with self._lock:
            if self._waiters and not self._closed:
                self._waiters.popleft().event.set()  # entry None: open your own
            else:
                self._size -= 1

    def _record_wait(self, started: float, waited: bool) -> None:
        # Called with the lock held.
        self._waits_ms.append((time.monotonic() - started) * 1000.0)
        if waited:
            self._wait_count += 1

    def _cleanup_loop(self) -> None:
        while True:
            self._wake.wait(self.cleanup_interval)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.cleanup()
            except Exception:  # the thread must survive one bad round
                log.exception("pool cleanup failed")


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        log.debug("closing a pooled connection failed", exc_info=True)


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]
