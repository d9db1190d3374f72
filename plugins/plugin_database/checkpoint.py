"""The WAL checkpointer (SQLite only): copies the WAL's pages back into the database file on its
own thread, so the writer never does.

Why: SQLite's automatic checkpoint runs inside the COMMIT of whichever batch makes the WAL pass
1,000 pages, on the writer thread, with its fsyncs: about a tenth of the writer's CPU. And every
batch rewrites the same hot pages (the last leaf of each index, the counters), so checkpointing
every few batches copies the same pages again and again; once a second copies each only once.

How: the writer's connection gets ``wal_autocheckpoint=0`` and ``journal_size_limit``
(``hand_over``); the ``db-checkpoint`` thread has its own connection and runs
``PRAGMA wal_checkpoint(PASSIVE)`` at most every ``interval`` seconds when the database changed
(``PRAGMA data_version``: batches and ``Writer.run`` writes alike). The writer's only part is
``notify()`` after a committed batch (one ``Event.set``), which wakes it at once instead of at
the end of its idle wait. PASSIVE never waits for the writer or a reader, and neither ever waits
for it.

The one exception, a writer that never pauses (a backlog, a bulk write): SQLite starts the WAL
over only when it is copied whole at the moment the writer begins a transaction, which a
checkpoint on another thread never hits while the writer goes from COMMIT straight to the next
BEGIN, so the WAL would grow without end. When the thread finds the WAL larger than
``keep_bytes`` and nothing but the writer in the way, the writer's next ``notify()`` runs one
PASSIVE checkpoint itself, between its COMMIT and its next BEGIN (the frames of about one
interval: the thread copied the rest); the WAL then starts over and is cut back. Counted in
``catch_ups``: once per ``keep_bytes`` of WAL, where SQLite's own checkpointed every 4 MiB.

What happens when it cannot keep up: a checkpoint that cannot copy every frame (a reader still
reads an older snapshot, e.g. a long export; or another checkpoint, the writer's
``wal_checkpoint(TRUNCATE)`` of a vacuum, runs at that moment) is counted in ``busy`` and tried
again at the next interval; nothing is refused and nobody waits. Meanwhile the WAL grows (ingest
goes on; the disk is the limit). Past ``warn_bytes`` a WARNING is logged once per episode and
counted in ``wal_over_bound``; the episode ends at the next complete checkpoint. Once a
checkpoint completes, the writer starts the WAL over at its next commit and cuts the file back
to ``journal_size_limit`` (``keep_bytes``). The last connection's close (the writer's, after
this thread stopped) checkpoints everything and deletes the WAL, as SQLite always does.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

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
    """Make ``conn`` (the writer's connection) leave checkpoints to the checkpointer: no
    automatic checkpoint in its commits; the WAL file cut back to ``keep_bytes`` when it starts
    over after a complete checkpoint."""
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={int(keep_bytes)}")


class Checkpointer:
    """The ``db-checkpoint`` thread of one SQLite file: ``start()``, ``notify()`` (the writer,
    after a commit), ``stats()``, ``stop()`` (joins the thread and closes its connection)."""

    def __init__(self, path: str, *, interval: float = DEFAULT_INTERVAL_S,
                 keep_bytes: int = DEFAULT_KEEP_BYTES, warn_bytes: int = DEFAULT_WARN_BYTES,
                 synchronous: str = "NORMAL") -> None:
        self._path = str(path)
        self._wal = self._path + "-wal"
        self._interval = interval
        self._keep_bytes = keep_bytes
        self._warn_bytes = warn_bytes
        self._synchronous = synchronous  # the checkpoint's fsyncs follow the writer's setting
        self._wake = threading.Event()  # a batch was committed (or stop)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the counters, read by stats() on another thread
        self._runs = self._frames = self._busy = self._errors = self._over_bound = 0
        self._pending = 0
        self._last_at: str | None = None
        self._wal_bytes = self._size()
        self._version: int | None = None  # data_version at the last look
        self._sequence: bytes | None = None  # the WAL's header sequence at the last run
        self._backfilled = 0  # frames of that WAL copied at the last run
        self._over = False  # in an episode of a WAL past warn_bytes
        self._failing = False  # the last run failed (logged once per episode)
        self._catch_up = False  # the writer's next notify() checkpoints (see the module doc)
        self._catch_ups = 0
        self._writer_lock = threading.Lock()  # the writer's catch-up against stop()
        self._writer_conn: sqlite3.Connection | None = None  # the catch-up's, opened at the first
        self._stopped = False

    def start(self) -> Checkpointer:
        """Start the thread (it opens its own connection)."""
        self._thread = threading.Thread(target=self._loop, name="db-checkpoint", daemon=True)
        self._thread.start()
        return self

    def notify(self) -> None:
        """A batch was committed (the writer calls it once per batch, on its thread): O(1) and
        never blocks, except the rare catch-up of a writer that never pauses (module doc)."""
        if self._catch_up:
            self._catch_up_on_writer()
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread and wait for it (a checkpoint in progress finishes first); close the
        connections, so the writer's is the last and its close deletes the WAL."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._writer_lock:
            self._stopped = True
            if self._writer_conn is not None:
                self._writer_conn.close()
                self._writer_conn = None

    def _catch_up_on_writer(self) -> None:
        with self._writer_lock:
            self._catch_up = False
            if self._stopped:
                return
            try:
                if self._writer_conn is None:
                    self._writer_conn = self._connect()
                before = self._header()
                backfilled = self._writer_conn.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)").fetchone()[2]
            except sqlite3.Error:  # the thread's next run says what is wrong
                log.debug("the writer's catch-up checkpoint failed", exc_info=True)
                return
            with self._lock:
                self._frames += self._copied(before, self._header(), max(backfilled, 0))
                self._catch_ups += 1

    def stats(self) -> dict:
        """``checkpoint`` of ``get_database_pool_stats``: ``interval_s``, ``runs`` (checkpoints
        run), ``frames_checkpointed`` (WAL frames copied into the file), ``busy`` (runs that could
        not copy every frame: readers on older snapshots, another checkpoint; tried again next
        interval), ``errors`` (runs that failed otherwise, e.g. a full disk; logged), ``last_at``
        (UTC time of the last run or null), ``pending_frames`` (frames left in the WAL at the
        last run), ``wal_bytes`` (the WAL file's size at the last look), ``wal_warn_bytes``,
        ``wal_over_bound`` (episodes of a WAL larger than it) and ``catch_ups`` (checkpoints
        the writer ran itself because it never paused, see the module doc)."""
        with self._lock:
            return {"interval_s": self._interval, "runs": self._runs,
                    "frames_checkpointed": self._frames, "busy": self._busy,
                    "errors": self._errors, "last_at": self._last_at,
                    "pending_frames": self._pending, "wal_bytes": self._wal_bytes,
                    "wal_warn_bytes": self._warn_bytes, "wal_over_bound": self._over_bound,
                    "catch_ups": self._catch_ups}

    # -- the thread ------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error:
            log.exception("the WAL checkpointer cannot open %s: the WAL is checkpointed at close "
                          "only", self._path)
            return
        try:
            retry = False
            while not self._halt.is_set():
                # A commit wakes it at once; otherwise a look every interval catches the writes
                # of Writer.run (tournaments, archival) and retries an incomplete checkpoint.
                self._wake.wait(self._interval)
                self._wake.clear()
                if self._halt.is_set():
                    break
                if retry or self._changed(conn):
                    retry = not self._checkpoint(conn)
                    if self._halt.wait(self._interval):  # at most one run per interval
                        break
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=1.0,
                               check_same_thread=False)  # the catch-up's: stop() closes it
        conn.execute(f"PRAGMA synchronous={self._synchronous}")  # validated by the config
        conn.execute("PRAGMA wal_autocheckpoint=0")  # never writes; said for clarity
        return conn

    def _changed(self, conn: sqlite3.Connection) -> bool:
        """Whether another connection committed since the last look (``data_version``)."""
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return True  # let the checkpoint say what is wrong
        changed = version != self._version
        self._version = version
        return changed

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
            self._catch_up = complete and size > self._keep_bytes
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
