"""PostgreSQL through psycopg 3, behind the small part of the ``sqlite3`` interface the plugin
uses, so every module runs its plain SQL on either backend.

- ``Connection``/``Cursor``: ``execute(sql, params)``, ``executemany``, ``cursor()``,
  ``fetchone``/``fetchall``/``fetchmany``/iteration, ``rowcount``, ``description``,
  ``in_transaction``, ``getlimit``. ``?`` placeholders become ``%s`` (and a literal ``%``
  ``%%``) once per distinct statement (``translate``, cached). A few SQLite-only statements
  are no-ops here (``_NO_OPS``: pragmas whose job PostgreSQL does by itself - foreign keys stay
  on, temporary data is the server's business); ``BEGIN IMMEDIATE`` is ``BEGIN``.
- rows are ``Row``: a tuple readable by index and by column name, like ``sqlite3.Row``;
  ``numeric`` (what ``SUM``/``AVG`` of integers give) reads as int or float, as in SQLite.
- ``connect_writer``: the one writing connection (autocommit: transactions are explicit).
- ``ReadPool``: ``psycopg_pool.ConnectionPool`` itself, behind ``pool.ConnectionPool``'s
  interface (``connection()``, ``get_stats()`` with the same keys, ``cleanup()``, ``close()``);
  readers are read-only sessions, a snapshot is ``REPEATABLE READ READ ONLY``.
- ``unreachable``: whether an error says the server cannot be reached (an outage to wait out).
- ``allocate_event_ids``: a contiguous block of event ids from the table's sequence, safe with
  several writers on one server.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import psycopg
import psycopg_pool
from psycopg.adapt import Loader

from restrike.host.timeutil import now_iso

from .backend import POSTGRESQL, UNAVAILABLE, errors
from .pool import _percentile, occupancy

log = logging.getLogger(__name__)

errors.add(psycopg)  # every ``except errors.X`` of the plugin catches psycopg's X from now on

# PostgreSQL binds at most 65535 parameters per statement.
_MAX_PARAMS = 65535
_CACHE_MAX = 4096
_NO_OPS = frozenset((
    "PRAGMA foreign_keys=ON", "PRAGMA foreign_keys=OFF", "PRAGMA temp_store=MEMORY",
    "PRAGMA optimize", "PRAGMA query_only=ON",
))
_REWRITES = {"BEGIN IMMEDIATE": "BEGIN"}
READ_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
"""How a reader starts a snapshot (``pool.read_snapshot``)."""

_translated: dict[str, str | None] = {}


def translate(sql: str) -> str | None:
    """``sql`` with ``?`` as ``%s`` and ``%`` as ``%%`` outside quotes (None: a no-op here)."""
    hit = _translated.get(sql, "")
    if hit != "":
        return hit
    text: str | None
    if sql in _NO_OPS:
        text = None
    else:
        sql_ = _REWRITES.get(sql, sql)
        out = []
        quote = ""
        for ch in sql_:
            if quote:
                if ch == quote:
                    quote = ""
                out.append("%%" if ch == "%" else ch)
            elif ch in "'\"":
                quote = ch
                out.append(ch)
            elif ch == "?":
                out.append("%s")
            elif ch == "%":
                out.append("%%")
            else:
                out.append(ch)
        text = "".join(out)
    if len(_translated) >= _CACHE_MAX:
        _translated.clear()
    _translated[sql] = text
    return text


# -- rows ---------------------------------------------------------------------------------------


class Row(tuple):
    """A result row: ``row[0]`` and ``row["name"]`` (names as the query spells them, any
    case), ``keys()``, ``tuple(row)``, ``dict(row)`` - like ``sqlite3.Row``."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}
    _names: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, key):
        if type(key) is str:
            index = self._index.get(key)
            if index is None:
                index = self._index.get(key.lower())
                if index is None:
                    raise IndexError(f"no column named {key!r}")
            return tuple.__getitem__(self, index)
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


_row_classes: dict[tuple[str, ...], type[Row]] = {}


def _row_class(names: tuple[str, ...]) -> type[Row]:
    cls = _row_classes.get(names)
    if cls is None:
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            index.setdefault(name, i)
            index.setdefault(name.lower(), i)
        cls = type("Row", (Row,), {"__slots__": (), "_index": index, "_names": names})
        if len(_row_classes) >= _CACHE_MAX:
            _row_classes.clear()
        _row_classes[names] = cls
    return cls


def _row_factory(cursor):
    description = cursor.description
    if description is None:
        return tuple
    return _row_class(tuple(column.name for column in description))


class _NumberLoader(Loader):
    """``numeric`` as SQLite gives it: an int when whole (SUM of integers), else a float."""

    def load(self, data) -> int | float:
        text = bytes(data).decode("ascii")
        if "." in text or "e" in text or "N" in text or "I" in text:
            return float(text)
        return int(text)


def _configure(raw: psycopg.Connection) -> None:
    raw.adapters.register_loader("numeric", _NumberLoader)
    raw.row_factory = _row_factory


# -- the sqlite3-like connection ------------------------------------------------------------------


class Cursor:
    """A psycopg cursor speaking the sqlite3 subset (see the module docstring)."""

    __slots__ = ("_raw", "connection", "row_factory")

    def __init__(self, connection: Connection, raw: psycopg.Cursor) -> None:
        self.connection = connection
        self._raw = raw
        self.row_factory = None  # set by sqlite3 code for plain tuples: a Row is a tuple

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        text = translate(sql)
        if text is not None:
            self._raw.execute(text, tuple(params) if params is not None else ())
        return self

    def executemany(self, sql: str, seq) -> Cursor:
        text = translate(sql)
        if text is not None:
            self._raw.executemany(text, seq)
        return self

    def copy(self, statement: str):
        """``COPY ... FROM STDIN`` (psycopg's ``Cursor.copy``)."""
        return self._raw.copy(statement)

    def fetchone(self):
        return self._raw.fetchone() if self._raw.description is not None else None

    def fetchall(self) -> list:
        return self._raw.fetchall() if self._raw.description is not None else []

    def fetchmany(self, size: int = 1) -> list:
        return self._raw.fetchmany(size) if self._raw.description is not None else []

    def __iter__(self) -> Iterator:
        if self._raw.description is None:
            return iter(())
        return iter(self._raw)

    @property
    def rowcount(self) -> int:
        return self._raw.rowcount

    @property
    def description(self):
        return self._raw.description

    def close(self) -> None:
        self._raw.close()


class Connection:
    """A psycopg connection in autocommit mode speaking the sqlite3 subset."""

    backend = POSTGRESQL
    begin_snapshot = READ_SNAPSHOT

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def cursor(self) -> Cursor:
        return Cursor(self, self.raw.cursor())

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        return self.cursor().execute(sql, params)

    def executemany(self, sql: str, seq) -> Cursor:
        return self.cursor().executemany(sql, seq)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def getlimit(self, category: int) -> int:
        """Only the number of parameters of a statement is asked for (``rows.Many``)."""
        return _MAX_PARAMS

    def commit(self) -> None:
        if self.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return self.raw.closed


# SQLSTATEs of a server that cannot serve us now but will again: the connection class (08), and
# an administrator's or crash shutdown and a server still starting (57P01-57P03).
_UNREACHABLE_STATES = frozenset(("57P01", "57P02", "57P03"))
# What a server starting or stopping answers a connect with (57P03 and friends): its messages
# in English, the server's default (lc_messages).
_SERVER_NOT_READY = ("the database system is", "terminating connection due to")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the PostgreSQL server cannot be reached (cable pulled, server down
    or restarting) - the case store-and-forward waits out - rather than that it answered and
    refused (wrong password, no such database, a bad statement), which waiting does not mend.

    On an open connection the server's SQLSTATE tells (class 08, 57P01-57P03; None: libpq's
    own, the connection broke). A failed connect never has one (libpq keeps no result): there
    the server's own refusal is its ``FATAL:`` line (no such role or database, wrong password),
    except the lines of a server starting up or shutting down ("the database system is ...",
    57P03), which waiting mends; anything else (refused, timed out, no route, unknown host)
    never reached a server."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    if state is not None:
        return state.startswith("08") or state in _UNREACHABLE_STATES
    text = str(exc)
    return "FATAL:" not in text or any(line in text for line in _SERVER_NOT_READY)


def connect(conninfo: str, *, read_only: bool = False, connect_timeout: float = 10.0) \
        -> Connection:
    """One connection in autocommit mode (transactions are explicit), rows as ``Row``."""
    options = "-c default_transaction_read_only=on" if read_only else None
    raw = psycopg.connect(conninfo, autocommit=True, connect_timeout=max(1, int(connect_timeout)),
                          options=options) if options else psycopg.connect(
        conninfo, autocommit=True, connect_timeout=max(1, int(connect_timeout)))
    _configure(raw)
    return Connection(raw)


def connect_writer(conninfo: str) -> Connection:
    """The writing connection (``maintenance.connect_writer``'s counterpart)."""
    return connect(conninfo)


# -- event ids ----------------------------------------------------------------------------------

# pg_advisory_lock key of the block allocation ("rstk" "evid" as two int32)
_ID_LOCK = 0x7273746B65766964 & 0x7FFFFFFFFFFFFFFF
_sequences: dict[int, str] = {}


def allocate_event_ids(cur, count: int) -> int:
    """The first of ``count`` contiguous new event ids (``pss_events_v2``'s identity sequence).

    ``nextval`` alone hands out single ids; a block is ``nextval`` then ``setval`` to its end,
    under a session advisory lock so two writers never interleave between the two (sequences
    are not transactional: the lock is released at once, not at commit, and an id a rolled
    back batch took is simply never used)."""
    conn = cur.connection
    seq = _sequences.get(id(conn))
    if seq is None:
        seq = _sequences[id(conn)] = conn.execute(
            "SELECT pg_get_serial_sequence('pss_events_v2', 'id')").fetchone()[0]
    count = max(count, 1)
    raw = conn.raw
    raw.execute("SELECT pg_advisory_lock(%s)", (_ID_LOCK,))
    try:
        row = raw.execute("SELECT setval(%s::regclass, nextval(%s::regclass) + %s - 1)",
                          (seq, seq, count)).fetchone()
    finally:
        raw.execute("SELECT pg_advisory_unlock(%s)", (_ID_LOCK,))
    return int(row[0]) - count + 1


MIGRATION_LOCK = 0x7273746B6D696772 & 0x7FFFFFFFFFFFFFFF
"""pg_advisory_xact_lock key that serialises the migrations of several instances."""


# -- the read pool ------------------------------------------------------------------------------

_WAIT_SAMPLES = 2048


class ReadPool:
    """``psycopg_pool.ConnectionPool`` behind ``pool.ConnectionPool``'s interface."""

    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 10,
                 timeout: float = 5.0, max_idle: float = 300.0, max_lifetime: float = 3600.0,
                 wait: bool = True):
        from .pool import PoolClosed, PoolTimeout  # the same errors as the SQLite pool's

        self._timeout_error, self._closed_error = PoolTimeout, PoolClosed
        self.min_size, self.max_size, self.timeout = min_size, max_size, float(timeout)
        self._lock = threading.Lock()
        self._waits_ms: collections.deque[float] = collections.deque(maxlen=_WAIT_SAMPLES)
        self._last_cleanup: str | None = None
        self._lent = 0  # connections checked out now: all of them = exhausted, else unreachable
        self._pool = psycopg_pool.ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, timeout=timeout,
            max_idle=max(max_idle, 1.0), max_lifetime=max(max_lifetime, 1.0),
            kwargs={"autocommit": True, "options": "-c default_transaction_read_only=on"},
            configure=_configure, check=psycopg_pool.ConnectionPool.check_connection,
            name="restrike-readers", open=False)
        # wait=False: the server cannot be reached now (store-and-forward); the pool connects
        # in the background when it answers
        self._pool.open(wait=wait and min_size > 0, timeout=max(timeout, 10.0))

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Connection]:
        """``with pool.connection() as conn:`` - a reader, returned (rolled back) on exit."""
        started = time.monotonic()
        try:
            cm = self._pool.connection(timeout=self.timeout if timeout is None else timeout)
            raw = cm.__enter__()
        except psycopg_pool.PoolTimeout:
            with self._lock:
                lent = self._lent
            if lent < self.max_size:  # not all lent out: the pool could not connect
                raise self._timeout_error(UNAVAILABLE) from None
            raise self._timeout_error(
                f"database pool exhausted: all {self.max_size} connections in use for "
                f"{self.timeout if timeout is None else timeout:.1f} s") from None
        except psycopg_pool.PoolClosed:
            raise self._closed_error("database pool closed") from None
        with self._lock:
            self._waits_ms.append((time.monotonic() - started) * 1000.0)
            self._lent += 1
        conn = Connection(raw)
        try:
            yield conn
        except BaseException as exc:
            if not self._give_back(cm, exc):
                if unreachable(exc):  # the server went away during the read
                    raise self._timeout_error(UNAVAILABLE) from exc
                raise
        else:
            self._give_back(cm, None)

    def _give_back(self, cm, exc: BaseException | None) -> bool:
        try:
            return bool(cm.__exit__(type(exc) if exc else None, exc,
                                    exc.__traceback__ if exc else None))
        finally:
            with self._lock:
                self._lent -= 1

    def get_stats(self) -> dict:
        """The SQLite pool's keys (``pool.ConnectionPool.get_stats``), from psycopg_pool's."""
        raw = self._pool.get_stats()
        size, idle = raw.get("pool_size", 0), raw.get("pool_available", 0)
        in_use = max(size - idle, 0)
        with self._lock:
            waits = sorted(self._waits_ms)
        return {
            **occupancy(in_use, idle, self.min_size, self.max_size),
            "size": size,
            "created": raw.get("connections_num", 0),
            "recycled": 0,  # psycopg_pool replaces old connections without counting them
            "health_failures": raw.get("connections_lost", 0) + raw.get("returns_bad", 0),
            "wait_count": raw.get("requests_queued", 0),
            "requests_waiting": raw.get("requests_waiting", 0),
            "timeouts": raw.get("requests_errors", 0),
            "requests": raw.get("requests_num", 0),
            "last_cleanup": self._last_cleanup,
            "wait_ms_p99": round(_percentile(waits, 0.99), 3) if waits else 0.0,
        }

    def cleanup(self) -> None:
        """psycopg_pool's own ``check()``: every idle connection is tested and a broken one
        replaced (idle ones beyond ``min_size`` are closed by the pool after ``max_idle``)."""
        self._pool.check()
        self._last_cleanup = now_iso()

    def wake_cleanup(self) -> None:
        threading.Thread(target=self.cleanup, name="pool-cleanup", daemon=True).start()

    def close(self, timeout: float = 5.0) -> None:
        self._pool.close(timeout)

    def __enter__(self) -> ReadPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- a batch's rows -------------------------------------------------------------------------------

_RECOGNITION = ("recognized", "invalid", "unknown")  # rows.EventRow.recognition_status
_DETAIL_TYPE_NAMES = ("str", "int", "bool", "float", "json")  # rows._DETAIL_TYPES' numbers
_COPY_EVENTS = (
    "COPY pss_events_v2 (id, session_id, match_id, round_id, timestamp, raw_data, parsed_data, "
    "event_sequence, datagram_index, processing_time_ms, created_at, tournament_id, "
    "tournament_day_id, event_type_id, is_valid, error_message, recognition_status, "
    "protocol_version, parser_confidence, validation_errors) FROM STDIN"
)
_COPY_DETAILS = ("COPY pss_event_details (event_id, created_at, detail_key, detail_value, "
                 "detail_type) FROM STDIN")


def copy_rows(cur, events: list, details: list, now: str, protocol_version: str) -> None:
    """Insert a batch's event rows (``rows.EventRow``: 0 or -1 standing for NULL, see
    ``rows.Many``) and its flat detail values with ``COPY``: measured the fastest way into
    PostgreSQL (see ``docs/architecture.md``)."""
    if events:
        with cur.copy(_COPY_EVENTS) as copy:
            write = copy.write_row
            # Unpacked by name in EventRow's order (a changed EventRow fails here, loudly).
            for (id_, session_id, match_id, round_id, timestamp, raw_data, parsed_data,
                 sequence, index, elapsed_ms, tournament_id, day_id, type_id, is_valid,
                 error, recognition, confidence, errors) in events:
                write((id_, session_id, match_id or None, round_id or None, timestamp,
                       raw_data, parsed_data, sequence, index,
                       None if elapsed_ms == -1 else elapsed_ms, now, tournament_id or None,
                       day_id or None, type_id, is_valid, error or None,
                       _RECOGNITION[recognition], protocol_version, confidence,
                       errors or None))
    if details:
        with cur.copy(_COPY_DETAILS) as copy:
            write = copy.write_row
            for i in range(0, len(details), 4):
                write((details[i], now, details[i + 1], details[i + 2],
                       _DETAIL_TYPE_NAMES[details[i + 3]]))


_update_one: dict[str, str] = {}


def update_by_id(cur, template: str, rows: list[tuple]) -> None:
    """Run ``tracking``'s many-row UPDATE template (``WITH v(id, cols) AS (VALUES {rows})``)
    as one UPDATE per row, pipelined: a VALUES list of bound parameters has no column types
    in PostgreSQL (a column of NULLs would be text)."""
    sql = _update_one.get(template)
    if sql is None:
        head, _, _ = template.partition(") AS (VALUES")
        columns = head.split("(", 1)[1].split(", ")[1:]
        table = template.split("UPDATE ", 1)[1].split(" ", 1)[0]
        sql = _update_one[template] = (
            f"UPDATE {table} SET " + ", ".join(f"{c} = ?" for c in columns) + " WHERE id = ?")
    cur.executemany(sql, [(*row[1:], row[0]) for row in rows])
