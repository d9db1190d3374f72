"""The single writer: the ``db-writer`` thread is the only one that writes to the database.

This module is the engine: the bounded queue, the thread, the retries, the statistics and the
back-pressure. What one batch stores, and how, is ``batch.py`` (``BatchStore``): one
transaction per batch; the writer drains its queue into a batch of up to ``batch_max_events``
events and hands it over.

Acknowledged = committed
    ``flush(timeout)`` returns True once everything enqueued before the call is committed (or
    counted as lost, see below). What a flush acknowledged survives closing and reopening the
    writer, and a crash of the process (WAL + commit).

What a power cut costs (``PRAGMA synchronous``, WAL journal)
    - ``FULL``: the WAL is synced to disk at every commit. A power cut or OS crash loses nothing
      that was committed; each batch pays one fsync (sub-millisecond on an SSD, up to tens of
      ms on a hard disk or a USB stick).
    - ``NORMAL`` (default): the WAL is synced only at checkpoints. A crash of the app loses
      nothing committed; a power cut or OS crash can roll back the transactions committed since
      the last checkpoint (``checkpoint.py``'s thread, not this one, checkpoints at most every
      ``checkpoint_interval_s``: about the last second of feed). The file stays consistent.
    - ``OFF``: never synced. A crash of the app still loses nothing committed (the OS has the
      data); a power cut or OS crash can lose recent transactions and can corrupt the file.

When the database is slower than the feed (bounded queue, back-pressure)
    The queue holds at most ``queue_max_events`` events and ``queue_max_bytes`` bytes, an event
    costed at its raw text (plus its datagram's base64 bytes on the datagram's first message)
    and ``EVENT_OVERHEAD`` bytes for its Python objects (``event_bytes``): a feed of 64 KiB
    messages reaches the byte bound long before the event bound. A batch that does not fit
    either bound waits for room up to ``submit(..., wait=)`` seconds while the writer is making
    progress: the caller
    (the UDP dispatcher) slows to the writer's pace, and the backlog stays upstream as raw
    datagrams in the receiver's own bounded queue, which costs far less memory than parsed
    events (``waits`` and ``waited_s`` count it). A batch that still does not fit - the wait
    ran out, or the writer is closed or holding a failed write, when waiting would only delay
    the loss - is refused whole: its events are counted in ``dropped`` (and its batches in
    ``dropped_batches``), an error is logged (at most every 5 s, with the totals), and
    ``stats()`` - the ``storage`` section of ``get_udp_stats`` - shows it; ``full_bytes``
    counts the batches that found the queue full by its byte bound (waited or dropped).

When a write fails (disk full, I/O error, locked file)
    The transaction is rolled back and the batch is ``held``: retried with a backoff (50 ms
    doubling to 5 s) until it succeeds; ``failed_writes`` and ``last_error`` say so. Events that
    arrive meanwhile wait in the queue behind it (order is kept; beyond the queue bound they are
    dropped and counted as above). ``run`` calls are not held up by held data, so an operator
    can still free space or change settings. Any other error (a bug, a constraint) makes the
    writer redo the batch on ``BatchStore``'s careful path, one event at a time: an event whose
    processing fails is stored bare; one that cannot be stored even so is counted in ``lost``
    with ``last_error``. If the writer is closed while a batch is still held, what was not
    written is counted in ``lost`` and logged.

When the central database cannot be reached (store-and-forward, PostgreSQL only)
    With a ``spool`` (``spool.py``: a local SQLite file) and an ``unreachable(exc)`` test, a
    batch whose write fails because the server cannot be reached (connection refused, lost,
    closed, the server shutting down) is committed to the spool instead of being held, and
    acknowledged (a ``flush`` returns True once it is spooled: a SIGKILL does not lose it).
    While the spool is not empty every new batch goes there too, after it, so the order is
    kept. The writer opens a new connection (``connect()``: a broken one stays broken) and
    retries with the same backoff (50 ms doubling to 5 s); when the server answers it forwards
    the spool oldest first, each spooled batch in its own transaction through ``BatchStore``
    (the match state follows: it applies a batch only when the server committed it), deleting
    it from the spool right after the commit, taking turns with spooling what arrives
    meanwhile. Exactly once: a batch whose commit may or may not have happened (the connection
    died during it, or the process died between the server's commit and the spool's delete)
    is looked up by its first event's natural key before it is resent, and dropped if the
    server has it. A full spool (``spool_max_bytes``) refuses new batches (counted in
    ``spool.dropped``, logged at most every 5 s); spooled ones are never dropped. Closing
    during an outage keeps the spool for the next start, which forwards it before anything new.
    ``run`` functions that fail because the server cannot be reached raise ``Unavailable``
    ("central database unavailable").
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import operator
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from restrike.host.errors import Unavailable
from restrike.host.timeutil import now_iso
from restrike.pss.session import UdpSession

from .backend import Error, OperationalError
from .batch import BatchStore, Events, Session
from .maintenance import storage_full
from .spool import Spool, Spooled
from .transactions import rollback, transaction

# transaction: where ``Writer.run`` functions have always found it (it lives in transactions.py)
__all__ = ["EVENT_OVERHEAD", "Writer", "event_bytes", "transaction"]

log = logging.getLogger(__name__)

_DROP_LOG_INTERVAL = 5.0
UNAVAILABLE = "central database unavailable"
"""The message of ``Unavailable`` when the central database cannot be reached."""
_NO_CONTEXT = (None, None)

EVENT_OVERHEAD = 1024
"""Bytes an event costs in the writer's queue besides its raw text: the ``IngestedEvent``, its
parsed pydantic model and their strings (a few hundred bytes each, measured with
``sys.getsizeof`` on the simulator's feed, rounded up)."""

_RAW = operator.attrgetter("raw")

# A spooled batch's first event, by its natural key (session, datagram sequence, index in it):
# the UNIQUE index idx_pss_events_v2_natural answers it.
_EVENT_EXISTS = (
    "SELECT 1 FROM pss_events_v2 WHERE session_id = ? AND event_sequence = ? "
    "AND datagram_index = ? LIMIT 1"
)


def event_bytes(events: list) -> int:
    """What ``events`` cost against ``queue_max_bytes``: raw text, the datagram's base64 once
    (on its first message: its other messages share the same string), ``EVENT_OVERHEAD`` each."""
    size = sum(map(len, map(_RAW, events))) + EVENT_OVERHEAD * len(events)
    for ev in events:
        if ev.raw_b64 and not ev.index:
            size += len(ev.raw_b64)
    return size


# -- queue items (the data ones, Events and Session, are batch.py's) ----------------------------


@dataclass(slots=True)
class _Marker:
    done: threading.Event


@dataclass(slots=True)
class _Call:
    fn: Callable[[Any], Any]
    future: concurrent.futures.Future


def _close_quietly(conn) -> None:
    try:
        conn.close()
    except Exception:  # a broken connection may fail to close: it is gone either way
        log.debug("closing a database connection failed", exc_info=True)


def _event_count(item) -> int:
    return len(item.events) if isinstance(item, Events) else 0


def _event_size(item) -> int:
    return item.size if isinstance(item, Events) else 0


class Writer:
    """The writer thread and its bounded queue (see the module docstring for the guarantees).

    ``conn`` must come from ``maintenance.connect_writer`` and be migrated; from ``start()`` on,
    only the writer thread uses it (and ``run`` functions, on that thread).

    With a spool, ``conn`` may be None: the central server could not be reached at the start.
    The writer then starts spooling at once and tries ``connect`` with the backoff; at the
    first connection ``prepare(conn)`` runs (the migrations) before anything is stored.
    ``close_interrupted(conn)`` (the sessions an earlier run left running) runs once, when the
    server has everything of earlier runs and nothing of this one: at the first connection
    when the spool holds no batch of an earlier process, else right after its last one is
    forwarded (so a spooled "running" record of the killed run cannot revive its session, and
    the session's end is its last event, forwarded or not).
    """

    def __init__(
        self,
        conn: Any,
        *,
        queue_max_events: int = 100_000,
        queue_max_bytes: int = 128 * 1024 * 1024,
        batch_max_events: int = 1_000,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        court: str | None = None,
        on_commit: Callable[[], None] | None = None,
        spool: Spool | None = None,
        connect: Callable[[], Any] | None = None,
        unreachable: Callable[[BaseException], bool] | None = None,
        prepare: Callable[[Any], None] | None = None,
        close_interrupted: Callable[[Any], int] | None = None,
    ):
        if queue_max_events < 1 or batch_max_events < 1 or queue_max_bytes < 1:
            raise ValueError("queue_max_events, queue_max_bytes and batch_max_events must be >= 1")
        self._conn = conn
        self._queue_max = queue_max_events
        self._queue_max_bytes = queue_max_bytes
        self._batch_max = batch_max_events
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        if conn is None and (spool is None or connect is None):
            raise ValueError("a writer without a connection needs a spool and connect")
        self._court = court
        self._store: BatchStore | None = None if conn is None else \
            BatchStore(conn, self._note_error, court=court)
        self._on_commit = on_commit  # told after each committed batch (courts.py), never blocks
        self._context: tuple = _NO_CONTEXT

        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the writer thread waits for work on it
        self._room = threading.Condition(lock)  # submitters wait for queue room on it
        self._seq = 0
        self._data: collections.deque = collections.deque()  # (seq, _Events|_Session|_Marker)
        self._calls: collections.deque = collections.deque()  # (seq, _Call)
        self._pending = 0  # events in _data
        self._pending_bytes = 0  # their event_bytes
        self._in_flight = 0  # events being written now
        self._in_flight_bytes = 0
        self._held: list | None = None
        self._held_events = 0
        self._retry_at = 0.0
        self._retry_delay = 0.0
        self._closing = False
        self._close_deadline = 0.0
        self._closed = False

        self._stored = 0
        self._batches = 0
        self._failed_writes = 0
        self._dropped = 0
        self._dropped_batches = 0
        self._waits = 0
        self._waited_ns = 0
        self._full_bytes = 0
        self._lost = 0
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        self._last_commit_at: str | None = None
        self._last_drop_log = float("-inf")

        # store-and-forward (see the module docstring); only with a spool
        self._spool = spool
        self._connect = connect
        self._unreachable = unreachable or (lambda exc: False)
        self._reconnect = conn is None  # the connection broke: open a new one before using it
        self._down = conn is None  # the last attempt found the server unreachable
        self._unreachable_since: str | None = now_iso() if conn is None else None
        self._prepare = prepare
        self._close_interrupted = close_interrupted
        self.interrupted_sessions = 0  # closed as interrupted by close_interrupted
        self._forward_turn = True  # spooling and forwarding take turns while both have work
        self._spooled = self._spooled_batches = 0
        self._forwarded = self._forwarded_batches = 0
        self._spool_dropped = self._spool_dropped_batches = 0
        self._already_there = 0  # spooled batches the server had already (not sent twice)
        self._last_spool_drop_log = float("-inf")
        self._thread = threading.Thread(target=self._loop, name="db-writer", daemon=True)

    # -- the API other threads call ---------------------------------------------------------

    def start(self) -> Writer:
        """Start the ``db-writer`` thread."""
        self._thread.start()
        return self

    def submit(self, events: list, wait: float = 0.0) -> bool:
        """Queue a batch of ``IngestedEvent`` for storage.

        When the queue has no room, waits up to ``wait`` s for the writer to make room (not at
        all while it is closed or holding a failed write). Returns False when the batch was
        refused: it is then counted in ``dropped`` and logged. The current tournament context
        is stamped when the batch is queued.
        """
        count = len(events)
        if not count:
            return True
        size = event_bytes(events)
        with self._cond:
            if not self._fits(count, size):
                if size + self._pending_bytes > self._queue_max_bytes:
                    self._full_bytes += 1
                if wait > 0 and count <= self._queue_max and size <= self._queue_max_bytes:
                    self._wait_for_room(count, size, wait)
            if not self._closing and self._fits(count, size):
                self._seq += 1
                self._data.append((self._seq, Events(list(events), self._context, size)))
                self._pending += count
                self._pending_bytes += size
                self._cond.notify()
                return True
            self._dropped += count
            self._dropped_batches += 1
            reason = "the writer is closed" if self._closing else (
                f"the queue is full ({self._pending} of {self._queue_max} events, "
                f"{self._pending_bytes} of {self._queue_max_bytes} bytes waiting)")
            now = time.monotonic()
            should_log = now - self._last_drop_log >= _DROP_LOG_INTERVAL
            if should_log:
                self._last_drop_log = now
            totals = (self._dropped, self._dropped_batches)
        if should_log:
            log.error("database writer dropped a batch of %d events: %s (dropped so far: %d "
                      "events in %d batches)", count, reason, *totals)
        return False

    def _fits(self, count: int, size: int) -> bool:
        # Called with the lock held.
        return (self._pending + count <= self._queue_max
                and self._pending_bytes + size <= self._queue_max_bytes)

    def _wait_for_room(self, count: int, size: int, wait: float) -> None:
        # Called with the lock held.
        start = time.monotonic_ns()
        deadline = time.monotonic() + wait
        self._waits += 1
        while not self._fits(count, size) and not self._closing and self._held is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._room.wait(left)
        self._waited_ns += time.monotonic_ns() - start

    def submit_session(self, session: UdpSession) -> None:
        """Queue a UDP session record (``restrike_udp_session``); written in order with events."""
        with self._cond:
            if self._closing:
                log.error("database writer closed: session %s not recorded", session.session_id)
                return
            self._seq += 1
            self._data.append((self._seq, Session(session)))
            self._cond.notify()

    def run(self, fn: Callable[[Any], Any], timeout: float | None = None) -> Any:
        """Run ``fn(conn)`` on the writer thread and return its result (or raise its exception).

        ``conn`` is the writing connection in autocommit mode, foreign keys on: ``fn`` opens
        and commits its own transactions (``BEGIN IMMEDIATE`` ... ``COMMIT``); one left open is
        rolled back and reported as an error. ``fn`` runs after the events queued before it are
        written, except while a failed write is held: then it runs at once. ``timeout`` bounds
        the wait for ``fn`` to start; when it expires first, ``fn`` never runs and
        ``Unavailable`` is raised.
        """
        if threading.current_thread() is self._thread:
            return fn(self._conn)  # already on the writer thread (fn calling run)
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing or not self._thread.is_alive():
                raise Unavailable("the database writer is not running")
            self._seq += 1
            self._calls.append((self._seq, _Call(fn, future)))
            self._cond.notify()
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.cancel():
                raise Unavailable(
                    f"the database writer did not get to this within {timeout} s "
                    f"(last error: {self._last_error or 'none'})"
                ) from None
            return future.result()  # it started meanwhile: its outcome is near

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is committed (or counted as lost).

        Returns False if ``timeout`` s passed first (e.g. while a write is held).
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() called on the writer thread would wait for itself")
        marker = _Marker(threading.Event())
        with self._cond:
            if self._closing and not self._thread.is_alive():
                return not self._data and self._held is None
            self._seq += 1
            self._data.append((self._seq, marker))
            self._cond.notify()
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and close the connection. A write still
        failing after ``timeout`` s is given up: its events are counted in ``lost``."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + timeout
                self._cond.notify_all()
                self._room.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout + 5.0)
        elif not self._thread.is_alive() and not self._closed:
            if self._conn is not None:
                self._conn.close()  # never started
            if self._spool is not None:
                self._spool.close()
            self._closed = True

    @property
    def context(self) -> tuple:
        """``(tournament_id, tournament_day_id)`` stamped on events submitted from now on."""
        return self._context

    def set_context(self, tournament_id: int | None, tournament_day_id: int | None) -> None:
        """Set the tournament context: commands call it on the writer thread after validating
        the ids; on PostgreSQL the listening thread too (``tournaments.follow_context``: one
        assignment, events queued from then on carry it). With a spool it is kept there too,
        for a start while the server cannot be reached."""
        self._context = (tournament_id, tournament_day_id)
        if self._spool is not None:
            try:
                self._spool.save_context(tournament_id, tournament_day_id)
            except sqlite3.Error:  # the local disk; the server has it (tournaments.save_context)
                log.exception("keeping the tournament context in the spool failed")

    def tournament_in_use(self, tournament_id: int) -> bool:
        """True if the context or an event not yet written refers to this tournament."""
        with self._cond:
            items = [item for _, item in self._data] + list(self._held or ())
            return self._context[0] == tournament_id or any(
                isinstance(item, Events) and item.context[0] == tournament_id for item in items
            )

    def stats(self) -> dict:
        """The ``storage`` section of ``get_udp_stats``: ``stored`` (committed events),
        ``pending`` (queued or being written), ``batches`` (committed transactions),
        ``failed_writes`` (transactions rolled back), ``held`` (events of a failed write
        waiting for a retry), ``dropped``/``dropped_batches`` (refused: queue full or closed),
        ``waits``/``waited_s`` (batches that waited for room, and how long in all: the feed was
        faster than the database), ``full_bytes`` (batches that found the queue full by its
        byte bound), ``lost`` (taken but never written), ``queue_max``, ``pending_bytes``,
        ``queue_max_bytes``, ``last_error``, ``last_error_at``, ``last_commit_at``, and ``spool``
        (None without one): its ``depth`` (``events``, ``batches``, ``bytes``, ``max_bytes``),
        ``unreachable`` (the server could not be reached at the last attempt),
        ``unreachable_since``, ``last_success_at`` (the last commit on the server),
        ``spooled``/``forwarded``/``dropped`` events (and ``*_batches``), ``already_there``
        (spooled batches the server turned out to have: not sent twice)."""
        with self._cond:
            return {
                "stored": self._stored,
                "pending": self._pending + self._in_flight,
                "batches": self._batches,
                "failed_writes": self._failed_writes,
                "held": self._held_events,
                "dropped": self._dropped,
                "dropped_batches": self._dropped_batches,
                "waits": self._waits,
                "waited_s": round(self._waited_ns / 1e9, 3),
                "full_bytes": self._full_bytes,
                "lost": self._lost,
                "queue_max": self._queue_max,
                "pending_bytes": self._pending_bytes + self._in_flight_bytes,
                "queue_max_bytes": self._queue_max_bytes,
                "last_error": self._last_error,
                "last_error_at": self._last_error_at,
                "last_commit_at": self._last_commit_at,
                "shape_cache": self._store.shapes.stats() if self._store is not None else None,
                "spool": self._spool_stats(),
            }

    def _spool_stats(self) -> dict | None:
        # Called with the lock held.
        if self._spool is None:
            return None
        return {
            "depth": self._spool.depth(),
            "unreachable": self._down,
            "unreachable_since": self._unreachable_since,
            "last_success_at": self._last_commit_at,
            "spooled": self._spooled,
            "spooled_batches": self._spooled_batches,
            "forwarded": self._forwarded,
            "forwarded_batches": self._forwarded_batches,
            "dropped": self._spool_dropped,
            "dropped_batches": self._spool_dropped_batches,
            "already_there": self._already_there,
        }

    # -- the writer thread --------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                kind, work = self._next()
                if kind == "stop":
                    break
                if kind == "call":
                    self._run_call(work)
                elif kind == "forward":
                    self._forward()
                else:
                    self._write(work)
        except BaseException:
            log.exception("the database writer thread failed")
            raise
        finally:
            self._finish()

    def _next(self) -> tuple[str, Any]:
        """The next piece of work, in queue order; blocks until there is one."""
        with self._cond:
            while True:
                if self._held is not None:
                    if self._calls:
                        return "call", self._calls.popleft()[1]
                    now = time.monotonic()
                    if self._closing and now >= self._close_deadline:
                        return "stop", None
                    if now >= self._retry_at:
                        return "write", self._held
                    wait = self._retry_at - now
                    if self._closing:
                        wait = min(wait, self._close_deadline - now)
                    self._cond.wait(wait)
                    continue
                if self._calls and (not self._data or self._calls[0][0] < self._data[0][0]):
                    return "call", self._calls.popleft()[1]
                # a spool to forward, or no connection yet: try the server when the backoff says
                spooled = self._spool is not None and (len(self._spool) > 0 or self._reconnect)
                now = time.monotonic()
                if spooled and now >= self._retry_at and (self._forward_turn or not self._data):
                    if not (self._closing and (self._down or now >= self._close_deadline)):
                        return "forward", None
                if self._data:
                    return "write", self._take_batch()
                if self._closing:
                    return "stop", None  # a spool left is forwarded at the next start
                self._cond.wait(self._retry_at - now if spooled else None)

    def _take_batch(self) -> list:
        # Called with the lock held: data items up to the next call, at most batch_max events.
        batch: list = []
        count = size = 0
        next_call = self._calls[0][0] if self._calls else None
        while self._data:
            seq, item = self._data[0]
            if next_call is not None and seq > next_call:
                break
            events = _event_count(item)
            if batch and count + events > self._batch_max:
                break
            self._data.popleft()
            batch.append(item)
            count += events
            size += _event_size(item)
        self._pending -= count
        self._pending_bytes -= size
        self._in_flight = count
        self._in_flight_bytes = size
        self._room.notify_all()
        return batch

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        if self._reconnect and not self._connect_again():
            call.future.set_exception(Unavailable(UNAVAILABLE))
            return
        assert self._store is not None
        try:
            self._store.foreign_keys(True)
            self._store.foreign_keys(None)  # fn may change them: set again before the next batch
            result = call.fn(self._conn)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
                raise RuntimeError("the function left a transaction open; it was rolled back")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            if self._spool is not None and self._unreachable(exc):
                self._reconnect = True
                log.warning("a database change failed, the central database cannot be reached: "
                            "%s", exc)
                call.future.set_exception(Unavailable(UNAVAILABLE))
                return
            if self._conn.in_transaction:
                rollback(self._conn)
            full = storage_full(exc)  # the caller's typed error; the log says what happened
            if full is not None:
                log.error("a database change was refused, nothing written: %s", exc)
            call.future.set_exception(full or exc)
        else:
            call.future.set_result(result)

    def _write(self, items: list) -> None:
        if all(isinstance(item, _Marker) for item in items):
            for item in items:  # a flush with nothing before it: no transaction needed
                item.done.set()
            return
        count = sum(_event_count(item) for item in items)
        if self._spool is not None and (self._down or len(self._spool)):
            self._to_spool(items, count, maybe_written=False)  # behind what waits there
            return
        try:
            if self._reconnect and not self._connect_again():
                self._to_spool(items, count, maybe_written=False)
                return
            assert self._store is not None
            lost = self._store.write(items, safe=False)
        except Exception as exc:
            if self._kept_for_later(items, count, exc):
                return
            log.exception("database batch of %d events failed; storing them one by one", count)
            self._note_error(exc)
            assert self._store is not None
            try:
                lost = self._store.write(items, safe=True)
            except Exception as again:
                if self._kept_for_later(items, count, again):
                    return
                raise
        self._committed(items, count, lost)

    def _kept_for_later(self, items: list, count: int, exc: BaseException) -> bool:
        """A failed write that waiting can mend: spooled (the server cannot be reached) or held
        and retried (an OperationalError: I/O, disk full, a locked file). False for any other
        failure (a bug, a constraint), which the careful path or the caller deals with."""
        if self._spool_instead(items, count, exc):
            return True
        if isinstance(exc, OperationalError):
            self._hold(items, count, exc)
            return True
        return False

    # -- store-and-forward (writer thread) ------------------------------------------------------

    def _spool_instead(self, items: list, count: int, exc: BaseException) -> bool:
        """Spool a batch whose write failed because the server cannot be reached (it may have
        committed: the connection can die during COMMIT). False for any other failure."""
        if self._spool is None or not self._unreachable(exc):
            return False
        self._went_down(exc)
        self._to_spool(items, count, maybe_written=True)
        return True

    def _to_spool(self, items: list, count: int, maybe_written: bool) -> None:
        assert self._spool is not None
        try:
            kept = self._spool.append(items, now_iso(), maybe_written)
        except sqlite3.Error as exc:  # the local disk: held in memory and retried, as ever
            self._hold(items, count, exc)
            return
        should_log = False
        with self._cond:
            self._in_flight = self._in_flight_bytes = 0
            self._held, self._held_events = None, 0
            self._forward_turn = True
            if kept:
                self._spooled += count
                self._spooled_batches += 1
            else:
                self._spool_dropped += count
                self._spool_dropped_batches += 1
                now = time.monotonic()
                should_log = now - self._last_spool_drop_log >= _DROP_LOG_INTERVAL
                if should_log:
                    self._last_spool_drop_log = now
            depth = self._spool.depth()
            totals = (self._spool_dropped, self._spool_dropped_batches)
        if should_log:
            log.error("the spool is full (%d of %d bytes, %d events waiting for the central "
                      "database): a batch of %d events was dropped (dropped so far: %d events "
                      "in %d batches)", depth["bytes"], depth["max_bytes"], depth["events"],
                      count, *totals)
        for item in items:
            if isinstance(item, _Marker):
                item.done.set()

    def _went_down(self, exc: BaseException) -> None:
        with self._cond:
            first = not self._down
            self._down = True
            self._reconnect = True
            if first:
                self._unreachable_since = now_iso()
        self._retry_later(exc, first)
        if first:
            log.error("the central database cannot be reached (%s): batches go to the spool "
                      "%s until it answers", exc, getattr(self._spool, "path", None))

    def _retry_later(self, exc: BaseException, first: bool = False) -> None:
        with self._cond:
            first = first or self._retry_delay == 0.0
            self._retry_delay = (self._retry_initial if first
                                 else min(self._retry_delay * 2, self._retry_max))
            self._retry_at = time.monotonic() + self._retry_delay
            self._failed_writes += 1
        self._note_error(exc)

    def _connect_again(self) -> bool:
        """Open a new writing connection in place of the broken one; False if the server still
        cannot be reached (the next attempt is scheduled)."""
        assert self._connect is not None
        conn = None
        try:
            conn = self._connect()
            if self._store is None:  # the first connection of this run
                if self._prepare is not None:
                    self._prepare(conn)
                store = BatchStore(conn, self._note_error, court=self._court)
        except Exception as exc:
            if not self._unreachable(exc):
                log.exception("opening a new connection to the central database failed")
            if conn is not None:
                _close_quietly(conn)
            self._went_down(exc)
            return False
        if self._conn is not None:
            _close_quietly(self._conn)  # it is broken already
        self._conn = conn
        if self._store is None:
            self._store = store
            log.warning("connected to the central database: it was unreachable at the start")
        else:
            self._store.use_connection(conn)
        self._reconnect = False
        with self._cond:
            self._down = False
            self._unreachable_since = None
        return self._close_interrupted_when_due()

    def _close_interrupted_when_due(self) -> bool:
        """Run ``close_interrupted`` once, when no batch of an earlier process waits (see the
        class docstring). False if it failed because the server went away (tried again)."""
        if self._close_interrupted is None or (self._spool is not None
                                               and self._spool.earlier()):
            return True
        try:
            closed = self._close_interrupted(self._conn)
        except Exception as exc:
            if self._unreachable(exc):
                self._went_down(exc)
                return False
            log.exception("closing the sessions an earlier run left running failed")
            closed = 0
        self._close_interrupted = None
        self.interrupted_sessions = closed
        if closed:
            log.warning("%d UDP session(s) of an earlier run did not stop (a crash?): marked "
                        "interrupted", closed)
        return True

    def _forward(self) -> None:
        """Forward the oldest spooled batch to the server (see the module docstring)."""
        assert self._spool is not None
        with self._cond:
            self._forward_turn = False
        if self._reconnect and not self._connect_again():
            return
        spooled = self._spool.oldest()
        if spooled is None:
            return
        assert self._store is not None
        lost = 0
        try:
            if spooled.maybe_written and self._already_written(spooled):
                with self._cond:
                    self._already_there += 1
                log.warning("spooled batch %d (%d events) is on the server already: not sent "
                            "twice", spooled.id, spooled.events)
                self._forwarded_one(spooled, lost=0, written=False)
                return
            try:
                lost = self._store.write(spooled.items, safe=False)
            except Exception as exc:
                if self._unreachable(exc) or isinstance(exc, OperationalError):
                    raise
                log.exception("forwarding spooled batch %d failed; storing its events one by "
                              "one", spooled.id)
                self._note_error(exc)
                lost = self._store.write(spooled.items, safe=True)
        except Exception as exc:  # noqa: BLE001 - it stays spooled; retried with a backoff
            if self._unreachable(exc):
                self._spool.mark_maybe_written(spooled.id)
                self._went_down(exc)
            else:
                log.warning("forwarding spooled batch %d failed (%s); retrying", spooled.id,
                            exc)
                self._retry_later(exc)
            return
        self._forwarded_one(spooled, lost, written=True)

    def _already_written(self, spooled: Spooled) -> bool:
        """Whether the server has the batch (it is atomic: its first event tells)."""
        first = next((item.events[0] for item in spooled.items
                      if isinstance(item, Events) and item.events), None)
        if first is None:
            return False  # session records only: writing them again changes nothing
        return self._conn.execute(_EVENT_EXISTS, (
            first.session_id, first.seq, first.index)).fetchone() is not None

    def _forwarded_one(self, spooled: Spooled, lost: int, written: bool) -> None:
        """The server has the batch: the state says so first, then the spool forgets it (so
        an empty spool is never seen with the server still marked unreachable)."""
        assert self._spool is not None
        with self._cond:
            if written:
                self._stored += spooled.events - lost
                self._lost += lost
                self._batches += 1
                self._last_commit_at = now_iso()
            self._forwarded += spooled.events - lost
            self._forwarded_batches += 1
            self._retry_delay = 0.0
            recovered = self._down
            self._down = False
            self._unreachable_since = None
        self._spool.delete(spooled)
        self._close_interrupted_when_due()
        empty = not len(self._spool)
        if recovered:
            log.warning("the central database answers again: forwarding the spool")
        if empty:
            log.warning("the spool is forwarded: %d events in %d batches since the start",
                        self._forwarded, self._forwarded_batches)

    def _hold(self, items: list, count: int, exc: Exception) -> None:
        with self._cond:
            first = self._held is None or self._retry_delay == 0.0
            self._retry_delay = (self._retry_initial if first
                                 else min(self._retry_delay * 2, self._retry_max))
            self._retry_at = time.monotonic() + self._retry_delay
            self._held = items
            self._room.notify_all()  # waiting for room would now only delay the loss
            self._held_events = count
            self._in_flight = self._in_flight_bytes = 0
            self._failed_writes += 1
            failures = self._failed_writes
        self._note_error(exc)
        log.log(logging.ERROR if first else logging.WARNING,
                "database write of %d events failed (%s); held, retrying in %.2f s "
                "(failed writes so far: %d)", count, exc, self._retry_delay, failures)

    def _committed(self, items: list, count: int, lost: int) -> None:
        with self._cond:
            recovered = self._held is not None
            self._stored += count - lost
            self._lost += lost
            self._batches += 1
            self._last_commit_at = now_iso()
            self._held = None
            self._held_events = 0
            self._in_flight = self._in_flight_bytes = 0
            self._retry_delay = 0.0
        if recovered:
            log.warning("database write succeeded again: %d held events written", count)
        for item in items:
            if isinstance(item, _Marker):
                item.done.set()
        if self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:  # a listener's bug must not stop the writer
                log.exception("the database commit listener failed")

    def _note_error(self, exc: BaseException) -> None:
        with self._cond:
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._last_error_at = now_iso()

    def _finish(self) -> None:
        with self._cond:
            self._closing = True
            self._room.notify_all()
            unwritten = self._held_events + self._pending + self._in_flight
            self._lost += unwritten
            self._held, self._held_events, self._pending, self._in_flight = None, 0, 0, 0
            self._pending_bytes = self._in_flight_bytes = 0
            markers = [item for _, item in self._data if isinstance(item, _Marker)]
            self._data.clear()
            calls = [call for _, call in self._calls]
            self._calls.clear()
        if unwritten:
            log.error("database writer closed with %d events it could not write (%s)",
                      unwritten, self._last_error)
        for call in calls:
            if call.future.set_running_or_notify_cancel():
                call.future.set_exception(Unavailable("the database writer is closed"))
        for marker in markers:
            marker.done.set()
        if self._conn is not None:
            try:
                self._conn.execute("PRAGMA optimize")  # SQLite's advice for closing a connection
            except Error:
                log.debug("PRAGMA optimize at close failed", exc_info=True)
            _close_quietly(self._conn)
        if self._spool is not None:
            self._spool.close()  # what it holds is forwarded at the next start
        self._closed = True
