"""Which storage backend runs: SQLite (embedded, the default) or PostgreSQL (a central server).

The one place that knows both: the ``--database-url`` / ``database.url`` syntax
(``DatabaseUrl``), the DB-API exception classes of the drivers in use (``errors``, for
``except``), the few statements spelled differently (``SPELLINGS``) and the DDL translation of
the migrations (``pg_ddl``). The PostgreSQL connection itself is ``pg.py``, the only module that
loads the driver (psycopg and libpq, ~19 MiB): an app on an SQLite file never imports it;
everything else in the plugin writes plain SQL with ``?`` placeholders and runs on either.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class DriverErrors:
    """The DB-API exception classes of the drivers in use, as tuples for ``except``: SQLite's,
    plus psycopg's once ``pg.py`` is imported (it ``add``s them): every connection the plugin
    runs statements on comes from ``pg.py``, so no psycopg exception reaches a handler before
    (``listen.py``'s own connection keeps its errors to itself).

    Name them through the one shared ``errors`` object, ``except errors.OperationalError:``:
    the attribute is read when the handler runs. ``from .backend import OperationalError``
    would bind the tuple of the moment, SQLite's alone."""

    def __init__(self) -> None:
        self.Error: tuple[type[Exception], ...] = (sqlite3.Error,)
        self.DatabaseError: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
        self.OperationalError: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
        self.IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def add(self, driver: ModuleType) -> None:
        """Catch ``driver``'s classes too (a DB-API module: ``psycopg``); once per driver."""
        if driver.Error in self.Error:
            return
        self.Error += (driver.Error,)
        self.DatabaseError += (driver.DatabaseError,)
        self.OperationalError += (driver.OperationalError,)
        self.IntegrityError += (driver.IntegrityError,)


errors = DriverErrors()
"""``except errors.Error:`` catches an error of either driver (``DriverErrors``)."""

UNAVAILABLE = "central database unavailable"
"""The message of ``Unavailable`` when the central database cannot be reached (the writer's
``run`` calls and the reader pool say the same)."""

_SCHEMES = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "postgres": POSTGRESQL}


class BadDatabaseUrl(ValueError):
    """The URL is not one restrike can use; ``str()`` is the reason."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed ``--database-url``: ``backend`` (``sqlite``/``postgresql``), ``path`` (SQLite's
    file), ``conninfo`` (what psycopg connects with) and ``display`` (the password masked: the
    only form that is ever logged or shown)."""

    backend: str
    path: Path | None = None
    conninfo: str = ""
    display: str = ""

    @classmethod
    def parse(cls, text: str) -> DatabaseUrl:
        """Parse ``sqlite:///path/file.db`` or ``postgresql://user:pw@host:port/dbname``;
        ``BadDatabaseUrl`` naming the reason otherwise (never echoing a password)."""
        if not isinstance(text, str) or not text.strip():
            raise BadDatabaseUrl("empty; expected sqlite:///path/file.db or "
                                 "postgresql://user:password@host:port/dbname")
        if len(text) > 4096:
            raise BadDatabaseUrl("longer than 4096 characters")
        scheme, sep, _ = text.partition("://")
        backend = _SCHEMES.get(scheme.lower()) if sep else None
        if backend is None:
            raise BadDatabaseUrl("the scheme must be sqlite:// or postgresql://")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise BadDatabaseUrl(f"not a valid URL ({_no_secret(str(exc), text)})") from None
        if backend == SQLITE:
            if parts.netloc or not parts.path or parts.path == "/":
                raise BadDatabaseUrl("an SQLite URL is sqlite:/// followed by the file's path")
            path = Path(unquote(parts.path))
            return cls(SQLITE, path=path, display=f"sqlite://{path}")
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname or "/" in dbname:
            raise BadDatabaseUrl("a PostgreSQL URL names its database: "
                                 "postgresql://user:password@host:port/dbname")
        from psycopg import ProgrammingError  # a PostgreSQL URL: its driver is needed anyway
        from psycopg.conninfo import conninfo_to_dict
        try:
            conninfo_to_dict(text)
        except ProgrammingError as exc:
            raise BadDatabaseUrl(f"not a valid PostgreSQL URL ({_no_secret(str(exc), text)})") \
                from None
        user = f"{unquote(parts.username)}{':***' if parts.password else ''}@" \
            if parts.username else ""
        host = parts.hostname or ""
        display = f"postgresql://{user}{host}{f':{port}' if port else ''}/{dbname}"
        return cls(POSTGRESQL, conninfo=text, display=display)

    @classmethod
    def sqlite_file(cls, path: Path) -> DatabaseUrl:
        """The default: an SQLite file."""
        return cls(SQLITE, path=Path(path), display=f"sqlite://{path}")


def _no_secret(message: str, url: str) -> str:
    password = urlsplit(url).password if "@" in url else None
    return message.replace(password, "***") if password else message


def backend_of(conn) -> str:
    """``postgresql`` for a ``pg.Connection`` (or its cursor), else ``sqlite``."""
    conn = getattr(conn, "connection", conn)
    return getattr(conn, "backend", SQLITE)


def is_postgres(conn) -> bool:
    """True when ``conn`` (a connection or a cursor) talks to PostgreSQL."""
    return backend_of(conn) == POSTGRESQL


# -- the DDL of the migrations on PostgreSQL ------------------------------------------------------

_DDL = (
    # ids assigned by the database (a row inserted without one); explicit ids are allowed too
    (re.compile(r"\bid INTEGER PRIMARY KEY( AUTOINCREMENT)?"),
     "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\)\s*WITHOUT ROWID\s*$"), ")"),
)


def pg_ddl(statement: str) -> str:
    """A migration statement as PostgreSQL spells it: identity ids, BIGINT for every integer
    (ids, counters and byte counts alike), DOUBLE PRECISION for REAL, no ``WITHOUT ROWID``."""
    if not statement.lstrip().upper().startswith("CREATE"):
        return statement
    for pattern, spelling in _DDL:
        statement = pattern.sub(spelling, statement)
    return statement


# Statements whose spelling differs: {sqlite statement: postgresql statement}.
SPELLINGS: dict[str, str] = {
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?":
        "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?",
}


def spelled(conn, sql: str) -> str:
    """``sql`` as ``conn``'s backend spells it (``SPELLINGS``)."""
    return SPELLINGS.get(sql, sql) if is_postgres(conn) else sql


def table_exists(conn, name: str) -> bool:
    """Whether table ``name`` exists (either backend)."""
    return conn.execute(spelled(
        conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"),
        (name,)).fetchone() is not None


def columns_of(conn, table: str) -> list[str]:
    """The column names of ``table`` in order ([] when it does not exist)."""
    if is_postgres(conn):
        return [row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]
    return [row[1] for row in conn.execute(
        "SELECT * FROM pragma_table_info(?)", (table,)).fetchall()]


def references(conn, child: str, parent: str) -> bool:
    """Whether a foreign key of table ``child`` refers to table ``parent`` (PostgreSQL)."""
    return conn.execute(
        "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conrelid = to_regclass(?) "
        "AND confrelid = to_regclass(?)", (child, parent)).fetchone() is not None
