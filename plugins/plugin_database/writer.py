"""The single writer: the ``db-writer`` thread is the only one that writes to the database.

This module is the engine: the bounded queue, the thread, the retries, the statistics and the
back-pressure. What one batch stores, and how, is ``batch.py`` (``BatchStore``): one
transaction per batch; the writer drains its queue into a batch of up to ``batch_max_events``
events and ``batch_max_bytes`` bytes (``event_bytes``) and hands it over. With a backlog the
batches are full: what a batch costs whatever its size (the commit, the match rows, the
statistics' rows of each match it changed) is paid once per thousands of events; a live feed's
batches are the few events that arrived during the previous commit.

Acknowledged = committed
    ``flush(timeout)`` returns True once everything enqueued before the call is committed (or
    counted as lost, see below). What a flush acknowledged survives closing and reopening the
    writer, and a crash of the process (WAL + commit).

What a power cut costs (``PRAGMA synchronous``, WAL journal)
    - ``FULL``: the WAL is synced to disk at every commit. A power cut or OS crash loses nothing
      that was committed; each batch pays one fsync (sub-millisecond on an SSD, up to tens of
      ms on a hard disk or a USB stick).
    - ``NORMAL`` (default): the WAL is synced at checkpoints and, on SQLite, by the flusher
      thread every ``wal_flush_interval_s`` (30 ms) after a commit (``checkpoint.py``). A crash
      of the app loses nothing committed; a power cut or OS crash can roll back the
      transactions committed since the WAL's last sync: about the last 30 ms of feed. The file
      stays consistent.
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
    With a ``spool``, ``forward.py`` (``Forwarder``) decides what a failed write becomes and
    catches up when the server answers: batches go to the local spool and are acknowledged,
    then are forwarded oldest first, exactly once. The engine only schedules it: forwarding
    takes turns with new batches, at the same backoff as a held write.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import operator
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from restrike.host.errors import Unavailable
from restrike.host.timeutil import now_iso
from restrike.pss.session import UdpSession

from .backend import UNAVAILABLE, errors
from .batch import BatchStore, Events, Session
from .forward import Forwarder, kept_for_later
from .maintenance import storage_full
from .spool import Spool
from .transactions import close_quietly, rollback, transaction

# transaction: where ``Writer.run`` functions have always found it (it lives in transactions.py);
# UNAVAILABLE: the wording of an outage (backend.py)
__all__ = ["EVENT_OVERHEAD", "UNAVAILABLE", "Writer", "event_bytes", "transaction"]

log = logging.getLogger(__name__)

_DROP_LOG_INTERVAL = 5.0
_NO_CONTEXT = (None, None)

EVENT_OVERHEAD = 1024
"""Bytes an event costs in the writer's queue besides its raw text: the ``IngestedEvent``, its
parsed pydantic model and their strings (a few hundred bytes each, measured with
``sys.getsizeof`` on the simulator's feed, rounded up)."""

_RAW = operator.attrgetter("raw")


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


def _acknowledge(items: list) -> None:
    """Wake the flushes waiting for a batch (its markers)."""
    for item in items:
        if isinstance(item, _Marker):
            item.done.set()


def _event_count(item) -> int:
    return len(item.events) if isinstance(item, Events) else 0


def _event_size(item) -> int:
    return item.size if isinstance(item, Events) else 0


class Writer:
    """The writer thread and its bounded queue (see the module docstring for the guarantees).

    ``conn`` must come from ``maintenance.connect_writer`` and be migrated; from ``start()`` on,
    only the writer thread uses it (and ``run`` functions, on that thread).

    ``spool``, ``connect``, ``unreachable``, ``prepare`` and ``close_interrupted``: store-and-
    forward (``forward.Forwarder``, see ``forward.py``). With a spool, ``conn`` may be None:
    the central server could not be reached at the start.
    """

    def __init__(
        self,
        conn: Any,
        *,
        queue_max_events: int = 100_000,
        queue_max_bytes: int = 128 * 1024 * 1024,
        batch_max_events: int = 4_096,
        batch_max_bytes: int = 8 * 1024 * 1024,
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
        if min(queue_max_events, queue_max_bytes, batch_max_events, batch_max_bytes) < 1:
            raise ValueError("queue_max_events, queue_max_bytes, batch_max_events and "
                             "batch_max_bytes must be >= 1")
        self._conn = conn
        self._queue_max = queue_max_events
        self._queue_max_bytes = queue_max_bytes
        self._batch_max = batch_max_events
        self._batch_max_bytes = batch_max_bytes
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        if conn is None and (spool is None or connect is None):
            raise ValueError("a writer without a connection needs a spool and connect")
        self._court = court
        self._store: BatchStore | None = None if conn is None else self.store_on(conn)
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

        self._forwarder: Forwarder | None = None if spool is None else Forwarder(
            self, self._cond, spool, connect=connect, unreachable=unreachable, prepare=prepare,
            close_interrupted=close_interrupted, connected=conn is not None)
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
            if self._forwarder is not None:
                self._forwarder.close()
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
        if self._forwarder is not None:
            self._forwarder.save_context(tournament_id, tournament_day_id)

    @property
    def interrupted_sessions(self) -> int:
        """Sessions of an earlier run closed as interrupted once the central server had all of
        its spooled batches (``close_interrupted``; 0 without a spool)."""
        return 0 if self._forwarder is None else self._forwarder.interrupted_sessions

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
                "spool": None if self._forwarder is None
                else self._forwarder.report(self._last_commit_at),
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
                    work.forward()
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
                fw = self._forwarder
                spooled = fw is not None and (len(fw.spool) > 0 or fw.reconnect)
                now = time.monotonic()
                if fw is not None and spooled and now >= self._retry_at and (
                        fw.turn or not self._data):
                    if not (self._closing and (fw.down or now >= self._close_deadline)):
                        return "forward", fw
                if self._data:
                    return "write", self._take_batch()
                if self._closing:
                    return "stop", None  # a spool left is forwarded at the next start
                self._cond.wait(self._retry_at - now if spooled else None)

    def _take_batch(self) -> list:
        # Called with the lock held: data items up to the next call, at most batch_max events
        # and batch_max_bytes bytes (one item at least: a submitted list is never split).
        batch: list = []
        count = size = 0
        next_call = self._calls[0][0] if self._calls else None
        while self._data:
            seq, item = self._data[0]
            if next_call is not None and seq > next_call:
                break
            events = _event_count(item)
            item_size = _event_size(item)
            if batch and (count + events > self._batch_max
                          or size + item_size > self._batch_max_bytes):
                break
            self._data.popleft()
            batch.append(item)
            count += events
            size += item_size
        self._pending -= count
        self._pending_bytes -= size
        self._in_flight = count
        self._in_flight_bytes = size
        self._room.notify_all()
        return batch

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        fw = self._forwarder
        if fw is not None and fw.reconnect and not fw.connect_again():
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
            if fw is not None and fw.lost_connection(exc):
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
        fw = self._forwarder
        if fw is not None and (fw.down or len(fw.spool)):
            fw.to_spool(items, count, maybe_written=False)  # behind what waits there
            return
        try:
            if fw is not None and fw.reconnect and not fw.connect_again():
                fw.to_spool(items, count, maybe_written=False)
                return
            assert self._store is not None
            lost = self._store.write(items, safe=False)
        except Exception as exc:
            if kept_for_later(self, fw, items, count, exc):
                return
            log.exception("database batch of %d events failed; storing them one by one", count)
            self.note_error(exc)
            assert self._store is not None
            try:
                lost = self._store.write(items, safe=True)
            except Exception as again:
                if kept_for_later(self, fw, items, count, again):
                    return
                raise
        self._committed(items, count, lost)

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
        for item in items:  # inline, not _acknowledge: once per batch on the hot path
            if isinstance(item, _Marker):
                item.done.set()
        if self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:  # a listener's bug must not stop the writer
                log.exception("the database commit listener failed")

    # -- what the forwarder uses (forward.Engine): the writer thread, the lock not held -------

    @property
    def connection(self) -> Any:
        """The writing connection (None before the first)."""
        return self._conn

    @property
    def store(self) -> BatchStore | None:
        """What stores a batch on it (None before the first connection)."""
        return self._store

    def store_on(self, conn: Any) -> BatchStore:
        """A new ``BatchStore`` on ``conn``, with this writer's court and ``last_error``."""
        return BatchStore(conn, self.note_error, court=self._court)

    def use_connection(self, conn: Any, store: BatchStore) -> None:
        """Write through ``conn`` from now on, in place of the broken one (closed); ``store``
        is the first one of this run, or the one in use."""
        if self._conn is not None:
            close_quietly(self._conn)  # it is broken already
        self._conn = conn
        if self._store is None:
            self._store = store
            log.warning("connected to the central database: it was unreachable at the start")
        else:
            self._store.use_connection(conn)

    def hold(self, items: list, count: int, exc: BaseException) -> None:
        """Keep the batch in memory and retry it with the backoff (``_next``)."""
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
        self.note_error(exc)
        log.log(logging.ERROR if first else logging.WARNING,
                "database write of %d events failed (%s); held, retrying in %.2f s "
                "(failed writes so far: %d)", count, exc, self._retry_delay, failures)

    def retry_later(self, exc: BaseException, first: bool = False) -> None:
        """A failed attempt: the next one after the backoff (``first``: its first step)."""
        with self._cond:
            first = first or self._retry_delay == 0.0
            self._retry_delay = (self._retry_initial if first
                                 else min(self._retry_delay * 2, self._retry_max))
            self._retry_at = time.monotonic() + self._retry_delay
            self._failed_writes += 1
        self.note_error(exc)

    def settled(self, items: list) -> None:
        """The batch being written is acknowledged without a commit here (spooled)."""
        with self._cond:
            self._in_flight = self._in_flight_bytes = 0
            self._held, self._held_events = None, 0
        _acknowledge(items)

    def forwarded(self, events: int, lost: int, written: bool) -> None:
        """A spooled batch of ``events`` is on the server: committed by this writer now
        (``written``; ``lost`` of them could not be stored), or found there already."""
        with self._cond:
            if written:
                self._stored += events - lost
                self._lost += lost
                self._batches += 1
                self._last_commit_at = now_iso()
            self._retry_delay = 0.0

    def note_error(self, exc: BaseException) -> None:
        """``last_error`` and ``last_error_at``."""
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
            except errors.Error:
                log.debug("PRAGMA optimize at close failed", exc_info=True)
            close_quietly(self._conn)
        if self._forwarder is not None:
            self._forwarder.close()  # what the spool holds is forwarded at the next start
        self._closed = True
