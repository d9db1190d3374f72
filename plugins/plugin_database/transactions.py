"""``with transaction(conn):`` - the one way a write on the writing connection is framed (and
``close_quietly``, for a connection that may be broken).

Its own module so that the writer engine, the storage of a batch, the migrations and every
``Writer.run`` function share it without importing one another.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from .backend import errors

log = logging.getLogger(__name__)


@contextlib.contextmanager
def transaction(conn) -> Iterator:
    """``with transaction(conn):`` - ``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on error.

    For the writing connection (autocommit mode): functions given to ``Writer.run``, the
    migrations, the storage of a batch. On PostgreSQL it is a plain ``BEGIN`` (``pg.py``).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        rollback(conn)
        raise
    conn.execute("COMMIT")


def rollback(conn) -> None:
    """``ROLLBACK``, quietly when no transaction is open (a failed COMMIT already ended it)."""
    try:
        conn.execute("ROLLBACK")
    except errors.Error:
        log.debug("rollback failed (no transaction open)", exc_info=True)


def close_quietly(conn) -> None:
    """Close ``conn``, which may be broken already."""
    try:
        conn.close()
    except Exception:  # a broken connection may fail to close: it is gone either way
        log.debug("closing a database connection failed", exc_info=True)
