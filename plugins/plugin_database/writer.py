"""The single writer: the ``db-writer`` thread is the only one that writes to the database.

What it stores
    Every ingested event exactly as received: ``raw_data`` is the message text the UDP plugin got
    (``raw_b64`` in the details keeps the datagram's bytes when they were not UTF-8), unknown and
    invalid events included, in arrival order, each with its details rows under its own row id
    (``cursor.lastrowid`` of its INSERT, never a computed id). One transaction per batch: the
    writer drains its queue into a batch of up to ``batch_max_events`` events. Alongside, in the
    same transaction, it keeps matches/rounds/scores/warnings (``tracking.py``), the session
    counters (``udp_server_sessions``) and the per-sender counters (``udp_client_connections``).

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

When the database is slower than the feed (bounded queue)
    ``submit`` never blocks. The queue holds at most ``queue_max_events`` events; a batch that
    does not fit is refused whole: its events are counted in ``dropped`` (and its batches in
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
import json
import logging
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel

from host.errors import Unavailable
from host.timeutil import now_iso, to_iso
from plugins.plugin_udp.protocol import describe

from .schema import UNKNOWN_CODE
from .tracking import MatchTracker

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "2.3"
_DROP_LOG_INTERVAL = 5.0
_NO_CONTEXT = (None, None)

_INSERT_EVENT = (
    "INSERT INTO pss_events_v2 (id, session_id, match_id, round_id, event_type_id, timestamp, "
    "raw_data, parsed_data, event_sequence, processing_time_ms, is_valid, error_message, "
    "created_at, tournament_id, tournament_day_id, recognition_status, protocol_version, "
    "parser_confidence, validation_errors) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NEXT_EVENT_ID = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'pss_events_v2'), 0), "
    "COALESCE((SELECT MAX(id) FROM pss_events_v2), 0), "
    "COALESCE((SELECT MAX(id) FROM pss_events_v2_archive), 0)) + 1"
)
# processing_time_ms is only meaningful on the receiver's monotonic clock: a value from
# another clock (or over an hour) is stored as NULL, not as nonsense.
_MAX_PROCESSING_NS = 3_600_000_000_000
_INSERT_DETAIL = (
    "INSERT INTO pss_event_details (event_id, detail_key, detail_value, detail_type, created_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
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
_COUNT_SESSION = (
    "UPDATE udp_server_sessions SET events_stored = events_stored + ?, "
    "invalid_events = invalid_events + ?, unknown_events = unknown_events + ?, "
    "packets_received = packets_received + ?, bytes_received = bytes_received + ?, "
    "first_event_at = COALESCE(first_event_at, ?), last_event_at = ?, updated_at = ? "
    "WHERE session_id = ?"
)
_COUNT_CLIENT = (
    "INSERT INTO udp_client_connections (session_id, source_ip, source_port, first_seen, "
    "last_seen, packets, events, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (session_id, source_ip, source_port) DO UPDATE SET "
    "last_seen = excluded.last_seen, "
    "packets = udp_client_connections.packets + excluded.packets, "
    "events = udp_client_connections.events + excluded.events, "
    "bytes = udp_client_connections.bytes + excluded.bytes"
)
_DETAIL_SKIP = frozenset(("type", "code", "raw"))
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
        self._shapes = _Shapes(self._types, self._unknown_type)
        self._suffixes = _Suffixes()
        self._context: tuple = _NO_CONTEXT

        self._cond = threading.Condition(threading.Lock())
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

    def submit(self, events: list) -> bool:
        """Queue a batch of ``IngestedEvent`` for storage; never blocks.

        Returns False when the batch was refused (queue full or writer closed): it is then
        counted in ``dropped`` and logged. The current tournament context is stamped now.
        """
        count = len(events)
        if not count:
            return True
        with self._cond:
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

        ``conn`` is the writing connection in autocommit mode: ``fn`` opens and commits its own
        transactions (``BEGIN IMMEDIATE`` ... ``COMMIT``); one left open is rolled back and
        reported as an error. ``fn`` runs after the events queued before it are written, except
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
        ``lost`` (taken but never written), ``queue_max``, ``last_error``, ``last_error_at``,
        ``last_commit_at``."""
        with self._cond:
            return {
                "stored": self._stored,
                "pending": self._pending + self._in_flight,
                "batches": self._batches,
                "failed_writes": self._failed_writes,
                "held": self._held_events,
                "dropped": self._dropped,
                "dropped_batches": self._dropped_batches,
                "lost": self._lost,
                "queue_max": self._queue_max,
                "last_error": self._last_error,
                "last_error_at": self._last_error_at,
                "last_commit_at": self._last_commit_at,
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
        return batch

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            result = call.fn(self._conn)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
                raise RuntimeError("the function left a transaction open; it was rolled back")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            if self._conn.in_transaction:
                _rollback(self._conn)
            call.future.set_exception(exc)
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
        with transaction(self._conn):
            return self._store(items, safe)

    def _hold(self, items: list, count: int, exc: Exception) -> None:
        with self._cond:
            first = self._held is None or self._retry_delay == 0.0
            self._retry_delay = (self._retry_initial if first
                                 else min(self._retry_delay * 2, self._retry_max))
            self._retry_at = time.monotonic() + self._retry_delay
            self._held = items
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
        # AUTOINCREMENT keeps up to date even for explicit ids) and every id in either table, so
        # an archived event's id is never reused and it can always be restored.
        next_id = cur.execute(_NEXT_EVENT_ID).fetchone()[0]

        rows = _Rows(now)
        lost = 0
        for item in items:
            if isinstance(item, _Session):
                self._guarded(cur, safe, "session record", self._upsert_session, cur,
                              item.session, now)
            elif isinstance(item, _Events):
                if safe:
                    for ev in item.events:
                        if self._store_safely(cur, ev, item.context, now, next_id, rows):
                            rows.count(ev, next_id)
                        else:
                            lost += 1
                        next_id += 1
                else:
                    next_id = self._prepare(cur, item.events, item.context, next_id, rows)
        rows.insert(cur)
        self._guarded(cur, safe, "match state", self._tracker.write_dirty, cur, now)
        rows.write_counters(cur, now)
        return lost

    def _prepare(self, cur, events: list, context: tuple, next_id: int, rows: _Rows) -> int:
        """The hot loop: turn events into rows (numbered from ``next_id``) in ``rows``, apply
        them to the match state; returns the next free id. Plain tuples, no SQL per event
        except what the match state needs (a new match, a new round, athletes)."""
        shape_of = self._shapes.get
        place = self._tracker.place
        suffix_of = self._suffixes.get
        suffixes = self._suffixes
        now = rows.now
        events_out = rows.events
        details_out = rows.details
        linked_out = rows.linked
        counters = rows.counters
        tournament_id, day_id = context
        monotonic_ns = time.monotonic_ns
        for ev in events:
            event = ev.event
            shape = shape_of(event)
            key = (ev.session_id, ev.source_ip, ev.source_port)
            match_id, round_id, round_no, clock, linked = place(
                cur, key, ev.received_at, event, shape.kind, context)
            suffix = suffix_of((round_no, clock))
            if suffix is None:
                suffix = suffixes.put((round_no, clock))
            event_id = next_id
            next_id += 1
            elapsed = monotonic_ns() - ev.received_ns
            events_out.append((
                event_id, ev.session_id, match_id, round_id, shape.type_id, ev.received_at,
                ev.raw, shape.parsed_head + suffix, ev.seq,
                round(elapsed / 1e6, 3) if 0 <= elapsed < _MAX_PROCESSING_NS else None,
                shape.valid, shape.error, now, tournament_id, day_id, shape.status,
                PROTOCOL_VERSION, shape.confidence, shape.validation_errors,
            ))
            for detail_key, text, detail_type in shape.details:
                details_out.append((event_id, detail_key, text, detail_type, now))
            details_out.append((event_id, "source_ip", ev.source_ip, "str", now))
            details_out.append((event_id, "source_port", str(ev.source_port), "int", now))
            details_out.append((event_id, "index", str(ev.index), "int", now))
            if ev.raw_b64:
                details_out.append((event_id, "raw_b64", ev.raw_b64, "str", now))
            if linked:
                for sql, params in linked:
                    linked_out.append((sql, (event_id, *params)))
            # per sender: first seen, last seen, datagrams, events, bytes, invalid, unknown
            c = counters.get(key)
            if c is None:
                c = counters[key] = [ev.received_at, None, 0, 0, 0, 0, 0, 0]
            c[1] = ev.received_at
            c[7] = event_id
            if ev.index == 0:
                c[2] += 1
            c[3] += 1
            c[4] += len(ev.raw.encode("utf-8", "replace"))
            if shape.status != "recognized":
                if shape.kind == "invalid":
                    c[5] += 1
                elif shape.kind == "unknown":
                    c[6] += 1
        return next_id

    def _store_safely(self, cur, ev, context: tuple, now: str, event_id: int,
                      rows: _Rows) -> bool:
        """One event in its own savepoint; on a non-I/O error store it bare. False if lost."""
        snapshot = self._tracker.snapshot()
        cur.execute("SAVEPOINT one_event")
        try:
            one = _Rows(now)
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
        cur.execute("RELEASE one_event")
        return True

    def _store_bare(self, cur, ev, now: str, exc: Exception, event_id: int) -> None:
        # No match, no tournament: nothing here may depend on another row that could be the
        # reason the normal path failed.
        error = f"stored without its parsed form: {type(exc).__name__}: {exc}"
        cur.execute(_INSERT_EVENT, (
            event_id, ev.session_id, None, None, self._unknown_type, ev.received_at,
            str(ev.raw), None, ev.seq, None, 0, error, now, None, None, "invalid",
            PROTOCOL_VERSION, 0.0, json.dumps([error], ensure_ascii=False),
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


# -- the rows of a batch ----------------------------------------------------------------------


class _Rows:
    """The rows one batch (or one event, in safe mode) inserts, gathered in arrival order and
    written with one ``executemany`` per table, plus the per-sender counters."""

    __slots__ = ("now", "events", "details", "linked", "counters")

    def __init__(self, now: str) -> None:
        self.now = now
        self.events: list[tuple] = []
        self.details: list[tuple] = []
        self.linked: list[tuple] = []  # (sql, params): score/warning rows naming their event
        self.counters: dict[tuple, list] = {}

    def insert(self, cur) -> None:
        """Insert the events, then the rows that refer to them; empties the lists."""
        if self.events:
            cur.executemany(_INSERT_EVENT, self.events)
        if self.details:
            cur.executemany(_INSERT_DETAIL, self.details)
        for sql, params in self.linked:
            cur.execute(sql, params)
        self.events, self.details, self.linked = [], [], []

    def count(self, ev, event_id: int) -> None:
        """Merge the counters of an event prepared in a separate ``_Rows`` (safe mode)."""
        # Safe mode prepares each event in its own _Rows; its counters land here.
        key = (ev.session_id, ev.source_ip, ev.source_port)
        kind = getattr(ev.event, "type", None)
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = [ev.received_at, None, 0, 0, 0, 0, 0, 0]
        c[1] = ev.received_at
        c[7] = event_id
        c[2] += ev.index == 0
        c[3] += 1
        c[4] += len(str(ev.raw).encode("utf-8", "replace"))
        c[5] += kind == "invalid"
        c[6] += kind == "unknown"

    def write_counters(self, cur, now: str) -> None:
        """Add this batch's counts to ``udp_client_connections`` and ``udp_server_sessions``."""
        # A session's totals are the sum of its senders'. The counters dict is in order of
        # first arrival, so a session's first sender holds its first event; its last event is
        # the one with the highest id (c[7]).
        sessions: dict[str, list] = {}
        for (session_id, ip, port), c in self.counters.items():
            cur.execute(_COUNT_CLIENT, (session_id, ip, port, c[0], c[1], c[2], c[3], c[4]))
            s = sessions.get(session_id)
            if s is None:
                sessions[session_id] = [c[3], c[5], c[6], c[2], c[4], c[0], c[1], c[7]]
                continue
            s[0] += c[3]
            s[1] += c[5]
            s[2] += c[6]
            s[3] += c[2]
            s[4] += c[4]
            if c[7] > s[7]:
                s[6], s[7] = c[1], c[7]
        for session_id, s in sessions.items():
            cur.execute(_COUNT_SESSION, (*s[:7], now, session_id))


# -- what an event's model alone decides (cached) ---------------------------------------------


class _Shape(NamedTuple):
    """The part of an event's rows that depends only on its parsed model."""

    kind: str  # the model's type (points, clock, invalid, unknown...)
    type_id: int
    valid: int
    status: str  # recognition_status
    confidence: float
    error: str | None
    validation_errors: str | None
    parsed_head: str  # parsed_data without its closing "match_round"/"match_clock" part
    details: tuple  # ((detail_key, detail_value, detail_type), ...) of the model's fields


class _Shapes:
    """``get(event)`` -> its ``_Shape``, computed once per distinct model value.

    The feed repeats itself (a clock tick per second per court, the same score lines), so most
    events are a dict hit instead of ``model_dump`` + ``json.dumps`` + ``describe``. The key is
    the model class and the tuple of all its field values (``raw`` included), so two events
    share a shape only when their models are equal; models with an unhashable field (a dict or
    list) are computed each time. The cache is cleared when it reaches ``max_size`` entries.
    """

    def __init__(self, types: dict[str, int], unknown_type: int, max_size: int = 8192):
        self._types = types
        self._unknown_type = unknown_type
        self._max_size = max_size
        self._getters: dict[type, Callable | None] = {}
        self._cache: dict[tuple, _Shape] = {}

    def get(self, event) -> _Shape:
        cls = type(event)
        try:
            getter = self._getters[cls]
        except KeyError:
            getter = self._getters[cls] = _field_getter(cls)
        if getter is None:
            return self._build(event)
        key = (cls, getter(event))
        try:
            shape = self._cache.get(key)
        except TypeError:  # a dict or list field: not hashable, so not cached
            return self._build(event)
        if shape is None:
            shape = self._build(event)
            if len(self._cache) >= self._max_size:
                self._cache.clear()
            self._cache[key] = shape
        return shape

    def _build(self, event) -> _Shape:
        data = event.model_dump(mode="json")
        kind = data.get("type")
        type_id = self._types.get(data.get("code") or "", self._unknown_type)
        error = None
        if kind == "invalid":
            error = data.get("error")
            valid, status, confidence = 0, "invalid", 0.5
        elif kind == "unknown":
            valid, status, confidence = 1, "unknown", 0.0
        else:
            valid, status, confidence = 1, "recognized", 1.0
        # raw is in raw_data already; None fields are the model's defaults: both left out.
        parsed = {key: value for key, value in data.items()
                  if value is not None and key != "raw"}
        parsed["description"] = describe(event)
        text = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
        details = tuple((key, *_typed(value)) for key, value in data.items()
                        if value is not None and key not in _DETAIL_SKIP)
        return _Shape(kind, type_id, valid, status, confidence, error,
                      None if error is None else json.dumps([error], ensure_ascii=False),
                      text[:-1], details)


def _field_getter(cls: type) -> Callable | None:
    """A function giving the tuple of a model's field values, or None when the class's dump
    may depend on more than its fields (not a pydantic model, extra or computed fields)."""
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return None
    if cls.model_computed_fields or cls.model_config.get("extra") == "allow":
        return None
    names = tuple(cls.model_fields)
    if not names:
        return None
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda event: (one(event),)
    return operator.attrgetter(*names)


class _Suffixes(dict):
    """``(round, clock)`` -> the end of ``parsed_data``: ``,"match_round":..,"match_clock":..}``
    (a dict: ``get`` is the hit path, ``put`` computes and stores a miss)."""

    def put(self, key: tuple) -> str:
        round_no, clock = key
        text = (',"match_round":' + json.dumps(round_no) + ',"match_clock":'
                + json.dumps(clock, ensure_ascii=False) + "}")
        if len(self) >= 4096:
            self.clear()
        self[key] = text
        return text


def _typed(value) -> tuple[str, str]:
    """A detail's stored text and its ``detail_type``."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "bool"
    if isinstance(value, int):
        return str(value), "int"
    if isinstance(value, float):
        return repr(value), "float"
    if isinstance(value, str):
        return value, "str"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")), "json"


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
