"""SQLite's WAL checkpoints, run by the writer itself at most every ``interval`` seconds instead
of SQLite's automatic one every 1,000 pages.

Why: SQLite's automatic checkpoint runs inside the COMMIT of whichever batch makes the WAL pass
1,000 pages, with its fsyncs: about a tenth of the writer's CPU. And every batch rewrites the
same hot pages (the last leaf of each index, the counters), so checkpointing every few batches
copies the same pages again and again. Why every two seconds: each checkpoint stops the writer
for a few ms (copying the pages, fsyncing the file), and at a live feed's pace the fewer stops,
the fewer events wait for one (1,000/s: ~5 ms each, ~5 events delayed; the writer's CPU hardly
changes between 0.1 and 2 s). The interval no longer bounds what a power cut loses: the
flusher (below) does.

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
``PRAGMA wal_checkpoint(PASSIVE)`` when ``interval`` has passed since the last one, or earlier
when the flusher (below) finds the WAL file larger than ``keep_bytes``: a feed that writes that
much within an interval (~25,000 events/s) gets shorter checkpoints, more often, and its WAL
file stays near the bound instead of growing to twice it and being cut back every interval.
PASSIVE never waits for a reader.

What happens when it cannot keep up: a checkpoint that cannot copy every frame (a reader still
reads an older snapshot, e.g. a long export) is counted in ``busy`` and tried again after the
next interval; nothing is refused and nobody waits. Meanwhile the WAL grows (ingest goes on;
the disk is the limit). Past ``warn_bytes`` a WARNING is logged once per episode and counted in
``wal_over_bound``; the episode ends at the next complete checkpoint. Once a checkpoint
completes, the writer starts the WAL over at its next commit and cuts the file back to
``journal_size_limit`` (``keep_bytes``). The writer's close checkpoints everything and deletes
the WAL, as SQLite always does.

Why the WAL is flushed ahead, on a thread of its own (``db-wal-flush``): a checkpoint fsyncs the
WAL before it copies it, and the writer waits for that. At a live feed's pace (a commit every
event or two, ~20 KiB of WAL each) a second of WAL is ~20 MiB, and its fsync stopped the writer
for ~15 ms each time: the events that arrived meanwhile were the 1,000/s benchmark's p99. The
flusher ``fdatasync``s the WAL file every ``flush_interval`` (30 ms) after a commit, so the
checkpoint's own fsync finds only the last few ms still to write (PostgreSQL's WAL writer and
``checkpoint_flush_after`` do the same). With ``synchronous`` NORMAL it also bounds what a power
cut can roll back: SQLite's recovery replays every committed frame on disk, so about the last
``flush_interval`` of feed, not everything since the last checkpoint. It runs with
``synchronous`` NORMAL only: FULL syncs every commit already, OFF asks for no sync at all
(the service passes ``flush_interval`` 0 then). An fsync changes no byte
and takes no SQLite lock, so it cannot race the writer as a second checkpointing connection
would. It opens the ``-wal`` file only, never the database or the ``-shm`` file: closing any
descriptor of a file drops every POSIX lock this process holds on it, SQLite's own included
(SQLite locks those two files, never the WAL). Where the platform has no ``fdatasync`` (macOS,
Windows) there is no flusher and the checkpoint's fsync writes everything, as before.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

from restrike.host.timeutil import now_iso

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
DEFAULT_FLUSH_INTERVAL_S = 0.03
MIN_FLUSH_INTERVAL_S = 0.005
DEFAULT_KEEP_BYTES = 64 * 1024 * 1024
DEFAULT_WARN_BYTES = 256 * 1024 * 1024

# The checkpoint sequence number in the WAL file's header (bytes 12-15, big-endian): SQLite adds
# one each time the WAL starts over, so frame counts of two runs are compared within one WAL.
_HEADER_SEQUENCE = slice(12, 16)

# The result codes that mean "another connection holds what this needs right now": try later.
_BUSY_CODES = frozenset((sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))

# Flushes the file's data, not its times (Linux); None where the platform has none: no flusher.
_DATASYNC = getattr(os, "fdatasync", None)


def hand_over(conn: sqlite3.Connection, keep_bytes: int) -> None:
    """Make ``conn`` (the writer's connection) leave checkpoints to ``Checkpointer.notify``: no
    automatic checkpoint in its commits; the WAL file cut back to ``keep_bytes`` when it starts
    over after a complete checkpoint."""
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={int(keep_bytes)}")


class Checkpointer:
    """The WAL checkpoints of one SQLite file, on its writer's connection: ``attach(conn)`` (the
    writer's), ``start()`` (the flusher), ``notify()`` (the writer thread, after a commit),
    ``stats()`` (any thread), ``stop()`` (no checkpoint nor flush after it)."""

    def __init__(self, path: str, *, interval: float = DEFAULT_INTERVAL_S,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
                 keep_bytes: int = DEFAULT_KEEP_BYTES,
                 warn_bytes: int = DEFAULT_WARN_BYTES) -> None:
        self._path = str(path)
        self._wal = self._path + "-wal"
        self._interval = interval
        self._flush_interval = flush_interval
        self._flusher: threading.Thread | None = None
        self._quit = threading.Event()
        self._committed = False  # a commit since the flusher's last look
        self._early = False  # the flusher saw the WAL past keep_bytes: checkpoint at once
        self._complete = False  # the last checkpoint copied every frame
        self._flushes = self._flush_errors = 0
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
        """Start the WAL flusher (``db-wal-flush``), unless ``flush_interval`` is 0 or the
        platform has no ``fdatasync``."""
        if self._flush_interval > 0 and _DATASYNC is not None and self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_ahead, name="db-wal-flush",
                                             daemon=True)
            self._flusher.start()
        return self

    def notify(self) -> None:
        """A batch was committed (the writer thread, between its COMMIT and its next BEGIN):
        one ``PASSIVE`` checkpoint when ``interval`` has passed since the last one, or earlier
        when the flusher saw the WAL file pass ``keep_bytes``."""
        conn = self._conn
        if conn is None or self._stopped:
            return
        self._committed = True
        now = time.monotonic()
        if now < self._due and not self._early:
            return
        self._due = now + self._interval
        if not conn.in_transaction:  # a run() function left one open: not between transactions
            self._checkpoint(conn)
        self._early = False  # after: what the flusher saw while this one ran is copied now

    def stop(self) -> None:
        """No checkpoint nor flush after this (the writer's close checkpoints and syncs
        everything); waits for a flush under way."""
        self._stopped = True
        self._quit.set()
        if self._flusher is not None:
            self._flusher.join()

    def stats(self) -> dict:
        """``checkpoint`` of ``get_database_pool_stats``: ``interval_s``, ``runs`` (checkpoints
        run), ``frames_checkpointed`` (WAL frames copied into the file), ``busy`` (runs that could
        not copy every frame: readers on older snapshots; tried again after the next interval),
        ``errors`` (runs that failed otherwise, e.g. a full disk; logged), ``last_at`` (UTC time
        of the last run or null), ``pending_frames`` (frames left in the WAL at the last run),
        ``wal_bytes`` (the WAL file's size at the last look), ``wal_warn_bytes`` and
        ``wal_over_bound`` (episodes of a WAL larger than it), ``flush_interval_s`` (0: no
        flusher), ``wal_flushes`` (fdatasyncs of the WAL by the flusher) and
        ``wal_flush_errors`` (fdatasyncs that failed, e.g. a disk error; logged; the next
        checkpoint's own fsync writes what they did not)."""
        with self._lock:
            return {"interval_s": self._interval, "runs": self._runs,
                    "frames_checkpointed": self._frames, "busy": self._busy,
                    "errors": self._errors, "last_at": self._last_at,
                    "pending_frames": self._pending, "wal_bytes": self._wal_bytes,
                    "wal_warn_bytes": self._warn_bytes, "wal_over_bound": self._over_bound,
                    "flush_interval_s": self._flush_interval if self._flusher else 0,
                    "wal_flushes": self._flushes, "wal_flush_errors": self._flush_errors}

    def _flush_ahead(self) -> None:
        """The flusher thread: every ``flush_interval``, if a batch was committed since its last
        look, ``fdatasync`` the WAL file on a descriptor of its own (see the module's text)."""
        sync = _DATASYNC
        if sync is None:
            return
        failing = False  # the last flush failed: logged once per episode
        while not self._quit.wait(self._flush_interval):
            if not self._committed:
                continue
            self._committed = False  # before the flush: a commit during it is flushed next time
            try:
                fd = os.open(self._wal, os.O_RDONLY)
            except OSError:  # no WAL (yet, or any more): nothing to flush
                continue
            try:
                sync(fd)
                # A feed fast enough to pass keep_bytes within an interval (~25,000 events/s)
                # gets its checkpoint now: shorter stops, and a file near keep_bytes, not twice it.
                # Only once the WAL started over since the last checkpoint (its header's
                # sequence changed): until then the file keeps its size (it is cut back at the
                # commit after a checkpoint). Not after an incomplete one: a reader's snapshot,
                # not the size, holds the WAL then, and the interval paces the retries.
                if (self._complete and os.fstat(fd).st_size > self._keep_bytes
                        and os.pread(fd, _HEADER_SEQUENCE.stop, 0)[_HEADER_SEQUENCE]
                        != self._sequence):
                    self._early = True
            except OSError as exc:
                with self._lock:
                    self._flush_errors += 1
                log.log(logging.DEBUG if failing else logging.ERROR,
                        "flushing the WAL of %s failed (%s): the next checkpoint's own fsync "
                        "writes it", self._path, exc)
                failing = True
            else:
                failing = False
                with self._lock:
                    self._flushes += 1
            finally:
                os.close(fd)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint, counted: complete, busy (frames left for a reader on an older
        snapshot), or failed."""
        before = self._header()
        try:
            busy, frames, backfilled = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) or 0
            self._complete = False
            with self._lock:
                self._runs += 1
                self._last_at = now_iso()
                if code & 0xFF in _BUSY_CODES:  # try later, as the busy flag below
                    self._busy += 1
                    return
                self._errors += 1
            log.log(logging.DEBUG if self._failing else logging.ERROR,
                    "a WAL checkpoint of %s failed (%s): tried again after the next commit",
                    self._path, exc)
            self._failing = True
            return
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
        self._complete = complete  # after _sequence: the flusher compares the WAL's with it
        if warn:
            log.warning("the WAL of %s is %d MiB, more than %d MiB: checkpoints cannot keep "
                        "up (a reader on an older snapshot, a long export or query?); ingest "
                        "goes on, the WAL is cut back once they can",
                        self._path, size >> 20, self._warn_bytes >> 20)

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
