"""Bring a database file to the current schema: run the missing migrations, seed event types.

Each migration runs in its own transaction together with its ``schema_version`` row, so a
failure leaves the file at the previous version (SQLite DDL is transactional). Start-up calls
``apply_migrations`` on the writer's connection before the writer thread, the reader pool or any
command exists. A file whose version is newer than this code knows is refused rather than
written to by an older release.
"""

from __future__ import annotations

import logging

from restrike.host.timeutil import now_iso

from .backend import is_postgres, pg_ddl, table_exists
from .schema import EVENT_TYPES, MIGRATIONS, PG_SPELLINGS, Migration
from .transactions import transaction

log = logging.getLogger(__name__)

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


class SchemaTooNew(RuntimeError):
    """The file was written by a newer restrike (its schema version is unknown here)."""


def current_version(conn) -> int:
    """The highest applied migration (0 for a new file)."""
    if not table_exists(conn, "schema_version"):
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]


def _lock(conn) -> None:
    """Serialise the migrations of several instances starting at once against one PostgreSQL
    server (until the transaction ends); on SQLite ``BEGIN IMMEDIATE`` already does."""
    if is_postgres(conn):
        from .pg import MIGRATION_LOCK

        conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))


def apply_migrations(conn, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply every migration newer than the database's version; return the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``): transactions are explicit.
    Each step re-reads the version under the lock, so an instance that waited for another one
    migrating skips what that one applied.
    """
    with transaction(conn):
        _lock(conn)
        conn.execute(_VERSION_TABLE)
    version = current_version(conn)
    latest = max((m.version for m in migrations), default=0)
    if version > latest:
        raise SchemaTooNew(
            f"database schema version {version} is newer than this release knows ({latest})"
        )
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= version:
            continue
        # Some steps rebuild a table (version 2: the details): minutes on a file of millions.
        log.info("database migration %d (%s) starting", migration.version, migration.description)
        with transaction(conn):
            _lock(conn)
            applied = current_version(conn) >= migration.version  # by another instance
            if not applied:
                _run(conn, migration)
        if not applied:
            log.info("database migrated to version %d: %s", migration.version,
                     migration.description)
        version = migration.version
    with transaction(conn):
        _lock(conn)
        seed_event_types(conn)
    return version


def seed_event_types(conn) -> None:
    """Insert the wire codes of ``schema.EVENT_TYPES`` that the table does not have yet."""
    conn.executemany(
        "INSERT INTO pss_event_types (code, name, category, description, is_known) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (code) DO NOTHING",
        [(code, name, category, text, int(category != "unknown"))
         for code, name, category, text in EVENT_TYPES],
    )


def _run(conn, migration: Migration) -> None:
    postgres = is_postgres(conn)
    for statement in migration.statements:
        if postgres:
            statement = pg_ddl(PG_SPELLINGS.get(statement, statement))
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.description, now_iso()),
    )

