"""Everything SQLite-specific on the writing side - the writer's pragmas and the maintenance
statements (integrity check, ANALYZE, PRAGMA optimize, VACUUM, file information) - and the
``database_*`` commands that run them.

The read side's pragmas live in ``pool.connect_reader``. Keeping both here and there, and nowhere
else, is what lets the rest of the plugin stay plain SQL.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from restrike.host.commands import runs_as_job
from restrike.host.errors import StorageFull, Unavailable

from .backend import is_postgres
from .running import service_of

if TYPE_CHECKING:
    from restrike.host.app import App

    from .service import DatabaseService

Synchronous = Literal["NORMAL", "FULL", "OFF"]

# The tables database_get_info counts (the archive ones included: they are ours too).
COUNTED_TABLES = (
    "pss_events_v2", "pss_event_details", "pss_events_v2_archive", "pss_event_details_archive",
    "pss_matches", "pss_athletes", "pss_rounds", "pss_scores", "pss_warnings",
    "udp_server_sessions", "udp_client_connections", "tournaments", "tournament_days",
)


# How the OS says "no space left" when SQLite passes its error on (SQLite itself says
# SQLITE_FULL, for a full disk and for its max_page_count limit alike).
_FULL_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT))


def storage_full(exc: BaseException) -> StorageFull | None:
    """``exc`` as the operator's ``storage_full`` error when it means the disk is full, else
    None. A write that fails so was rolled back: nothing of it was written."""
    code = getattr(exc, "sqlite_errorcode", None)
    full = (isinstance(exc, sqlite3.Error) and code is not None
            and code & 0xFF == sqlite3.SQLITE_FULL) or (
        isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS)
    if not full:
        return None
    return StorageFull("nothing was saved. Free some space on the disk that holds the data "
                       "folder, then try again.")


def connect_writer(path: str, synchronous: Synchronous = "NORMAL",
                   busy_timeout: float = 5.0) -> sqlite3.Connection:
    """Open the one writing connection: autocommit mode (transactions are explicit
    ``BEGIN IMMEDIATE``/``COMMIT``), WAL journal, ``synchronous`` as given, foreign keys on,
    ``sqlite3.Row`` rows (like the readers').

    ``check_same_thread`` is off because start-up opens it and migrates on the main thread, then
    hands it to the ``db-writer`` thread, which is from then on its only user.
    """
    if synchronous not in ("NORMAL", "FULL", "OFF"):
        raise ValueError(f"synchronous must be NORMAL, FULL or OFF, got {synchronous!r}")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout)
    conn.row_factory = sqlite3.Row
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{path}: the file system refused the WAL journal (got {mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")  # validated above, not user text
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def file_info(conn: sqlite3.Connection, path: str) -> dict:
    """Size and page figures of the database file (and its WAL), SQLite version, journal mode.
    On PostgreSQL the same keys: the database's size (``pg_database_size``), its block size,
    ``journal_mode`` "postgresql", no SQLite version, and ``server_version``."""
    if is_postgres(conn):
        size, block, version = conn.execute(
            "SELECT pg_database_size(current_database()), current_setting('block_size')::int, "
            "current_setting('server_version')").fetchone()
        return {"path": path, "size_bytes": size, "wal_size_bytes": 0, "page_size": block,
                "page_count": size // block, "freelist_count": 0, "journal_mode": "postgresql",
                "sqlite_version": None, "server_version": version}
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    page_count = conn.execute("PRAGMA page_count").fetchone()[0]
    freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return {
        "path": path,
        "size_bytes": _size(path),
        "wal_size_bytes": _size(path + "-wal"),
        "page_size": page_size,
        "page_count": page_count,
        "freelist_count": freelist,
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "sqlite_version": sqlite3.sqlite_version,
    }


def integrity_check(conn: sqlite3.Connection, max_problems: int = 100) -> dict:
    """``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check`` (read-only, any connection).
    SQLite only: ``Unavailable`` on PostgreSQL, which enforces its foreign keys always and has
    no file check of its own to run from here."""
    if is_postgres(conn):
        raise Unavailable("the integrity check is SQLite's: not on PostgreSQL (the server keeps "
                          "its foreign keys always; check its storage with its own tools, "
                          "e.g. pg_amcheck)")
    started = time.perf_counter()
    lines = [row[0] for row in conn.execute(f"PRAGMA integrity_check({int(max_problems)})")]
    problems = [] if lines == ["ok"] else lines
    fk = conn.execute("PRAGMA foreign_key_check").fetchmany(max_problems)
    fk_problems = [
        {"table": row[0], "rowid": row[1], "parent": row[2]} for row in fk
    ]
    return {
        "ok": not problems and not fk_problems,
        "problems": problems,
        "foreign_key_problems": fk_problems,
        "duration_ms": _ms(started),
    }


def analyze(conn: sqlite3.Connection) -> dict:
    """``ANALYZE``: refresh the planner's statistics (writer connection)."""
    started = time.perf_counter()
    conn.execute("ANALYZE")
    return {"ok": True, "duration_ms": _ms(started)}


def optimize(conn: sqlite3.Connection) -> dict:
    """``PRAGMA optimize``: let SQLite analyse what its recent queries would profit from."""
    started = time.perf_counter()
    conn.execute("ANALYZE" if is_postgres(conn) else "PRAGMA optimize")
    return {"ok": True, "duration_ms": _ms(started)}


def vacuum(conn: sqlite3.Connection, path: str) -> dict:
    """``VACUUM`` then truncate the WAL; returns the file size before and after.

    Runs on the writer thread, so ingest waits in the writer's queue meanwhile (counted, and
    dropped only if the queue fills up).
    """
    started = time.perf_counter()
    if is_postgres(conn):  # the server's files: VACUUM gives free space back to the database
        size = "SELECT pg_database_size(current_database())"
        before = conn.execute(size).fetchone()[0]
        conn.execute("VACUUM")
        return {"ok": True, "size_before": before, "size_after": conn.execute(size).fetchone()[0],
                "duration_ms": _ms(started)}
    before = _size(path) + _size(path + "-wal")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = _size(path) + _size(path + "-wal")
    return {"ok": True, "size_before": before, "size_after": after,
            "duration_ms": _ms(started)}


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def commands(app: App) -> dict[str, Callable[..., Any]]:
    """The ``database_*`` commands, bound to the running service."""

    def get_service() -> DatabaseService:
        return service_of(app)


    def database_get_info() -> dict:
        """The database file (path, sizes, pages, SQLite version, journal mode), its schema
        version, ``synchronous``, row counts per table, writer and pool statistics, and
        ``recovered_from``: ``{moved_from, moved_to, reason, at}`` when this start found the
        file damaged and moved it aside (a fresh file was started), else null."""
        service = get_service()
        path = str(service.path) if service.path is not None else (
            service.url.display if service.url is not None else "")
        with service.pool.connection() as conn:
            info = file_info(conn, path)
            counts = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                      for table in COUNTED_TABLES}
        info.update(schema_version=service.schema_version,
                    synchronous=service.config.synchronous, row_counts=counts,
                    writer=service.writer.stats(), pool=service.pool.get_stats(),
                    recovered_from=dict(service.recovered_from)
                    if service.recovered_from else None)
        return info

    @runs_as_job
    def database_run_integrity_check() -> dict:
        """``PRAGMA integrity_check`` and ``foreign_key_check`` on a read connection:
        ``{ok, problems, foreign_key_problems, duration_ms}``."""
        with get_service().pool.connection() as conn:
            return integrity_check(conn)

    @runs_as_job
    def database_run_analyze() -> dict:
        """Refresh the query planner's statistics (``ANALYZE``) on the writer."""
        return get_service().write(analyze)

    @runs_as_job
    def database_run_optimize() -> dict:
        """``PRAGMA optimize`` on the writer (cheap; SQLite picks what to analyse)."""
        return get_service().write(optimize)

    @runs_as_job
    def database_run_vacuum() -> dict:
        """Rebuild the file to reclaim free pages (``VACUUM``), then truncate the WAL.
        Ingest waits in the writer's queue meanwhile. Returns the sizes before and after."""
        service = get_service()
        return service.write(lambda conn: vacuum(conn, str(service.path or "")))

    return {fn.__name__: fn for fn in (
        database_get_info, database_run_integrity_check, database_run_analyze,
        database_run_optimize, database_run_vacuum,
    )}
