"""The single writer: the ``db-writer`` thread is the only one that writes to the database.

What it stores
    Every ingested event exactly as received: ``raw_data`` is the message text the UDP plugin got
    (``raw_b64`` in the details keeps the datagram's bytes when they were not UTF-8), unknown and
    invalid events included, in arrival order, each with its details rows under its own row id.
    The writer is the only one inserting events, so it gives the ids itself: read once per
    batch inside its ``BEGIN IMMEDIATE``, above ``sqlite_sequence`` and above the largest id of
    both the main and the archive table, then one after the other in arrival order; an archived
    event's id is never given again, so it can always be restored. One transaction per batch:
    the writer drains its queue into a batch of up to ``batch_max_events`` events. Alongside, in
    the same transaction, it keeps matches/rounds/scores/warnings (``tracking.py``), the session
    counters (``udp_server_sessions``) and the per-sender counters (``udp_client_connections``).

How it keeps up with the feed (``bench/database.py`` measures it)
    The rows are built by ``rows.py``. A batch is a few statements of up to 1024 rows each
    (``rows.Many``), not a statement per row (each execution hands the GIL to the UDP threads
    and waits to get it back); what an event's parsed model alone decides (its ``parsed_data``
    but for the match round and clock, its detail rows, type and status) is computed once per
    distinct model and cached (``rows.Shapes``); clock ticks and other events that change no
    match row cost a dict lookup in ``tracking.py``; counters are summed once per batch.
    Foreign keys are checked once per distinct referenced id per batch
    (``rows.Rows.check_references``) instead of by SQLite for every row; a batch that fails
    that check is redone on the careful path below, where SQLite checks every row. ``run``
    functions always find foreign keys on.

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
      the last checkpoint (at most about 1000 pages of WAL, roughly the last few seconds to
      minutes of feed). The database file stays consistent.
    - ``OFF``: never synced. A crash of the app still loses nothing committed (the OS has the
      data); a power cut or OS crash can lose recent transactions and can corrupt the file.

When the database is slower than the feed (bounded queue, back-pressure)
    The queue holds at most ``queue_max_events`` events. A batch that does not fit waits for
    room up to ``submit(..., wait=)`` seconds while the writer is making progress: the caller
    (the UDP dispatcher) slows to the writer's pace, and the backlog stays upstream as raw
    datagrams in the receiver's own bounded queue, which costs far less memory than parsed
    events (``waits`` and ``waited_s`` count it). A batch that still does not fit - the wait
    ran out, or the writer is closed or holding a failed write, when waiting would only delay
    the loss - is refused whole: its events are counted in ``dropped`` (and its batches in
    ``dropped_batches``), an error is logged (at most every 5 s, with the totals), and
    ``stats()`` - the ``storage`` section of ``get_udp_stats`` - shows it.

When a write fails (disk full, I/O error, locked file)
    The transaction is rolled back and the batch is ``held``: retried with a backoff (50 ms
    doubling to 5 s) until it succeeds; ``failed_writes`` and ``last_error`` say so. Events that
    arrive meanwhile wait in the queue behind it (order is kept; beyond the queue bound they are
    dropped and counted as above). ``run`` calls are not held up by held data, so an operator
    can still free space or change settings. Any other error (a bug, a constraint) makes the
    writer redo the batch one event at a time: an event whose processing fails is stored bare
    (raw text, ``is_valid`` 0, the error in ``error_message``); one that cannot be stored even so
    is counted in ``lost`` with ``last_error``. If the writer is closed while a batch is still
    held, what was not written is counted in ``lost`` and logged.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from restrike.host.errors import Unavailable
from restrike.host.timeutil import clock_ns, now_iso, to_iso

from .maintenance import storage_full
from .rows import (EVENT_INTO, PROTOCOL_VERSION, STR, UNPLACED, Rows, Shapes, Source, Suffixes,
                   many)
from .schema import UNKNOWN_CODE
from .statistics import update_aggregates
from .tracking import UPDATE_MATCHES, UPDATE_ROUNDS, MatchTracker

log = logging.getLogger(__name__)

_DROP_LOG_INTERVAL = 5.0
_NO_CONTEXT = (None, None)

_INSERT_EVENT = EVENT_INTO + "VALUES (" + ", ".join("?" * 19) + ")"  # one row, None for NULL
_NEXT_EVENT_ID = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'pss_events_v2'), 0), "
    "COALESCE((SELECT MAX(id) FROM pss_events_v2), 0), "
    "COALESCE((SELECT MAX(id) FROM pss_events_v2_archive), 0)) + 1"
)
# processing_time_ms is clock_ns() now minus the receiver's clock_ns() reading: one clock, so
# the difference is the time the event took, however long that was. An event with no receive
# reading (received_ns 0 or None) stores NULL; so does a negative difference, which one clock
# cannot give. Rounded to the microsecond in integers (round(x, 3) goes through a decimal
# string: 1.5k instructions).
_ENSURE_SESSION = (
    "INSERT INTO udp_server_sessions (session_id, started_at, status, updated_at) "
    "VALUES (?, ?, 'running', ?) ON CONFLICT (session_id) DO NOTHING"
)
_UPSERT_SESSION = (
    "INSERT INTO udp_server_sessions (session_id, bind_address, port, started_at, stopped_at, "
    "status, is_simulated, counters, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (session_id) DO UPDATE SET bind_address = excluded.bind_address, "
    "port = excluded.port, started_at = excluded.started_at, stopped_at = excluded.stopped_at, "
    "status = excluded.status, is_simulated = excluded.is_simulated, "
    "counters = excluded.counters, updated_at = excluded.updated_at"
)
_SESSION_FIELDS = frozenset(
    ("session_id", "bind", "port", "started_at", "stopped_at", "simulated", "status")
)


# -- queue items ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Events:
    events: list
    context: tuple  # (tournament_id, tournament_day_id) in effect when the batch was submitted


@dataclass(slots=True)
class _Session:
    session: dict


@dataclass(slots=True)
class _Marker:
    done: threading.Event


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: concurrent.futures.Future


def _event_count(item) -> int:
    return len(item.events) if isinstance(item, _Events) else 0


class Writer:
    """The writer thread and its bounded queue (see the module docstring for the guarantees).

    ``conn`` must come from ``maintenance.connect_writer`` and be migrated; from ``start()`` on,
    only the writer thread uses it (and ``run`` functions, on that thread).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        queue_max_events: int = 100_000,
        batch_max_events: int = 1_000,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
    ):
        if queue_max_events < 1 or batch_max_events < 1:
            raise ValueError("queue_max_events and batch_max_events must be >= 1")
        self._conn = conn
        self._queue_max = queue_max_events
        self._batch_max = batch_max_events
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._types = {code: id_ for code, id_ in conn.execute(
            "SELECT code, id FROM pss_event_types")}
        self._unknown_type = self._types[UNKNOWN_CODE]
        self._tracker = MatchTracker()
        self._foreign_keys_on: bool | None = None  # unknown: set before each use
        self._shapes = Shapes(self._types, self._unknown_type)
        self._suffixes = Suffixes()
        # A statement inserting hundreds of rows into a table with 8 indexes keeps a statement
        # journal (the pages it changes, to undo it alone) of more than 64 KiB: with temporary
        # files on disk that is a spill file written for every statement (measured: 3.7 times
        # the writes of the WAL itself); in memory it is a copy.
        conn.execute("PRAGMA temp_store=MEMORY")
        self._context: tuple = _NO_CONTEXT

        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the writer thread waits for work on it
        self._room = threading.Condition(lock)  # submitters wait for queue room on it
        self._seq = 0
        self._data: collections.deque = collections.deque()  # (seq, _Events|_Session|_Marker)
        self._calls: collections.deque = collections.deque()  # (seq, _Call)
        self._pending = 0  # events in _data
        self._in_flight = 0  # events being written now
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
        self._lost = 0
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        self._last_commit_at: str | None = None
        self._last_drop_log = float("-inf")
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
        with self._cond:
            if self._pending + count > self._queue_max and wait > 0 and count <= self._queue_max:
                self._wait_for_room(count, wait)
            if not self._closing and self._pending + count <= self._queue_max:
                self._seq += 1
                self._data.append((self._seq, _Events(list(events), self._context)))
                self._pending += count
                self._cond.notify()
                return True
            self._dropped += count
            self._dropped_batches += 1
            reason = "the writer is closed" if self._closing else (
                f"the queue is full ({self._pending} of {self._queue_max} events waiting)")
            now = time.monotonic()
            should_log = now - self._last_drop_log >= _DROP_LOG_INTERVAL
            if should_log:
                self._last_drop_log = now
            totals = (self._dropped, self._dropped_batches)
        if should_log:
            log.error("database writer dropped a batch of %d events: %s (dropped so far: %d "
                      "events in %d batches)", count, reason, *totals)
        return False

    def _wait_for_room(self, count: int, wait: float) -> None:
        # Called with the lock held.
        start = time.monotonic_ns()
        deadline = time.monotonic() + wait
        self._waits += 1
        while (self._pending + count > self._queue_max and not self._closing
               and self._held is None):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._room.wait(left)
        self._waited_ns += time.monotonic_ns() - start

    def submit_session(self, session: dict) -> None:
        """Queue a UDP session record (``restrike_udp_session``); written in order with events."""
        with self._cond:
            if self._closing:
                log.error("database writer closed: session %s not recorded",
                          session.get("session_id"))
                return
            self._seq += 1
            self._data.append((self._seq, _Session(dict(session))))
            self._cond.notify()

    def run(self, fn: Callable[[sqlite3.Connection], Any], timeout: float | None = None) -> Any:
        """Run ``fn(conn)`` on the writer thread and return its result (or raise its exception).

        ``conn`` is the writing connection in autocommit mode, foreign keys on: ``fn`` opens
        and commits its own transactions (``BEGIN IMMEDIATE`` ... ``COMMIT``); one left open is
        rolled back and reported as an error. ``fn`` runs after the events queued before it are written, except
        while a failed write is held: then it runs at once. ``timeout`` bounds the wait for ``fn``
        to start; when it expires first, ``fn`` never runs and ``Unavailable`` is raised.
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
            self._conn.close()  # never started
            self._closed = True

    @property
    def context(self) -> tuple:
        """``(tournament_id, tournament_day_id)`` stamped on events submitted from now on."""
        return self._context

    def set_context(self, tournament_id: int | None, tournament_day_id: int | None) -> None:
        """Set the tournament context (call it on the writer thread, after validating the ids)."""
        self._context = (tournament_id, tournament_day_id)

    def tournament_in_use(self, tournament_id: int) -> bool:
        """True if the context or an event not yet written refers to this tournament."""
        with self._cond:
            items = [item for _, item in self._data] + list(self._held or ())
            return self._context[0] == tournament_id or any(
                isinstance(item, _Events) and item.context[0] == tournament_id for item in items
            )

    def stats(self) -> dict:
        """The ``storage`` section of ``get_udp_stats``: ``stored`` (committed events),
        ``pending`` (queued or being written), ``batches`` (committed transactions),
        ``failed_writes`` (transactions rolled back), ``held`` (events of a failed write
        waiting for a retry), ``dropped``/``dropped_batches`` (refused: queue full or closed),
        ``waits``/``waited_s`` (batches that waited for room, and how long in all: the feed was
        faster than the database), ``lost`` (taken but never written), ``queue_max``,
        ``last_error``, ``last_error_at``, ``last_commit_at``."""
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
                "lost": self._lost,
                "queue_max": self._queue_max,
                "last_error": self._last_error,
                "last_error_at": self._last_error_at,
                "last_commit_at": self._last_commit_at,
                "shape_cache": self._shapes.stats(),
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
                if self._data:
                    return "write", self._take_batch()
                if self._closing:
                    return "stop", None
                self._cond.wait()

    def _take_batch(self) -> list:
        # Called with the lock held: data items up to the next call, at most batch_max events.
        batch: list = []
        count = 0
        next_call = self._calls[0][0] if self._calls else None
        while self._data:
            seq, item = self._data[0]
            if next_call is not None and seq > next_call:
                break
            size = _event_count(item)
            if batch and count + size > self._batch_max:
                break
            self._data.popleft()
            batch.append(item)
            count += size
        self._pending -= count
        self._in_flight = count
        self._room.notify_all()
        return batch

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            self._foreign_keys(True)
            self._foreign_keys_on = None  # fn may change it: set it again before the next batch
            result = call.fn(self._conn)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
                raise RuntimeError("the function left a transaction open; it was rolled back")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            if self._conn.in_transaction:
                _rollback(self._conn)
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
        snapshot = self._tracker.snapshot()
        try:
            lost = self._transaction(items, safe=False)
        except sqlite3.OperationalError as exc:
            self._tracker.restore(snapshot)
            self._hold(items, count, exc)
            return
        except Exception as exc:  # noqa: BLE001 - any bug: redo event by event, lose nothing
            self._tracker.restore(snapshot)
            log.exception("database batch of %d events failed; storing them one by one", count)
            self._note_error(exc)
            snapshot = self._tracker.snapshot()
            try:
                lost = self._transaction(items, safe=True)
            except sqlite3.OperationalError as again:
                self._tracker.restore(snapshot)
                self._hold(items, count, again)
                return
        self._committed(items, count, lost)

    def _transaction(self, items: list, safe: bool) -> int:
        # The careful path lets SQLite check every row's foreign keys. A normal batch checks
        # each distinct value once instead (Rows.check_references): SQLite's checks are a
        # b-tree search per row and per key, about 8% of a batch's cost.
        self._foreign_keys(safe)
        with transaction(self._conn):
            return self._store(items, safe)

    def _foreign_keys(self, on: bool) -> None:
        """Switch the connection's foreign key checks, only when they are not so already: a
        PRAGMA change makes SQLite re-prepare every statement, which for the batch INSERTs
        costs more than the checks. So they stay off from batch to batch and are on for every
        ``run`` function and the careful path."""
        if self._foreign_keys_on is on:
            return
        if self._conn.in_transaction:  # a failed ROLLBACK: the pragma would be ignored
            _rollback(self._conn)
        self._conn.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
        self._foreign_keys_on = on

    def _hold(self, items: list, count: int, exc: Exception) -> None:
        with self._cond:
            first = self._held is None or self._retry_delay == 0.0
            self._retry_delay = (self._retry_initial if first
                                 else min(self._retry_delay * 2, self._retry_max))
            self._retry_at = time.monotonic() + self._retry_delay
            self._held = items
            self._room.notify_all()  # waiting for room would now only delay the loss
            self._held_events = count
            self._in_flight = 0
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
            self._in_flight = 0
            self._retry_delay = 0.0
        if recovered:
            log.warning("database write succeeded again: %d held events written", count)
        for item in items:
            if isinstance(item, _Marker):
                item.done.set()

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
        try:
            self._conn.execute("PRAGMA optimize")  # SQLite's advice for closing a connection
        except sqlite3.Error:
            log.debug("PRAGMA optimize at close failed", exc_info=True)
        self._conn.close()
        self._closed = True

    # -- storing a batch (inside the transaction) -----------------------------------------------

    def _store(self, items: list, safe: bool) -> int:
        cur = self._conn.cursor()
        now = now_iso()
        first_seen: dict[str, str] = {}
        for item in items:
            if isinstance(item, _Events):
                for ev in item.events:
                    first_seen.setdefault(ev.session_id, ev.received_at)
        for session_id, at in first_seen.items():
            cur.execute(_ENSURE_SESSION, (session_id, at, now))
        # The writer is the only one inserting events, so it numbers them itself (read once per
        # batch, inside BEGIN IMMEDIATE): above every id ever given (sqlite_sequence, which
        # AUTOINCREMENT keeps up to date for explicit ids too) and every id in either table, so
        # an archived event's id is never given again and it can always be restored.
        next_id = cur.execute(_NEXT_EVENT_ID).fetchone()[0]

        rows = Rows(now)
        lost = 0
        for item in items:
            if isinstance(item, _Session):
                self._guarded(cur, safe, "session record", self._upsert_session, cur,
                              item.session, now)
            elif isinstance(item, _Events):
                if safe:
                    for ev in item.events:
                        if not self._store_safely(cur, ev, item.context, now, next_id, rows):
                            lost += 1
                        next_id += 1
                else:
                    next_id = self._prepare(cur, item.events, item.context, next_id, rows)
        if not safe:
            rows.check_references(cur)
        rows.insert(cur)
        self._guarded(cur, safe, "match state", self._write_match_state, cur, now)
        self._guarded(cur, safe, "statistics", update_aggregates, cur)  # same transaction
        rows.write_counters(cur)
        return lost

    def _write_match_state(self, cur, now: str) -> None:
        """Write the matches and rounds the batch changed: one statement for each table."""
        matches, rounds = self._tracker.dirty_rows(now)
        for template, rows in ((UPDATE_MATCHES, matches), (UPDATE_ROUNDS, rounds)):
            if rows:
                many(template, len(rows[0])).run(cur, [v for row in rows for v in row])

    def _prepare(self, cur, events: list, context: tuple, next_id: int, rows: Rows) -> int:
        """The hot loop: turn events into rows (numbered from ``next_id``) in ``rows`` and apply
        them to the match state; returns the next free id. No SQL per event except what the
        match state needs (a new match, a new round, athletes). Every line here runs 25 000
        times a second: what can be done once per batch (the counters) or once per distinct
        value (Shapes, Suffixes, Source.details) is."""
        shape_of = self._shapes.get
        cached = self._shapes.cache.get
        place = self._tracker.place
        suffixes = self._suffixes
        suffix_of = suffixes.get
        events_out = rows.events
        details_out = rows.details
        add_details = details_out.extend
        flat = itertools.chain.from_iterable
        linked = rows.linked
        sources = rows.sources
        rows.contexts.add(context)
        tournament_id, day_id = context[0] or 0, context[1] or 0
        now_ns = clock_ns
        for ev in events:
            event = ev.event
            # Shapes.get, its hit path inlined (most events)
            hit = cached((type(event), getattr(event, "raw", None)))
            if hit is not None and hit[0] == getattr(event, "__dict__", None):
                kind, odd, tail, head, details = hit[1]
            else:
                kind, odd, tail, head, details = shape_of(event)
            key = (ev.session_id, ev.source_ip, ev.source_port)
            state = place(cur, key, ev.received_at, event, kind, context, next_id, linked)
            if state is None:
                match_id = round_id = 0
                suffix = UNPLACED
            else:
                match_id = state.id
                round_id = state.round_id or 0
                suffix = state.placement_cache
                if suffix is None:
                    where = (state.round_no, state.clock)
                    suffix = state.placement_cache = suffix_of(where) or suffixes.put(*where)
            elapsed = now_ns() - ev.received_ns if ev.received_ns else -1
            events_out += (
                next_id, ev.session_id, match_id, round_id, ev.received_at, ev.raw,
                head + suffix, ev.seq,
                (elapsed + 500) // 1000 / 1000 if elapsed >= 0 else -1,
                tournament_id, day_id)
            events_out += tail
            src = sources.get(key)
            if src is None:
                src = sources[key] = Source(ev, next_id)
            src.seen.append(ev)
            src.last_id = next_id
            prefix = (next_id,)
            if details:
                add_details(flat(map(prefix.__add__, details)))
            index = ev.index
            add_details(flat(map(prefix.__add__, src.details if not index else src.at(index))))
            if ev.raw_b64 and not index:
                # The bytes of the whole datagram, once: on its first message, not on each line.
                details_out += (next_id, "raw_b64", ev.raw_b64, STR)
            if odd:
                src.odd[odd] += 1
            next_id += 1
        return next_id

    def _store_safely(self, cur, ev, context: tuple, now: str, event_id: int,
                      rows: Rows) -> bool:
        """One event in its own savepoint; on a non-I/O error store it bare. False if lost."""
        snapshot = self._tracker.snapshot()
        cur.execute("SAVEPOINT one_event")
        try:
            one = Rows(now)
            self._prepare(cur, [ev], context, event_id, one)
            one.insert(cur)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:  # noqa: BLE001 - stored bare below, with the reason
            cur.execute("ROLLBACK TO one_event")
            self._tracker.restore(snapshot)
            try:
                self._store_bare(cur, ev, now, exc, event_id)
            except sqlite3.OperationalError:
                raise
            except Exception as again:  # noqa: BLE001 - counted as lost, logged
                cur.execute("ROLLBACK TO one_event")
                cur.execute("RELEASE one_event")
                log.error("event %r of session %s could not be stored: %s",
                          getattr(ev, "raw", None), getattr(ev, "session_id", None), again)
                self._note_error(again)
                return False
            one = Rows(now)  # its counters: as an invalid event
            one.count_bare(ev, event_id)
        cur.execute("RELEASE one_event")
        rows.merge_counters(one)
        return True

    def _store_bare(self, cur, ev, now: str, exc: Exception, event_id: int) -> None:
        # No match, no tournament: nothing here may depend on another row that could be the
        # reason the normal path failed.
        error = f"stored without its parsed form: {type(exc).__name__}: {exc}"
        cur.execute(_INSERT_EVENT, (
            event_id, ev.session_id, None, None, ev.received_at, str(ev.raw), None, ev.seq,
            None, now, None, None, self._unknown_type, 0, error, "invalid", PROTOCOL_VERSION,
            0.0, json.dumps([error], ensure_ascii=False),
        ))

    def _upsert_session(self, cur, session: dict, now: str) -> None:
        counters = {k: v for k, v in session.items() if k not in _SESSION_FIELDS}
        cur.execute(_UPSERT_SESSION, (
            str(session["session_id"]), session.get("bind"), session.get("port"),
            _time(session.get("started_at")) or now, _time(session.get("stopped_at")),
            session.get("status") or ("stopped" if session.get("stopped_at") else "running"),
            int(bool(session.get("simulated"))),
            json.dumps(counters, default=str, separators=(",", ":")), now,
        ))

    def _guarded(self, cur, safe: bool, what: str, fn, *args) -> None:
        """Run ``fn`` plainly, or in safe mode inside a savepoint that a failure rolls back."""
        if not safe:
            fn(*args)
            return
        cur.execute("SAVEPOINT guarded")
        try:
            fn(*args)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:  # noqa: BLE001 - events matter more than this bookkeeping
            cur.execute("ROLLBACK TO guarded")
            log.exception("database writer could not write the %s", what)
            self._note_error(exc)
        cur.execute("RELEASE guarded")


def _time(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return to_iso(value)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``with transaction(conn):`` - ``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on error.

    For functions given to ``Writer.run`` (the writing connection is in autocommit mode).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        _rollback(conn)
        raise
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.debug("rollback failed (no transaction open)", exc_info=True)
