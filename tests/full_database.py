"""A full disk for the app's SQLite file without mounting anything: ``PRAGMA max_page_count``
on the writer's own connection makes SQLite fail every growing transaction with ``SQLITE_FULL``,
exactly as a full disk does."""

from __future__ import annotations

UNLIMITED_PAGES = 1_073_741_823
"""SQLite's largest ``max_page_count``: space returns."""


def set_max_pages(app, pages: int | None) -> int:
    """Cap the database file at ``pages`` (None: the current size) on the writer connection."""

    def apply(conn):
        limit = conn.execute("PRAGMA page_count").fetchone()[0] if pages is None else pages
        return conn.execute(f"PRAGMA max_page_count = {int(limit)}").fetchone()[0]

    return app.extensions["database"].writer.run(apply, timeout=10)
