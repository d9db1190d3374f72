"""The database plugin's per-app service: the file, its writer thread and its reader pool.

``DatabaseService.open`` is the whole start-up in order: open the writing connection, apply the
migrations, close the sessions the last run left running, start the writer, open the pool, start
the automatic archival if configured. Nothing reads or writes before the migrations ran.

A damaged file (not a database, corrupt) is moved aside and a fresh one started, so ingest goes
on; any other failure to open stops the start with an error naming the path (``recovery.py``).
"""

from __future__ import annotations

import logging
import sqlite3  # the SQLite start-up's errors
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import checkpoint
from .archive import AutoArchiver
from .backend import POSTGRESQL, SQLITE, BadDatabaseUrl, DatabaseUrl
from .checkpoint import Checkpointer
from .clips import ClipStore
from .court import court_name, default_court
from .maintenance import Synchronous, connect_writer
from .migrations import SchemaTooNew, apply_migrations
from .pool import ConnectionPool
from .recovery import (
    DatabaseOpenError,
    close_interrupted_sessions,
    damage_of,
    is_damaged,
    move_aside,
    open_error,
)
from .schema import MIGRATIONS
from .spool import DEFAULT_MAX_BYTES as DEFAULT_SPOOL_BYTES
from .spool import SPOOL_FILE, Spool
from .tournaments import restored_context
from .writer import Writer

log = logging.getLogger(__name__)

AUTO_ARCHIVE_JOB = "automatic archival"
"""The job name of ``database.auto_archive_days``' archival (``get_job_status``)."""

DB_FILE = "restrike_vta.db"
"""The database file's name inside the data dir."""

T = TypeVar("T")


class DatabaseConfig(BaseModel):
    """The ``database`` section of the config file (every key optional)."""

    model_config = ConfigDict(extra="forbid")

    synchronous: Synchronous = "NORMAL"
    """NORMAL, FULL or OFF: what a power cut can cost, see ``writer.py``."""
    queue_max_events: int = Field(100_000, ge=1_000, le=10_000_000)
    """Events the writer's queue holds; a batch that does not fit waits (``submit_wait``)."""
    queue_max_bytes: int = Field(128 * 1024 * 1024, ge=1024 * 1024, le=16 * 1024 ** 3)
    """Bytes the writer's queue holds, an event costed at its raw text + 1 KiB
    (``writer.event_bytes``); a batch that does not fit waits the same way."""
    submit_wait: float = Field(10.0, ge=0, le=600)
    """How long ingest waits for room in a full writer queue (the backlog then stays in the
    UDP receiver's queue) before the batch is dropped and counted; 0: drop at once."""
    batch_max_events: int = Field(4_096, ge=1, le=100_000)
    """Events per transaction at most (a backlog is written in full batches: what a batch costs
    whatever its size is paid once per this many events)."""
    batch_max_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    """Bytes per transaction at most (events costed as the writer's queue costs them): a feed of
    64 KiB messages makes batches of a hundred, not thousands."""
    pool_min_size: int = Field(1, ge=0, le=100)
    pool_max_size: int = Field(10, ge=1, le=100)
    pool_timeout: float = Field(5.0, gt=0, le=300)
    pool_max_idle: float = Field(300.0, gt=0)
    pool_max_lifetime: float = Field(3600.0, gt=0)
    write_timeout: float = Field(10.0, gt=0, le=600)
    """How long a command waits for the writer to take its write before ``unavailable``."""
    close_timeout: float = Field(10.0, gt=0, le=600)
    """At shutdown, how long the writer keeps retrying a failing write before giving up."""
    auto_archive_days: int | None = Field(None, ge=1)
    """Archive events older than this many days automatically (None: never)."""
    url: str | None = Field(None, max_length=4096)
    """Where the data lives (``--database-url``): ``sqlite:///path/file.db`` or
    ``postgresql://user:password@host:port/dbname``; None: ``restrike_vta.db`` in the data
    dir."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                DatabaseUrl.parse(value)
            except BadDatabaseUrl as exc:
                raise ValueError(str(exc)) from None
        return value

    court: str = Field(default_factory=default_court)
    """The court this instance serves (``--court``): stored with every UDP session and match
    it writes; 1-64 printable characters; default the host name."""
    courts_silent_after: float = Field(30.0, gt=0, le=3600)
    """``get_courts``: a court with no event for this many seconds is ``silent``."""

    spool_max_bytes: int = Field(DEFAULT_SPOOL_BYTES, ge=1024 * 1024, le=1024 ** 4)
    """With a central database (PostgreSQL): bytes of batches the local spool keeps while the
    server cannot be reached (``spool.py``); beyond it new batches are dropped and counted."""

    checkpoint_interval_s: float = Field(checkpoint.DEFAULT_INTERVAL_S, ge=0.01, le=60)
    """SQLite: this often the writer copies the WAL back into the file, between two batches
    (``checkpoint.py``), instead of SQLite's automatic checkpoint every 1,000 pages; sooner
    when the WAL file passes ``wal_keep_bytes`` before."""
    wal_flush_interval_s: float = Field(checkpoint.DEFAULT_FLUSH_INTERVAL_S, ge=0, le=60)
    """SQLite with ``synchronous`` NORMAL: this often after a commit a thread of its own fsyncs
    the WAL file, so that a checkpoint's fsync, which the writer waits for, finds little left
    to write, and a power cut rolls back at most about this much feed (``checkpoint.py``); 0 or
    at least 0.005 s. 0: no such thread (a power cut can then roll back what was committed
    since the last checkpoint). FULL syncs every commit and OFF none: no thread either."""
    wal_keep_bytes: int = Field(checkpoint.DEFAULT_KEEP_BYTES, ge=1024 * 1024, le=16 * 1024 ** 3)
    """SQLite (``PRAGMA journal_size_limit``): a WAL that grew beyond this (a burst, a reader
    holding an old snapshot) is cut back to it when it starts over after a checkpoint; a WAL
    that passes it within ``checkpoint_interval_s`` is checkpointed at once."""
    wal_warn_bytes: int = Field(checkpoint.DEFAULT_WARN_BYTES, ge=1024 * 1024, le=1024 ** 4)
    """SQLite: a WAL larger than this (checkpoints cannot finish while a reader keeps an older
    snapshot) is logged once per episode and counted (``checkpoint.wal_over_bound``); ingest
    goes on."""

    @field_validator("wal_flush_interval_s")
    @classmethod
    def _flush_off_or_paced(cls, value: float) -> float:
        if 0 < value < checkpoint.MIN_FLUSH_INTERVAL_S:  # a thread fsyncing without a pause
            raise ValueError(f"0 (no flusher) or at least {checkpoint.MIN_FLUSH_INTERVAL_S} s")
        return value

    @field_validator("court", mode="before")
    @classmethod
    def _court_name(cls, value):
        return court_name(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseConfig:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(f"pool_min_size ({self.pool_min_size}) is larger than "
                             f"pool_max_size ({self.pool_max_size})")
        if self.wal_keep_bytes > self.wal_warn_bytes:
            raise ValueError(f"wal_keep_bytes ({self.wal_keep_bytes}) is larger than "
                             f"wal_warn_bytes ({self.wal_warn_bytes})")
        return self


@dataclass
class DatabaseService(ClipStore):
    """What ``app.extensions["database"]`` holds: ``path`` (the SQLite file; None on
    PostgreSQL), ``config``, ``writer``, ``pool``, ``checkpointer`` (SQLite's WAL; None on
    PostgreSQL), ``schema_version``, ``auto_archiver`` (None unless ``auto_archive_days`` is set),
    ``recovered_from`` (``{moved_from, moved_to, reason, at}`` when start-up moved a damaged
    file aside, else None) and ``interrupted_sessions`` (sessions closed as interrupted).
    The clip methods (``store_clip``, ``clips``, ``clip``, ``delete_clip``) are ``ClipStore``'s."""

    path: Path | None
    config: DatabaseConfig
    writer: Writer
    pool: ConnectionPool  # on PostgreSQL a pg.ReadPool: the same interface
    schema_version: int
    auto_archiver: AutoArchiver | None = None
    recovered_from: dict | None = None
    interrupted_sessions: int = 0
    url: DatabaseUrl | None = None
    """Where the data lives (``url.display``: the password masked); None: ``path``."""
    checkpointer: Checkpointer | None = None

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.backend if self.url is not None else SQLITE

    @classmethod
    def open(cls, target: Path | str | DatabaseUrl, config: DatabaseConfig | None = None, *,
             as_job: Callable[[str, Callable[[], int]], int] | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             on_commit: Callable[[], None] | None = None,
             data_dir: Path | None = None) -> DatabaseService:
        """Open (or create) the database, migrate it, start the writer and the pool.

        ``target``: an SQLite file's path, or a ``--database-url`` (text or parsed): on
        PostgreSQL the server's database is migrated (several instances may start at once)
        and the SQLite-only steps below (damaged file, file errors) do not apply.

        A damaged file is moved aside to ``<name>.corrupt-<UTC time>`` and a fresh one started
        (logged as an ERROR naming both paths). ``DatabaseOpenError`` (naming the path) when
        the file cannot be opened for any other reason; nothing is touched then.

        ``as_job(name, work)`` runs the automatic archival in the host's one job slot
        (``app.jobs.run``), so it never overlaps an archive command; ``progress(operation,
        done, total)`` is told its chunks. Without them (tests) it just runs on the writer.
        ``on_commit()`` is called on the writer thread after every committed batch of data
        (``courts.py``: the Courts screen's "something changed" signal); it must not block.

        ``data_dir`` (PostgreSQL only): where the store-and-forward spool lives
        (``spool.SPOOL_FILE``). With it, a server that cannot be reached (``pg.unreachable``:
        down, restarting, cable pulled) does not stop the start, not even the first one: the
        writer spools and connects (and migrates) when the server answers; a server that
        answers and refuses (wrong password, no such database) still raises
        ``DatabaseOpenError``. Without it (tests, tools) any failure to connect raises.
        """
        config = config or DatabaseConfig()
        url = target if isinstance(target, DatabaseUrl) else (
            DatabaseUrl.parse(target) if isinstance(target, str) and "://" in target
            else DatabaseUrl.sqlite_file(Path(target)))
        if url.backend == POSTGRESQL:
            return cls._open_postgres(url, config, as_job, progress, on_commit, data_dir)
        assert url.path is not None
        path = url.path
        recovered = None
        damage = damage_of(path)
        if damage is not None:
            recovered = _move_aside(path, damage)
        try:
            conn, version, interrupted = _open_file(path, config)
        except sqlite3.DatabaseError as exc:
            if recovered is not None or not is_damaged(exc):
                raise open_error(path, exc) from exc
            # damage past what the probe reads (a corrupt page the migrations touched)
            recovered = _move_aside(path, exc)
            try:
                conn, version, interrupted = _open_file(path, config)
            except sqlite3.Error as again:
                raise open_error(path, again) from again
        except (OSError, SchemaTooNew) as exc:
            raise open_error(path, exc) from exc
        checkpointer = Checkpointer(str(path), interval=config.checkpoint_interval_s,
                                    flush_interval=config.wal_flush_interval_s
                                    if config.synchronous == "NORMAL" else 0,
                                    keep_bytes=config.wal_keep_bytes,
                                    warn_bytes=config.wal_warn_bytes)
        checkpointer.attach(conn)
        return cls._start(conn, version, config, lambda: ConnectionPool(
            str(path), min_size=config.pool_min_size,
            max_size=config.pool_max_size, timeout=config.pool_timeout,
            max_idle=config.pool_max_idle, max_lifetime=config.pool_max_lifetime,
        ), as_job, progress, on_commit, path=path, url=None, recovered_from=recovered,
            interrupted_sessions=interrupted, checkpointer=checkpointer)

    @classmethod
    def _open_postgres(cls, url: DatabaseUrl, config: DatabaseConfig,
                       as_job: Callable[[str, Callable[[], int]], int] | None,
                       progress: Callable[[str, int, int], None] | None,
                       on_commit: Callable[[], None] | None,
                       data_dir: Path | None) -> DatabaseService:
        """The central server. With ``data_dir``, store-and-forward: the spool there, and a
        server that cannot be reached does not stop the start (see ``_connect_postgres``)."""
        from . import pg  # PostgreSQL only: an SQLite app never loads the driver
        spool = Spool(data_dir / SPOOL_FILE, config.spool_max_bytes) \
            if data_dir is not None else None
        try:
            conn, version = _connect_postgres(url, spool)
            interrupted = 0
            close_later = spool is not None and (conn is None or spool.earlier() > 0)
            if conn is not None and not close_later:
                try:
                    interrupted = close_interrupted_sessions(conn, config.court)  # this court's
                except BaseException:
                    conn.close()
                    raise
            context = restored_context(conn) if conn is not None else (
                spool.saved_context() if spool is not None else (None, None))
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        store_and_forward: dict[str, Any] = {} if spool is None else {
            "spool": spool, "connect": lambda: pg.connect_writer(url.conninfo),
            "unreachable": pg.unreachable, "prepare": _migrate_central,
            "close_interrupted": (lambda c: close_interrupted_sessions(c, config.court))
            if close_later else None}
        return cls._start(conn, version, config, lambda: cast(ConnectionPool, pg.ReadPool(
            url.conninfo, min_size=config.pool_min_size, max_size=config.pool_max_size,
            timeout=config.pool_timeout, max_idle=config.pool_max_idle,
            max_lifetime=config.pool_max_lifetime, wait=conn is not None,
        )), as_job, progress, on_commit, path=None, url=url, recovered_from=None,
            interrupted_sessions=interrupted, context=context, writer_options=store_and_forward)

    @classmethod
    def _start(cls, conn, version: int, config: DatabaseConfig,
               open_pool: Callable[[], ConnectionPool],
               as_job: Callable[[str, Callable[[], int]], int] | None,
               progress: Callable[[str, int, int], None] | None,
               on_commit: Callable[[], None] | None, *, path: Path | None,
               url: DatabaseUrl | None, recovered_from: dict | None,
               interrupted_sessions: int, context: tuple | None = None,
               writer_options: dict | None = None,
               checkpointer: Checkpointer | None = None) -> DatabaseService:
        """The start-up steps both backends share: the writer, the pool, the archival.
        ``conn`` None: the central server cannot be reached yet (``writer_options`` has the
        spool); ``context``: the tournament context when it is not read from ``conn``;
        ``checkpointer``: SQLite's, told of every committed batch."""
        if checkpointer is not None:
            on_commit = _and_then(on_commit, checkpointer.notify)
        try:
            writer = Writer(conn, queue_max_events=config.queue_max_events,
                            queue_max_bytes=config.queue_max_bytes,
                            batch_max_events=config.batch_max_events,
                            batch_max_bytes=config.batch_max_bytes, court=config.court,
                            on_commit=on_commit, **(writer_options or {}))
            writer.set_context(*(context if context is not None else restored_context(conn)))
        except BaseException:
            if conn is not None:
                conn.close()
            if writer_options and writer_options.get("spool") is not None:
                writer_options["spool"].close()
            raise
        writer.start()
        if checkpointer is not None:
            checkpointer.start()
        try:
            pool = open_pool()
        except BaseException:
            if checkpointer is not None:
                checkpointer.stop()
            writer.close(config.close_timeout)
            raise
        service = cls(path, config, writer, pool, version, recovered_from=recovered_from,
                      interrupted_sessions=interrupted_sessions, url=url,
                      checkpointer=checkpointer)
        if config.auto_archive_days is not None:
            def run(fn: Callable[[Any], int]) -> int:
                if as_job is None:
                    return service.write(fn)
                return as_job(AUTO_ARCHIVE_JOB, lambda: service.write(fn))

            service.auto_archiver = AutoArchiver(run, config.auto_archive_days,
                                                 progress=progress)
            service.auto_archiver.start()
        if url is None:
            log.info("database %s open (schema version %d, synchronous %s)", path, version,
                     config.synchronous)
        else:
            log.info("database %s %s (schema version %d)", url.display,
                     "open" if conn is not None else "not reachable yet, spooling", version)
        return service

    def write(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` on the writer thread (``Writer.run`` with the configured timeout);
        on SQLite the checkpointer is told once it returned, as after a batch (an archival's
        long transaction, or commands back to back, get their WAL cut back the same way)."""
        checkpointer = self.checkpointer
        if checkpointer is None:
            return self.writer.run(fn, timeout=self.config.write_timeout)

        def then_notify(conn) -> T:
            try:
                return fn(conn)
            finally:
                checkpointer.notify()
        return self.writer.run(then_notify, timeout=self.config.write_timeout)

    def close(self) -> None:
        """Close the pool and stop the checkpointer, then the writer: it first commits
        everything queued (a write still failing after ``close_timeout`` s is given up, counted
        in ``lost`` and logged); its connection, the last, checkpoints and deletes the WAL."""
        if self.auto_archiver is not None:
            self.auto_archiver.stop()
        self.pool.close()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.writer.close(self.config.close_timeout)

    def checkpoint_stats(self) -> dict | None:
        """``Checkpointer.stats()`` (SQLite); None on PostgreSQL, whose WAL is the server's."""
        return self.checkpointer.stats() if self.checkpointer is not None else None


def _move_aside(path: Path, damage: BaseException) -> dict:
    """Move the damaged file aside; ingest matters more than an unreadable old file, which is
    kept whole for a rescue. Logged as an ERROR naming both paths."""
    recovered = move_aside(path, str(damage))
    log.error("the database file %s is damaged (%s): moved it to %s and started a fresh one",
              path, damage, recovered["moved_to"])
    return recovered


def _open_file(path: Path, config: DatabaseConfig) -> tuple[sqlite3.Connection, int, int]:
    """The writing connection on ``path``, migrated, with the last run's unfinished sessions
    closed: ``(conn, schema version, sessions closed as interrupted)``. Closes it on failure."""
    conn = connect_writer(str(path), config.synchronous)
    try:
        version = apply_migrations(conn)
        interrupted = close_interrupted_sessions(conn)
        # from here on the writer checkpoints every 2 s (checkpoint.py), not SQLite
        checkpoint.hand_over(conn, config.wal_keep_bytes)
    except BaseException:
        conn.close()
        raise
    if interrupted:
        log.warning("%d UDP session(s) of an earlier run did not stop (a crash?): marked "
                    "interrupted", interrupted)
    return conn, version, interrupted


def _and_then(first: Callable[[], None] | None,
              then: Callable[[], None]) -> Callable[[], None]:
    """One commit listener calling ``first`` (if any), then ``then``."""
    if first is None:
        return then

    def both() -> None:
        try:
            first()
        finally:
            then()
    return both


def _migrate_central(conn) -> None:
    """The migrations at the first connection to a server unreachable at the start; a schema
    newer than this restrike is reported (the writer logs it and keeps spooling)."""
    apply_migrations(conn)


def _connect_postgres(url: DatabaseUrl, spool: Spool | None) -> tuple[Any, int]:
    """The writing connection to the central server, migrated: ``(conn, schema version)``;
    ``(None, the version this restrike migrates to)`` when the server cannot be reached and
    there is a ``spool`` to wait in. ``DatabaseOpenError`` (one line, the password masked)
    when it refuses us or cannot be reached without a spool."""
    from . import pg  # PostgreSQL only, as in ``_open_postgres``
    conn = None
    try:
        conn = pg.connect_writer(url.conninfo)
        return conn, apply_migrations(conn)
    except pg.psycopg.Error as exc:
        if conn is not None:
            conn.close()
        if spool is None or not pg.unreachable(exc):
            raise DatabaseOpenError(
                f"cannot connect to the database {url.display}: {_one_line(exc)}") from exc
        log.error("the central database %s cannot be reached (%s): starting anyway; batches go "
                  "to the spool %s until it answers", url.display, _one_line(exc), spool.path)
        return None, MIGRATIONS[-1].version
    except SchemaTooNew as exc:
        if conn is not None:
            conn.close()
        raise DatabaseOpenError(f"the database {url.display}: {exc}") from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
