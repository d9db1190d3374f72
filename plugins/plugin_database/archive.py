"""Archival of old PSS events: move to / back from the archive tables, purge, statistics, optimize.

Every moving operation is one SQLite transaction (``BEGIN IMMEDIATE`` … ``COMMIT``): after a
crash or a ``SIGKILL`` at any moment each event is in exactly one of ``pss_events_v2`` and
``pss_events_v2_archive``, with its details beside it. Large volumes are processed in chunks
*inside* that transaction so progress can be reported between chunks.

The operations take a ``sqlite3.Connection`` that is not in a transaction (autocommit,
``isolation_level=None``, is what the writer uses); in the app they run on the single
``db-writer`` thread via ``service.writer.run(fn)``. Column lists are read with
``PRAGMA table_info`` at run time, so a column added by a migration moves without code changes;
main and archive tables must have the same columns, else :class:`ArchiveSchemaError`.

While a move runs, the connection gets a larger page cache and foreign-key enforcement is
paused - SQLite's per-row checks were a third of a restore and its per-row cascade two thirds
of an archival - with the same guarantees kept by hand: the details are deleted explicitly, and
before a restore the parents the moved events refer to are checked once per distinct value
(``_refuse_missing_parents``). Both settings are given back afterwards. A chunk whose events are all
the rows of an id range is moved with range predicates (``id BETWEEN``), which SQLite walks in
order, instead of an ``IN`` list it must build first. Measured with
``bench/database_archive.py``.

Times are the stored text format (``host.timeutil``): comparing the text compares the instants.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from restrike.host.errors import Conflict, InvalidArgument
from restrike.host.timeutil import TimeOutOfRange, parse_iso, to_iso, to_utc

from .backend import columns_of, errors, is_postgres, references
from .pool import read_snapshot

log = logging.getLogger(__name__)

EVENTS = "pss_events_v2"
DETAILS = "pss_event_details"
EVENTS_ARCHIVE = "pss_events_v2_archive"
DETAILS_ARCHIVE = "pss_event_details_archive"

# Events per chunk: big enough that per-statement overhead is small, small enough that progress
# reaches the page a few times a second.
CHUNK_EVENTS = 20_000
# daysOld above this is certainly a typo (and would overflow date arithmetic).
MAX_DAYS = 100_000
_MIN_YEAR = 1900
# Page cache of the writing connection while a move runs (KiB), then given back.
_MOVE_CACHE_KIB = 64 * 1024

Progress = Callable[[str, int, int], None]


class ArchiveSchemaError(RuntimeError):
    """A main table and its archive table do not have the same columns (or one is missing)."""


# -- argument validation (shared with the command layer) ---------------------------------------


def validate_days_old(value: Any, field: str = "daysOld") -> int:
    """Return ``value`` if it is an integer in 0..MAX_DAYS, else raise ``InvalidArgument``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field} must be an integer >= 0, got {value!r}", field=field)
    if value < 0:
        raise InvalidArgument(f"{field} must be >= 0, got {value}", field=field)
    if value > MAX_DAYS:
        raise InvalidArgument(f"{field} must be at most {MAX_DAYS}, got {value}", field=field)
    return value


def parse_date_range(start: Any, end: Any) -> tuple[str, str]:
    """Validate a restore range and return it as two stored-format times, both inclusive.

    Each end is an ISO date or date-time (naive means UTC). A date-only ``end`` covers its
    whole day (up to ``23:59:59.999999``). Raises ``InvalidArgument`` with field
    ``startDate``/``endDate`` for a missing or unparsable value or ``start > end``.
    """
    start_iso = _parse_bound(start, "startDate", end_of_day=False)
    end_iso = _parse_bound(end, "endDate", end_of_day=True)
    if start_iso > end_iso:
        raise InvalidArgument(
            f"startDate ({start_iso}) must not be after endDate ({end_iso})", field="startDate"
        )
    return start_iso, end_iso


def cutoff_for(days_old: int, now: _dt.datetime | str | None = None) -> str:
    """The stored-format time ``days_old`` days before ``now`` (default: the current time)."""
    if now is None:
        moment = _dt.datetime.now(_dt.UTC)
    elif isinstance(now, str):
        moment = parse_iso(now)
    else:
        moment = now if now.tzinfo else now.replace(tzinfo=_dt.UTC)
    return to_iso(moment - _dt.timedelta(days=days_old))


def _parse_bound(value: Any, field: str, *, end_of_day: bool) -> str:
    if isinstance(value, _dt.datetime):
        try:
            moment = to_utc(value)
        except TimeOutOfRange:
            raise InvalidArgument(
                f"{field} must be between the years {_MIN_YEAR} and 9999, got {value!r}",
                field=field) from None
    elif not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{field} is required (an ISO date or date-time)", field=field)
    else:
        moment = _parse_text(value, field, end_of_day=end_of_day)
    # Stored times have four-digit years: outside them text order is not time order.
    if not _MIN_YEAR <= moment.year <= 9999:
        raise InvalidArgument(
            f"{field} must be between the years {_MIN_YEAR} and 9999, got {value!r}", field=field
        )
    return to_iso(moment)


def _parse_text(value: str, field: str, *, end_of_day: bool) -> _dt.datetime:
    text = value.strip()
    try:
        day = _dt.date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    try:
        if day is not None:
            midnight = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC)
            if end_of_day:  # a date-only end covers that whole day
                return midnight + _dt.timedelta(days=1) - _dt.timedelta(microseconds=1)
            return midnight
        return parse_iso(text)
    except (OverflowError, TimeOutOfRange):  # OverflowError: the end of 9999-12-31
        raise InvalidArgument(
            f"{field} must be between the years {_MIN_YEAR} and 9999, got {value!r}", field=field
        ) from None
    except ValueError:
        raise InvalidArgument(
            f"{field} must be an ISO date or date-time such as 2026-11-28 or "
            f"2026-11-28T12:00:00Z, got {value!r}",
            field=field,
        ) from None


# -- the operations -----------------------------------------------------------------------------


def archive_old_events(
    conn: sqlite3.Connection,
    days_old: int,
    *,
    now: _dt.datetime | str | None = None,
    progress: Progress | None = None,
    chunk: int = CHUNK_EVENTS,
) -> int:
    """Move events whose ``created_at`` is older than ``now - days_old`` days, with all their
    details, to the archive tables (same ids, same values). One transaction; returns the number
    of events moved. ``progress("archive_old_events", done, total)`` runs between chunks."""
    cutoff = cutoff_for(validate_days_old(days_old), now)
    return _move(
        conn,
        "archive_old_events",
        src=(EVENTS, DETAILS),
        dst=(EVENTS_ARCHIVE, DETAILS_ARCHIVE),
        where="created_at < ?",
        params=(cutoff,),
        progress=progress,
        chunk=chunk,
    )


def restore_from_archive(
    conn: sqlite3.Connection,
    start: str | _dt.datetime,
    end: str | _dt.datetime,
    *,
    progress: Progress | None = None,
    chunk: int = CHUNK_EVENTS,
) -> int:
    """Move archived events with ``start <= created_at <= end`` (a date-only ``end`` means its
    whole day) and their details back to the main tables. One transaction; returns the number
    restored (a second identical call restores nothing). Raises ``Conflict`` when an archived
    id already exists in the main table (nothing is changed then)."""
    start_iso, end_iso = parse_date_range(start, end)
    return _move(
        conn,
        "restore_from_archive",
        src=(EVENTS_ARCHIVE, DETAILS_ARCHIVE),
        dst=(EVENTS, DETAILS),
        where="created_at >= ? AND created_at <= ?",
        params=(start_iso, end_iso),
        progress=progress,
        chunk=chunk,
    )


def cleanup_old_archive_data(
    conn: sqlite3.Connection,
    days_old: int,
    *,
    now: _dt.datetime | str | None = None,
    progress: Progress | None = None,
    chunk: int = CHUNK_EVENTS,
) -> int:
    """Permanently delete archived events older than ``now - days_old`` days and their archived
    details. One transaction; returns the number of events deleted."""
    cutoff = cutoff_for(validate_days_old(days_old), now)
    return _move(
        conn,
        "cleanup_old_archive_data",
        src=(EVENTS_ARCHIVE, DETAILS_ARCHIVE),
        dst=None,
        where="created_at < ?",
        params=(cutoff,),
        progress=progress,
        chunk=chunk,
    )


def get_archive_statistics(conn: sqlite3.Connection) -> dict:
    """Counts, oldest/newest ``created_at`` and on-disk size of the archive.

    Returns ``{archived_events, archived_details, oldest_archived, newest_archived,
    archive_size_bytes, archive_size_method}``; the size is what the archive tables and their
    indexes occupy (``dbstat`` pages; ``"estimate"`` from row shares when the SQLite build has
    no ``dbstat``). Read-only: works on a pool connection.
    """
    for table in (EVENTS_ARCHIVE, DETAILS_ARCHIVE):
        _columns(conn, table)
    with read_snapshot(conn):  # one snapshot for all the numbers
        events, oldest, newest = conn.execute(
            f"SELECT count(*), min(created_at), max(created_at) FROM {_q(EVENTS_ARCHIVE)}"
        ).fetchone()
        details = conn.execute(f"SELECT count(*) FROM {_q(DETAILS_ARCHIVE)}").fetchone()[0]
        size, method = _archive_size(conn, events + details)
    return {
        "archived_events": events,
        "archived_details": details,
        "oldest_archived": oldest,
        "newest_archived": newest,
        "archive_size_bytes": size,
        "archive_size_method": method,
    }


def optimize_archive_tables(conn: sqlite3.Connection) -> None:
    """ANALYZE and REINDEX the archive tables, then give free pages back to the file system
    (``PRAGMA incremental_vacuum`` when the database uses incremental auto-vacuum, else
    ``VACUUM``, and a WAL checkpoint so the file really shrinks). Must run outside a
    transaction; logs the time of each step."""
    if conn.in_transaction:
        raise RuntimeError("optimize_archive_tables must run outside a transaction")
    for table in (EVENTS_ARCHIVE, DETAILS_ARCHIVE):
        _columns(conn, table)
    if is_postgres(conn):
        _optimize_on_postgres(conn)
        return
    path = _main_file(conn)
    size_before = _file_size(path)
    t0 = time.perf_counter()
    for table in (EVENTS_ARCHIVE, DETAILS_ARCHIVE):
        conn.execute(f"ANALYZE {_q(table)}")
    t1 = time.perf_counter()
    for table in (EVENTS_ARCHIVE, DETAILS_ARCHIVE):
        conn.execute(f"REINDEX {_q(table)}")
    t2 = time.perf_counter()
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        conn.execute("PRAGMA incremental_vacuum").fetchall()
        how = "incremental_vacuum"
    else:
        conn.execute("VACUUM")
        how = "VACUUM"
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            log.info("optimize: WAL checkpoint blocked by readers; the file shrinks later")
    t3 = time.perf_counter()
    log.info(
        "optimized archive tables in %.3f s (ANALYZE %.3f s, REINDEX %.3f s, %s %.3f s); "
        "file %s -> %s bytes",
        t3 - t0, t1 - t0, t2 - t1, how, t3 - t2, size_before, _file_size(path),
    )


def _optimize_on_postgres(conn) -> None:
    """``VACUUM (ANALYZE)`` and ``REINDEX`` of the archive tables (the server's own files)."""
    def size() -> int:
        return _archive_size(conn, 0)[0]

    before, t0 = size(), time.perf_counter()
    for table in (EVENTS_ARCHIVE, DETAILS_ARCHIVE):
        conn.execute(f"VACUUM (ANALYZE) {_q(table)}")
    t1 = time.perf_counter()
    for table in (EVENTS_ARCHIVE, DETAILS_ARCHIVE):
        conn.execute(f"REINDEX TABLE {_q(table)}")
    t2 = time.perf_counter()
    log.info("optimized archive tables in %.3f s (VACUUM (ANALYZE) %.3f s, REINDEX %.3f s); "
             "archive %s -> %s bytes", t2 - t0, t1 - t0, t2 - t1, before, size())


# -- the one moving routine ---------------------------------------------------------------------

_IDS_NAME = "_restrike_archive_ids"
# Unqualified: both SQLite and PostgreSQL look in the session's temporary tables first.
_IDS = _IDS_NAME
_CHUNK_IDS = f"SELECT id FROM {_IDS} WHERE n > ? AND n <= ?"


def _move(
    conn: sqlite3.Connection,
    op: str,
    *,
    src: tuple[str, str],
    dst: tuple[str, str] | None,
    where: str,
    params: tuple,
    progress: Progress | None,
    chunk: int,
) -> int:
    """Copy the selected events and their details from ``src`` to ``dst`` (or nowhere when
    ``dst`` is None) and delete them from ``src``, in one transaction, ``chunk`` events at a
    time."""
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if conn.in_transaction:
        raise RuntimeError(f"{op} must start outside a transaction")
    src_events, src_details = src
    if dst is not None:
        event_cols = _matching_columns(conn, src_events, dst[0])
        detail_cols = _matching_columns(conn, src_details, dst[1])
    else:
        _columns(conn, src_events)
        _columns(conn, src_details)
    postgres = is_postgres(conn)
    paused = not postgres and _can_pause_foreign_keys(conn, src)  # PostgreSQL: always on
    if paused:
        conn.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set it before
    # A big transaction spills dirty pages to the WAL when the page cache is full, then reads
    # them back; a larger cache for the move (given back after) saves about a tenth of the time.
    cache = 0 if postgres else conn.execute("PRAGMA cache_size").fetchone()[0]
    bigger = not postgres and _cache_kib(conn, cache) < _MOVE_CACHE_KIB
    if bigger:
        conn.execute(f"PRAGMA cache_size=-{_MOVE_CACHE_KIB}")
    try:
        return _move_in_transaction(conn, op, src, dst, where, params, progress, chunk,
                                    event_cols if dst is not None else "",
                                    detail_cols if dst is not None else "",
                                    check_parents=paused and dst is not None)
    finally:
        if paused:
            conn.execute("PRAGMA foreign_keys=ON")
        if bigger:
            conn.execute(f"PRAGMA cache_size={int(cache)}")


def _move_in_transaction(conn, op, src, dst, where, params, progress, chunk, event_cols,
                         detail_cols, *, check_parents: bool) -> int:
    src_events, src_details = src
    # Details can move by id range only when their table cannot hold orphans (its foreign key
    # to the events): an orphan in the range would move too, and violate the destination's.
    postgres = is_postgres(conn)
    details_by_range = (references(conn, src_details, src_events) if postgres
                        else _references(conn, src_details, src_events))
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_IDS_NAME} "
            "(n INTEGER PRIMARY KEY, id INTEGER NOT NULL)"
        )
        conn.execute(f"DELETE FROM {_IDS}")
        # n numbers the selected ids 1..total in id order, so a chunk is a cheap range of n
        # (SQLite numbers its rowid alias itself; PostgreSQL has no rowid).
        conn.execute(
            f"INSERT INTO {_IDS} (n, id) SELECT row_number() OVER (ORDER BY id), id "
            f"FROM {_q(src_events)} WHERE {where}" if postgres else
            f"INSERT INTO {_IDS} (id) SELECT id FROM {_q(src_events)} WHERE {where} ORDER BY id",
            params,
        )
        total = conn.execute(f"SELECT count(*) FROM {_IDS}").fetchone()[0]
        if dst is not None and total:
            _refuse_collisions(conn, op, dst[0])
            if check_parents:
                _refuse_missing_parents(conn, op, src_events, dst[0])
        _report(progress, op, 0, total)
        done = 0
        while done < total:
            count = min(chunk, total - done)
            by_list = (f"IN ({_CHUNK_IDS})", (done, done + count))
            id_range = _id_range(conn, src_events, done, count)
            events_in, args = ("BETWEEN ? AND ?", id_range) if id_range else by_list
            if id_range and details_by_range:
                details_in, details_args = events_in, args
            else:
                details_in, details_args = by_list
            if dst is not None:
                conn.execute(
                    f"INSERT INTO {_q(dst[0])} ({event_cols}) SELECT {event_cols} "
                    f"FROM {_q(src_events)} WHERE id {events_in}", args)
                conn.execute(
                    f"INSERT INTO {_q(dst[1])} ({detail_cols}) SELECT {detail_cols} "
                    f"FROM {_q(src_details)} WHERE event_id {details_in}", details_args)
            conn.execute(f"DELETE FROM {_q(src_details)} WHERE event_id {details_in}",
                         details_args)
            conn.execute(f"DELETE FROM {_q(src_events)} WHERE id {events_in}", args)
            done += count
            _report(progress, op, done, total)
        conn.execute(f"DELETE FROM {_IDS}")
        conn.execute("COMMIT")
    except errors.IntegrityError as exc:
        _rollback(conn)
        hint = ""
        if "FOREIGN KEY" in str(exc).upper():
            hint = (" (an event refers to a session, match, tournament or event type that no "
                    "longer exists, or another table still refers to an event)")
        raise Conflict(f"{op} changed nothing: {exc}{hint}") from exc
    except BaseException:
        _rollback(conn)
        raise
    log.info("%s: %d event(s) in %.3f s", op, total, time.perf_counter() - started)
    return total


def _cache_kib(conn: sqlite3.Connection, cache_size: int) -> int:
    """``PRAGMA cache_size`` in KiB (negative values are KiB already, positive ones pages)."""
    if cache_size < 0:
        return -cache_size
    return cache_size * conn.execute("PRAGMA page_size").fetchone()[0] // 1024


def _id_range(conn: sqlite3.Connection, src_events: str, done: int,
              count: int) -> tuple[int, int] | None:
    """The first and last id of the chunk ``n`` in ``done+1 .. done+count`` when the chunk is
    every row of ``src_events`` in that id range, else None."""
    lo = conn.execute(f"SELECT id FROM {_IDS} WHERE n = ?", (done + 1,)).fetchone()[0]
    hi = conn.execute(f"SELECT id FROM {_IDS} WHERE n = ?", (done + count,)).fetchone()[0]
    rows = conn.execute(f"SELECT count(*) FROM {_q(src_events)} WHERE id BETWEEN ? AND ?",
                        (lo, hi)).fetchone()[0]
    # The chunk's ids are distinct and within [lo, hi]: as many rows there means all of them.
    return (lo, hi) if rows == count else None


def _foreign_keys_of(conn: sqlite3.Connection, table: str) -> list[tuple[str, list, list]]:
    """``[(parent_table, child_columns, parent_columns), ...]`` of ``table``'s foreign keys."""
    keys: dict[int, tuple[str, list, list]] = {}
    for fk_id, _seq, parent, child_col, parent_col, *_ in conn.execute(
            f"PRAGMA foreign_key_list({_q(table)})"):
        keys.setdefault(fk_id, (parent, [], []))
        keys[fk_id][1].append(child_col)
        keys[fk_id][2].append(parent_col)
    result = []
    for parent, child_cols, parent_cols in keys.values():
        if None in parent_cols:  # REFERENCES parent: its primary key
            parent_cols = [row[1] for row in sorted(
                (r for r in conn.execute(f"PRAGMA table_info({_q(parent)})") if r[5]),
                key=lambda r: r[5])] or ["rowid"]
        result.append((parent, child_cols, parent_cols))
    return result


def _references(conn: sqlite3.Connection, child: str, parent: str) -> bool:
    return any(p.lower() == parent.lower() for p, _, _ in _foreign_keys_of(conn, child))


def _can_pause_foreign_keys(conn: sqlite3.Connection, src: tuple[str, str]) -> bool:
    """Whether foreign-key enforcement can be switched off for a move without losing a check.

    Deleting an event with foreign keys on runs the ``ON DELETE CASCADE`` of its details as a
    trigger program per row, and inserting into the main tables checks every row's parents:
    two thirds of an archival, a third of a restore. Both are kept by hand (the move deletes
    the details itself; ``_refuse_missing_parents`` checks the parents of a restore), which
    holds when no table but the source details refers to the source events.
    """
    if not conn.execute("PRAGMA foreign_keys").fetchone()[0]:
        return False
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        if table.lower() != src[1].lower() and _references(conn, table, src[0]):
            return False
    return True


def _refuse_missing_parents(conn: sqlite3.Connection, op: str, src_events: str,
                            dst_events: str) -> None:
    """Raise ``Conflict`` when a selected event refers to a row its destination table's foreign
    keys require but that does not exist (each distinct value checked once). The details need
    no check: they move with their events, the only rows they refer to."""
    for parent, child_cols, parent_cols in _foreign_keys_of(conn, dst_events):
        values = ", ".join(f"e.{_q(c)}" for c in child_cols)
        present = " AND ".join(f"e.{_q(c)} IS NOT NULL" for c in child_cols)
        match = " AND ".join(f"p.{_q(pc)} = d.{_q(cc)}"
                             for cc, pc in zip(child_cols, parent_cols, strict=True))
        missing = conn.execute(
            f"SELECT count(*), min({_q(child_cols[0])}) FROM (SELECT DISTINCT {values} "
            f"FROM {_IDS} AS i JOIN {_q(src_events)} AS e ON e.id = i.id WHERE {present}) AS d "
            f"WHERE NOT EXISTS (SELECT 1 FROM {_q(parent)} AS p WHERE {match})"
        ).fetchone()
        if missing[0]:
            raise Conflict(
                f"{op} changed nothing: {missing[0]} value(s) of {', '.join(child_cols)} "
                f"(first {missing[1]!r}) refer to rows of {parent} that no longer exist"
            )


def _refuse_collisions(conn: sqlite3.Connection, op: str, dst_events: str) -> None:
    clash = conn.execute(
        f"SELECT count(*), min(i.id) FROM {_IDS} AS i JOIN {_q(dst_events)} AS d ON d.id = i.id"
    ).fetchone()
    if clash[0]:
        raise Conflict(
            f"{op} changed nothing: {clash[0]} event id(s) (first {clash[1]}) already exist in "
            f"{dst_events}"
        )


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _report(progress: Progress | None, op: str, done: int, total: int) -> None:
    if progress is None:
        return
    try:
        progress(op, done, total)
    except Exception:  # a failing progress display must not undo the archival
        log.exception("%s: progress callback failed", op)


# -- schema helpers -----------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    names = columns_of(conn, table)
    if not names:
        raise ArchiveSchemaError(f"table {table} does not exist (database migrations not applied?)")
    return names


def _matching_columns(conn: sqlite3.Connection, src: str, dst: str) -> str:
    """The quoted column list shared by ``src`` and ``dst``; raises if the sets differ."""
    src_cols, dst_cols = _columns(conn, src), _columns(conn, dst)
    if set(src_cols) != set(dst_cols):
        only_src = sorted(set(src_cols) - set(dst_cols))
        only_dst = sorted(set(dst_cols) - set(src_cols))
        raise ArchiveSchemaError(
            f"columns of {src} and {dst} differ (only in {src}: {only_src}; only in {dst}: "
            f"{only_dst}); a migration must change both tables"
        )
    return ", ".join(_q(name) for name in src_cols)


def _archive_size(conn: sqlite3.Connection, archive_rows: int) -> tuple[int, str]:
    """Bytes of the archive tables and their indexes: exact with dbstat, else an estimate
    (PostgreSQL: ``pg_total_relation_size``, exact)."""
    if is_postgres(conn):
        size = conn.execute("SELECT pg_total_relation_size(?::regclass) "
                            "+ pg_total_relation_size(?::regclass)",
                            (EVENTS_ARCHIVE, DETAILS_ARCHIVE)).fetchone()[0]
        return size, "pg_total_relation_size"
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master "
            "WHERE tbl_name IN (?, ?) AND type IN ('table', 'index')",
            (EVENTS_ARCHIVE, DETAILS_ARCHIVE),
        ).fetchall()
    ]
    # aggregate=TRUE sums one b-tree in one row (SQLite >= 3.31); older builds list every page.
    for query in (
        "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ? AND aggregate = TRUE",
        "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?",
    ):
        try:
            return sum(conn.execute(query, (name,)).fetchone()[0] for name in names), "dbstat"
        except sqlite3.DatabaseError:
            continue  # no dbstat in this build (or no aggregate column, or not authorized)
    # No dbstat: the archive's share of the used pages, by row count of all event tables.
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    used = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute(
        "PRAGMA freelist_count"
    ).fetchone()[0]
    main_rows = sum(
        conn.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()[0]
        for table in (EVENTS, DETAILS)
    )
    all_rows = main_rows + archive_rows
    share = archive_rows / all_rows if all_rows else 0.0
    return int(used * page_size * share), "estimate"


def _main_file(conn: sqlite3.Connection) -> str | None:
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or None
    return None


def _file_size(path: str | None) -> int | None:
    try:
        return os.path.getsize(path) if path else None
    except OSError:
        return None


# -- automatic archival -------------------------------------------------------------------------


BUSY_RETRY_S = 60.0
"""When the job slot is busy (an archive command runs), the automatic archival tries again
after this long instead of a whole interval."""


class AutoArchiver:
    """Archives events older than ``days_old`` days every ``interval`` s (hourly by default).

    ``run(fn)`` executes ``fn(conn)`` on the writer thread and returns its result (the
    database service's ``writer.run``). The thread wakes every ``interval`` real seconds or on
    :meth:`wake`/:meth:`trigger`; it archives when ``clock()`` reached the next due time
    (``clock`` is injectable for tests) or when triggered. Errors are logged and kept in
    ``last_error``; the thread keeps going.
    """

    def __init__(
        self,
        run: Callable[[Callable[[sqlite3.Connection], int]], int],
        days_old: int,
        *,
        interval: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        progress: Progress | None = None,
        on_result: Callable[[int], None] | None = None,
    ):
        self.days_old = validate_days_old(days_old, field="database.auto_archive_days")
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval = float(interval)
        self._run = run
        self._clock = clock
        self._progress = progress
        self._on_result = on_result
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._forced = False
        self._lock = threading.Lock()
        self._next_due = clock() + self.interval
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.checks = 0  # times the thread looked at the clock (tests wait on it)
        self.last_moved: int | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        """Start the ``db-auto-archive`` thread (first run one ``interval`` from now)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="db-auto-archive", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (an archival already running on the writer finishes first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def trigger(self) -> None:
        """Archive now, whatever the clock says."""
        with self._lock:
            self._forced = True
        self._wake.set()

    def wake(self) -> None:
        """Re-check the clock now (tests move an injected clock, then wake the thread)."""
        self._wake.set()

    def run_once(self) -> int:
        """Archive now on the calling thread's behalf (through ``run``); returns events moved."""
        days = self.days_old
        moved = self._run(lambda conn: archive_old_events(conn, days, progress=self._progress))
        self.runs += 1
        self.last_moved = moved
        self.last_error = None
        return moved

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = max(0.0, min(self.interval, self._next_due - self._clock()))
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                forced, self._forced = self._forced, False
            due = forced or self._clock() >= self._next_due
            self.checks += 1
            if not due:
                continue
            self._next_due = self._clock() + self.interval
            try:
                moved = self.run_once()
            except Conflict as exc:  # another long operation holds the job slot: soon again
                self.last_error = f"skipped: {exc}"
                log.info("automatic archival skipped, tried again in %.0f s: %s",
                         min(self.interval, BUSY_RETRY_S), exc)
                self._next_due = self._clock() + min(self.interval, BUSY_RETRY_S)
                continue
            except Exception as exc:  # keep archiving next hour
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("automatic archival failed")
                continue
            if self._on_result is not None:
                try:
                    self._on_result(moved)
                except Exception:
                    log.exception("automatic archival result callback failed")
