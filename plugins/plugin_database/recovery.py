"""What start-up does about a database file the last run left damaged or unfinished.

- A file SQLite says is not a database, or is corrupt (``SQLITE_NOTADB``, ``SQLITE_CORRUPT``),
  is moved aside - with its ``-wal`` and ``-shm`` - to ``<name>.corrupt-<UTC time>`` (a counter
  is added when that name is taken; nothing is ever overwritten), so a fresh file can start and
  the feed is stored again. The damaged file is kept exactly as it was, for a rescue.
- Any other failure to open (a directory in the way, a directory that is not writable, a locked
  or full disk) is a ``DatabaseOpenError`` naming the path and the reason: nothing is touched.
- UDP sessions a crash cut short (``status = 'running'``) are closed as ``interrupted``, stopped
  at their last stored event.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

from restrike.host.timeutil import now_iso

from .transactions import transaction

# Primary result codes (the low byte of the extended code) that mean the bytes are damaged;
# everything else (CANTOPEN, BUSY, FULL, IOERR, READONLY...) is about the surroundings.
_DAMAGED = frozenset((sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT))
_COMPANIONS = ("", "-wal", "-shm")


class DatabaseOpenError(RuntimeError):
    """The database file cannot be opened; the message names the path and the reason."""


def is_damaged(exc: BaseException) -> bool:
    """True for an SQLite error that says the file's content is not a (sound) database."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None \
        and (code & 0xFF) in _DAMAGED


def damage_of(path: Path) -> sqlite3.DatabaseError | None:
    """The error SQLite gives for a damaged ``path`` (its header or schema), else None.

    Reads only: a ``mode=ro`` connection never checkpoints the WAL into the file nor deletes
    the WAL when it closes (a writing one would, even on a damaged file), so the damaged
    files are still as they were when they are moved aside. A missing file or one SQLite
    cannot open for another reason is not "damaged": the writing connection reports that.
    """
    try:
        if not path.is_file():
            return None
        uri = path.absolute().as_uri() + "?mode=ro"
    except (OSError, ValueError):
        return None
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # header and schema
    except sqlite3.DatabaseError as exc:
        return exc if is_damaged(exc) else None
    finally:
        conn.close()
    return None


def open_error(path: Path, exc: BaseException) -> DatabaseOpenError:
    """A ``DatabaseOpenError`` naming ``path`` and the likeliest reason for ``exc``."""
    return DatabaseOpenError(f"cannot open the database file {path}: {_reason(path, exc)}")


def _reason(path: Path, exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    try:
        if path.is_dir():
            return f"the path is a directory ({detail})"
        if not path.parent.is_dir():
            return f"its directory does not exist ({detail})"
        if not os.access(path.parent, os.W_OK):
            return f"its directory is not writable ({detail})"
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return f"the file is not readable and writable ({detail})"
    except (OSError, ValueError):
        pass
    return detail


def move_aside(path: Path, reason: str, now: dt.datetime | None = None) -> dict:
    """Rename the damaged ``path`` (and its ``-wal``/``-shm`` when present) to
    ``<name>.corrupt-<UTC time>[-n]``; returns ``{moved_from, moved_to, reason, at}``.

    The connection to it must be closed. Raises ``DatabaseOpenError`` if the rename fails.
    """
    moment = now or dt.datetime.now(dt.UTC)
    stamp = moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")  # no ':' (Windows names)
    target = _free_name(path.with_name(f"{path.name}.corrupt-{stamp}"))
    try:
        for suffix in _COMPANIONS:
            source = Path(f"{path}{suffix}")
            if source.exists():
                # the WAL keeps its -wal beside the moved file, so SQLite can still read the pair
                os.rename(source, f"{target}{suffix}")
    except OSError as exc:
        raise DatabaseOpenError(
            f"the database file {path} is damaged ({reason}) and could not be moved aside to "
            f"{target}: {exc.strerror or exc}") from None
    return {"moved_from": str(path), "moved_to": str(target), "reason": reason, "at": now_iso()}


def _free_name(candidate: Path) -> Path:
    """``candidate``, or ``candidate-1``, ``-2``... : the first name none of whose companion
    files exists (os.rename would silently replace one on POSIX)."""
    n = 0
    name = candidate
    while any(Path(f"{name}{suffix}").exists() for suffix in _COMPANIONS):
        n += 1
        name = candidate.with_name(f"{candidate.name}-{n}")
    return name


def close_interrupted_sessions(conn, court: str | None = None) -> int:
    """Mark the sessions a crash left ``running`` as ``interrupted``, in one transaction;
    returns how many.

    ``stopped_at`` is the reception time of the session's last stored event (then its
    ``last_event_at``, then its ``started_at``). Call it before the writer starts: at that point
    no session of this run exists, so every ``running`` row is from a run that did not stop.
    ``court``: only that court's sessions - on a server that several instances (courts) share,
    the other courts' running sessions are live.
    """
    where, params = ("status = 'running'", (now_iso(),)) if court is None else (
        "status = 'running' AND court = ?", (now_iso(), court))
    with transaction(conn):
        return conn.execute(
            "UPDATE udp_server_sessions SET status = 'interrupted', updated_at = ?, "
            "stopped_at = COALESCE("
            "  (SELECT e.timestamp FROM pss_events_v2 e "
            "   WHERE e.session_id = udp_server_sessions.session_id ORDER BY e.id DESC LIMIT 1),"
            "  last_event_at, started_at) "
            f"WHERE {where}",
            params,
        ).rowcount
