"""Store-and-forward: what the writer does while the central database (PostgreSQL) cannot be
reached, and how it catches up when the server answers again.

The writer (``writer.py``) is the engine: queue, thread, retries, statistics. This module owns
the outage: whether a failed write is kept for later (``kept_for_later``: spooled or held), the
spool (``spool.py``: a local SQLite file, it keeps the batches), the reconnect state, the
forwarding of the spool and the ``spool`` section of the writer's statistics. Everything here
runs on the ``db-writer`` thread (``Forwarder.report`` excepted: ``Writer.stats``, any thread).

When the central database cannot be reached
    With a ``spool`` and an ``unreachable(exc)`` test, a batch whose write fails because the
    server cannot be reached (connection refused, lost, closed, the server shutting down) is
    committed to the spool instead of being held, and acknowledged (a ``flush`` returns True
    once it is spooled: a SIGKILL does not lose it). While the spool is not empty every new
    batch goes there too, after it, so the order is kept. The writer opens a new connection
    (``connect()``: a broken one stays broken) and retries with the writer's backoff (50 ms
    doubling to 5 s); when the server answers it forwards the spool oldest first, each spooled
    batch in its own transaction through ``BatchStore`` (the match state follows: it applies a
    batch only when the server committed it), deleting it from the spool right after the
    commit, taking turns with spooling what arrives meanwhile. Exactly once: a batch whose
    commit may or may not have happened (the connection died during it, or the process died
    between the server's commit and the spool's delete) is looked up by its first event's
    natural key before it is resent, and dropped if the server has it. A full spool
    (``spool_max_bytes``) refuses new batches (counted in ``spool.dropped``, logged at most
    every 5 s); spooled ones are never dropped. Closing during an outage keeps the spool for
    the next start, which forwards it before anything new. ``run`` functions that fail because
    the server cannot be reached raise ``Unavailable`` ("central database unavailable").

The first connection
    With a spool the writer may start without a connection (the server could not be reached at
    the start): it spools at once and tries ``connect`` with the backoff; at the first
    connection ``prepare(conn)`` runs (the migrations) before anything is stored.
    ``close_interrupted(conn)`` (the sessions an earlier run left running) runs once, when the
    server has everything of earlier runs and nothing of this one: at the first connection
    when the spool holds no batch of an earlier process, else right after its last one is
    forwarded (so a spooled "running" record of the killed run cannot revive its session, and
    the session's end is its last event, forwarded or not).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from restrike.host.timeutil import now_iso

from .backend import errors
from .batch import BatchStore, Events
from .spool import Spool, Spooled
from .transactions import close_quietly

log = logging.getLogger(__name__)

_DROP_LOG_INTERVAL = 5.0

# A spooled batch's first event, by its natural key (session, datagram sequence, index in it):
# the UNIQUE index idx_pss_events_v2_natural answers it.
_EVENT_EXISTS = (
    "SELECT 1 FROM pss_events_v2 WHERE session_id = ? AND event_sequence = ? "
    "AND datagram_index = ? LIMIT 1"
)


class Engine(Protocol):
    """What the forwarder uses of the writer's engine (``writer.Writer``): called on the writer
    thread, never with the writer's lock held."""

    @property
    def connection(self) -> Any:
        """The writing connection (None before the first)."""

    @property
    def store(self) -> BatchStore | None:
        """What stores a batch on it (None before the first connection)."""

    def store_on(self, conn: Any) -> BatchStore:
        """A new ``BatchStore`` on ``conn`` (the first connection of a run)."""

    def use_connection(self, conn: Any, store: BatchStore) -> None:
        """Write through ``conn`` and ``store`` from now on (the broken connection is closed)."""

    def hold(self, items: list, count: int, exc: BaseException) -> None:
        """Keep the batch in memory and retry it with the backoff."""

    def retry_later(self, exc: BaseException, first: bool = False) -> None:
        """The next attempt after the backoff (``first``: its first step); a failed write."""

    def note_error(self, exc: BaseException) -> None:
        """``last_error`` and ``last_error_at``."""

    def settled(self, items: list) -> None:
        """The batch being written is acknowledged without a commit on the server (spooled)."""

    def forwarded(self, events: int, lost: int, written: bool) -> None:
        """A spooled batch is on the server (``written``: by this forward; else found there)."""


def kept_for_later(engine: Engine, forwarder: Forwarder | None, items: list, count: int,
                   exc: BaseException) -> bool:
    """A failed write that waiting can mend: spooled (the server cannot be reached; it may have
    committed: the connection can die during COMMIT) or held and retried (an OperationalError:
    I/O, disk full, a locked file). False for any other failure (a bug, a constraint), which
    the careful path or the caller deals with."""
    if forwarder is not None and forwarder.unreachable(exc):
        forwarder.went_down(exc)
        forwarder.to_spool(items, count, maybe_written=True)
        return True
    if isinstance(exc, errors.OperationalError):
        engine.hold(items, count, exc)
        return True
    return False


class Forwarder:
    """Store-and-forward for one writer (see the module docstring).

    ``lock`` is the writer's: it guards the state here too, so ``Writer.stats`` is one
    snapshot. The engine reads ``down``, ``reconnect``, ``turn`` and ``spool`` to schedule
    (under the lock, on its thread); only the writer thread changes them.
    """

    def __init__(self, engine: Engine, lock: threading.Condition, spool: Spool, *,
                 connect: Callable[[], Any] | None,
                 unreachable: Callable[[BaseException], bool] | None,
                 prepare: Callable[[Any], None] | None,
                 close_interrupted: Callable[[Any], int] | None,
                 connected: bool) -> None:
        self._engine = engine
        self._lock = lock
        self.spool = spool
        self._connect = connect
        self.unreachable = unreachable or (lambda exc: False)
        self._prepare = prepare
        self._close_interrupted = close_interrupted
        self.reconnect = not connected  # the connection broke: open a new one before using it
        self.down = not connected  # the last attempt found the server unreachable
        self._unreachable_since: str | None = None if connected else now_iso()
        self.interrupted_sessions = 0  # closed as interrupted by close_interrupted
        self.turn = True  # spooling and forwarding take turns while both have work
        self._spooled = self._spooled_batches = 0
        self._forwarded = self._forwarded_batches = 0
        self._dropped = self._dropped_batches = 0
        self._already_there = 0  # spooled batches the server had already (not sent twice)
        self._last_drop_log = float("-inf")

    def report(self, last_success_at: str | None) -> dict:
        """The ``spool`` section of ``Writer.stats`` (called with the lock held)."""
        return {
            "depth": self.spool.depth(),
            "unreachable": self.down,
            "unreachable_since": self._unreachable_since,
            "last_success_at": last_success_at,
            "spooled": self._spooled,
            "spooled_batches": self._spooled_batches,
            "forwarded": self._forwarded,
            "forwarded_batches": self._forwarded_batches,
            "dropped": self._dropped,
            "dropped_batches": self._dropped_batches,
            "already_there": self._already_there,
        }

    def to_spool(self, items: list, count: int, maybe_written: bool) -> None:
        """Commit the batch to the spool, after what waits there, and acknowledge it; held in
        memory and retried when the local disk fails; dropped and counted when it is full."""
        try:
            kept = self.spool.append(items, now_iso(), maybe_written)
        except sqlite3.Error as exc:  # the local disk: held in memory and retried, as ever
            self._engine.hold(items, count, exc)
            return
        should_log = False
        with self._lock:
            self.turn = True
            if kept:
                self._spooled += count
                self._spooled_batches += 1
            else:
                self._dropped += count
                self._dropped_batches += 1
                now = time.monotonic()
                should_log = now - self._last_drop_log >= _DROP_LOG_INTERVAL
                if should_log:
                    self._last_drop_log = now
            depth = self.spool.depth()
            totals = (self._dropped, self._dropped_batches)
        if should_log:
            log.error("the spool is full (%d of %d bytes, %d events waiting for the central "
                      "database): a batch of %d events was dropped (dropped so far: %d events "
                      "in %d batches)", depth["bytes"], depth["max_bytes"], depth["events"],
                      count, *totals)
        self._engine.settled(items)

    def went_down(self, exc: BaseException) -> None:
        """The server cannot be reached: reconnect before the next use, after the backoff."""
        with self._lock:
            first = not self.down
            self.down = True
            self.reconnect = True
            if first:
                self._unreachable_since = now_iso()
        self._engine.retry_later(exc, first)
        if first:
            log.error("the central database cannot be reached (%s): batches go to the spool "
                      "%s until it answers", exc, self.spool.path)

    def lost_connection(self, exc: BaseException) -> bool:
        """Whether a ``run`` function failed because the server cannot be reached (then the
        next use opens a new connection first)."""
        if not self.unreachable(exc):
            return False
        self.reconnect = True
        log.warning("a database change failed, the central database cannot be reached: %s",
                    exc)
        return True

    def connect_again(self) -> bool:
        """Open a new writing connection in place of the broken one; False if the server still
        cannot be reached (the next attempt is scheduled)."""
        assert self._connect is not None
        conn = None
        store = self._engine.store
        try:
            conn = self._connect()
            if store is None:  # the first connection of this run
                if self._prepare is not None:
                    self._prepare(conn)
                store = self._engine.store_on(conn)
        except Exception as exc:
            if not self.unreachable(exc):
                log.exception("opening a new connection to the central database failed")
            if conn is not None:
                close_quietly(conn)
            self.went_down(exc)
            return False
        self._engine.use_connection(conn, store)
        self.reconnect = False
        with self._lock:
            self.down = False
            self._unreachable_since = None
        return self._close_interrupted_when_due()

    def _close_interrupted_when_due(self) -> bool:
        """Run ``close_interrupted`` once, when no batch of an earlier process waits (see the
        module docstring). False if it failed because the server went away (tried again)."""
        if self._close_interrupted is None or self.spool.earlier():
            return True
        try:
            closed = self._close_interrupted(self._engine.connection)
        except Exception as exc:
            if self.unreachable(exc):
                self.went_down(exc)
                return False
            log.exception("closing the sessions an earlier run left running failed")
            closed = 0
        self._close_interrupted = None
        self.interrupted_sessions = closed
        if closed:
            log.warning("%d UDP session(s) of an earlier run did not stop (a crash?): marked "
                        "interrupted", closed)
        return True

    def forward(self) -> None:
        """Forward the oldest spooled batch to the server (see the module docstring)."""
        with self._lock:
            self.turn = False
        if self.reconnect and not self.connect_again():
            return
        spooled = self.spool.oldest()
        if spooled is None:
            return
        store = self._engine.store
        assert store is not None
        lost = 0
        try:
            if spooled.maybe_written and self._already_written(spooled):
                with self._lock:
                    self._already_there += 1
                log.warning("spooled batch %d (%d events) is on the server already: not sent "
                            "twice", spooled.id, spooled.events)
                self._forwarded_one(spooled, lost=0, written=False)
                return
            try:
                lost = store.write(spooled.items, safe=False)
            except Exception as exc:
                if self.unreachable(exc) or isinstance(exc, errors.OperationalError):
                    raise
                log.exception("forwarding spooled batch %d failed; storing its events one by "
                              "one", spooled.id)
                self._engine.note_error(exc)
                lost = store.write(spooled.items, safe=True)
        except Exception as exc:  # noqa: BLE001 - it stays spooled; retried with a backoff
            if self.unreachable(exc):
                self.spool.mark_maybe_written(spooled.id)
                self.went_down(exc)
            else:
                log.warning("forwarding spooled batch %d failed (%s); retrying", spooled.id,
                            exc)
                self._engine.retry_later(exc)
            return
        self._forwarded_one(spooled, lost, written=True)

    def _already_written(self, spooled: Spooled) -> bool:
        """Whether the server has the batch (it is atomic: its first event tells)."""
        first = next((item.events[0] for item in spooled.items
                      if isinstance(item, Events) and item.events), None)
        if first is None:
            return False  # session records only: writing them again changes nothing
        return self._engine.connection.execute(_EVENT_EXISTS, (
            first.session_id, first.seq, first.index)).fetchone() is not None

    def _forwarded_one(self, spooled: Spooled, lost: int, written: bool) -> None:
        """The server has the batch: the state says so first, then the spool forgets it (so
        an empty spool is never seen with the server still marked unreachable)."""
        self._engine.forwarded(spooled.events, lost, written)
        with self._lock:
            self._forwarded += spooled.events - lost
            self._forwarded_batches += 1
            recovered = self.down
            self.down = False
            self._unreachable_since = None
        self.spool.delete(spooled)
        self._close_interrupted_when_due()
        empty = not len(self.spool)
        if recovered:
            log.warning("the central database answers again: forwarding the spool")
        if empty:
            log.warning("the spool is forwarded: %d events in %d batches since the start",
                        self._forwarded, self._forwarded_batches)

    def save_context(self, tournament_id: int | None, tournament_day_id: int | None) -> None:
        """Keep the tournament context in the spool, for a start while the server cannot be
        reached (any thread: the spool has its own lock)."""
        try:
            self.spool.save_context(tournament_id, tournament_day_id)
        except sqlite3.Error:  # the local disk; the server has it (tournaments.save_context)
            log.exception("keeping the tournament context in the spool failed")

    def close(self) -> None:
        """Close the spool: what it holds is forwarded at the next start."""
        self.spool.close()
