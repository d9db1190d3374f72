"""SQLite's WAL checkpoints, run by the writer itself at most every ``interval`` seconds instead
of SQLite's automatic one every 1,000 pages.

Why: SQLite's automatic checkpoint runs inside the COMMIT of whichever batch makes the WAL pass
1,000 pages, with its fsyncs: about a tenth of the writer's CPU. And every batch rewrites the
same hot pages (the last leaf of each index, the counters), so checkpointing every few batches
copies the same pages again and again; once a second copies each only once.

Why on the writer's own connection, between its COMMIT and its next BEGIN, and not on a thread
of its own: SQLite before 3.51.3 (Debian 12 ships 3.40) has the "WAL-reset bug"
(https://www.sqlite.org/wal.html#walresetbug): a checkpoint on one connection while another
commits and starts the WAL over can record frames as copied that are not, so readers see older
pages and the file can be corrupted. A checkpoint that only ever runs where the writes run can
never race them. It also lets the WAL start over at the next BEGIN (it is copied whole then),
so a writer that never pauses keeps a bounded WAL.

How: the writer's connection gets ``wal_autocheckpoint=0`` and ``journal_size_limit``
(``hand_over``, which also gives it to the checkpointer); ``notify()``, called on the writer
thread after every committed batch and every ``DatabaseService.write``, runs
``PRAGMA wal_checkpoint(PASSIVE)`` when ``interval`` has passed since the last one. PASSIVE never
waits for a reader.

What happens when it cannot keep up: a checkpoint that cannot copy every frame (a reader still
reads an older snapshot, e.g. a long export) is counted in ``busy`` and tried again after the
next interval; nothing is refused and nobody waits. Meanwhile the WAL grows (ingest goes on;
the disk is the limit). Past ``warn_bytes`` a WARNING is logged once per episode and counted in
``wal_over_bound``; the episode ends at the next complete checkpoint. Once a checkpoint
completes, the writer starts the WAL over at its next commit and cuts the file back to
``journal_size_limit`` (``keep_bytes``). The writer's close checkpoints everything and deletes
the WAL, as SQLite always does.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

from restrike.host.timeutil import now_iso

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0
DEFAULT_KEEP_BYTES = 64 * 1024 * 1024
DEFAULT_WARN_BYTES = 256 * 1024 * 1024

# The checkpoint sequence number in the WAL file's header (bytes 12-15, big-endian): SQLite adds
# one each time the WAL starts over, so frame counts of two runs are compared within one WAL.
_HEADER_SEQUENCE = slice(12, 16)

# The result codes that mean "another connection holds what this needs right now": try later.
_BUSY_CODES = frozenset((sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))


def hand_over(conn: sqlite3.Connection, keep_bytes: int) -> None:
    """Make ``conn`` (the writer's connection) leave checkpoints to ``Checkpointer.notify``: no
    automatic checkpoint in its commits; the WAL file cut back to ``keep_bytes`` when it starts
    over after a complete checkpoint."""
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={int(keep_bytes)}")


class Checkpointer:
    """The WAL checkpoints of one SQLite file, on its writer's connection: ``attach(conn)`` (the
    writer's), ``notify()`` (the writer thread, after a commit), ``stats()`` (any thread),
    ``stop()`` (no checkpoint after it)."""

    def __init__(self, path: str, *, interval: float = DEFAULT_INTERVAL_S,
                 keep_bytes: int = DEFAULT_KEEP_BYTES,
                 warn_bytes: int = DEFAULT_WARN_BYTES) -> None:
        self._path = str(path)
        self._wal = self._path + "-wal"
        self._interval = interval
        self._keep_bytes = keep_bytes
        self._warn_bytes = warn_bytes
        self._conn: sqlite3.Connection | None = None  # the writer's
        self._due = 0.0  # monotonic time of the next checkpoint
        self._lock = threading.Lock()  # the counters, read by stats() on another thread
        self._runs = self._frames = self._busy = self._errors = self._over_bound = 0
        self._pending = 0
        self._last_at: str | None = None
        self._wal_bytes = self._size()
        self._sequence: bytes | None = None  # the WAL's header sequence at the last run
        self._backfilled = 0  # frames of that WAL copied at the last run
        self._over = False  # in an episode of a WAL past warn_bytes
        self._failing = False  # the last run failed (logged once per episode)
        self._stopped = False

    def attach(self, conn: sqlite3.Connection) -> None:
        """Checkpoint on ``conn``, the writer's connection (see ``hand_over``)."""
        self._conn = conn

    def start(self) -> Checkpointer:
        """Nothing to start (kept so the service starts and stops it like its other parts)."""
        return self

    def notify(self) -> None:
        """A batch was committed (the writer thread, between its COMMIT and its next BEGIN):
        one ``PASSIVE`` checkpoint when ``interval`` has passed since the last one."""
        conn = self._conn
        if conn is None or self._stopped:
            return
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self._interval
        if conn.in_transaction:  # a run() function left one open: not between transactions
            return
        self._checkpoint(conn)

    def stop(self) -> None:
        """No checkpoint after this (the writer's close checkpoints everything)."""
        self._stopped = True

    def stats(self) -> dict:
        """``checkpoint`` of ``get_database_pool_stats``: ``interval_s``, ``runs`` (checkpoints
        run), ``frames_checkpointed`` (WAL frames copied into the file), ``busy`` (runs that could
        not copy every frame: readers on older snapshots; tried again after the next interval),
        ``errors`` (runs that failed otherwise, e.g. a full disk; logged), ``last_at`` (UTC time
        of the last run or null), ``pending_frames`` (frames left in the WAL at the last run),
        ``wal_bytes`` (the WAL file's size at the last look), ``wal_warn_bytes`` and
        ``wal_over_bound`` (episodes of a WAL larger than it)."""
        with self._lock:
            return {"interval_s": self._interval, "runs": self._runs,
                    "frames_checkpointed": self._frames, "busy": self._busy,
                    "errors": self._errors, "last_at": self._last_at,
                    "pending_frames": self._pending, "wal_bytes": self._wal_bytes,
                    "wal_warn_bytes": self._warn_bytes, "wal_over_bound": self._over_bound}

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One PASSIVE checkpoint; True when it copied every frame (or failed for a reason a
        retry does not mend before the next commit)."""
        before = self._header()
        try:
            busy, frames, backfilled = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) or 0
            with self._lock:
                self._runs += 1
                self._last_at = now_iso()
                if code & 0xFF in _BUSY_CODES:  # try later, as the busy flag below
                    self._busy += 1
                    return False
                self._errors += 1
            log.log(logging.DEBUG if self._failing else logging.ERROR,
                    "a WAL checkpoint of %s failed (%s): tried again after the next commit",
                    self._path, exc)
            self._failing = True
            return True
        self._failing = False
        sequence = self._header()
        frames, backfilled = max(frames, 0), max(backfilled, 0)
        complete = not busy and backfilled >= frames
        size = self._size()
        with self._lock:
            self._runs += 1
            self._frames += self._copied(before, sequence, backfilled)
            self._busy += 0 if complete else 1
            self._last_at = now_iso()
            self._pending = frames - backfilled
            self._wal_bytes = size
            warn = size > self._warn_bytes and not self._over
            if warn:
                self._over_bound += 1
            self._over = (self._over or warn) and not complete
        if warn:
            log.warning("the WAL of %s is %d MiB, more than %d MiB: checkpoints cannot keep "
                        "up (a reader on an older snapshot, a long export or query?); ingest "
                        "goes on, the WAL is cut back once they can",
                        self._path, size >> 20, self._warn_bytes >> 20)
        return complete

    def _copied(self, before: bytes | None, after: bytes | None, backfilled: int) -> int:
        """Frames a checkpoint copied: ``backfilled`` (SQLite's count of the current WAL's
        frames copied) less what the last checkpoint of the same WAL had. Under ``_lock``."""
        same_wal = before == after == self._sequence and after is not None
        copied = backfilled - self._backfilled if same_wal else backfilled
        self._sequence, self._backfilled = after, backfilled
        return max(copied, 0)

    def _header(self) -> bytes | None:
        try:
            with open(self._wal, "rb") as wal:
                header = wal.read(_HEADER_SEQUENCE.stop)
        except OSError:
            return None
        return header[_HEADER_SEQUENCE] if len(header) == _HEADER_SEQUENCE.stop else None

    def _size(self) -> int:
        try:
            return os.path.getsize(self._wal)
        except OSError:
            return 0
