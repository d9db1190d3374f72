"""``export_events``: write the events a filter selects to a CSV or JSON Lines file.

The path is one the user picked (in the window, through the native "Save as" dialog; in the
browser the file is downloaded instead, see ``host.http_ui``); scripts pass it directly. It must
be absolute (no ``..`` component, no NUL byte) in an existing directory, and **no symbolic link
is followed anywhere in it**: the directories are opened one by one with ``O_NOFOLLOW``, so a
link in a parent directory is refused like a link at the file itself. Directories and special
files (devices, pipes, ``/proc`` entries) are refused.

The rows go to a temporary file beside the target, which is flushed to disk and then moved into
place in one step: without ``overwrite`` by a hard link that fails if the name exists (so a file
that appeared meanwhile is never replaced), with ``overwrite`` by an atomic rename. Until then
the existing file is untouched, so a failure (a full disk, a permission, a crash) never loses
it; the temporary file is removed. OS errors become typed errors naming ``path``:
``storage_full`` (ENOSPC, EDQUOT), ``permission_denied`` (EACCES, EPERM, EROFS), ``conflict``
(the name exists), ``validation_error`` (a link, a missing directory, a name too long...).

The rows are those of ``queries.iter_events`` (the UI's event shape), in id order, up to the
newest event stored when the export starts; reads page through the pool, so ingest goes on
meanwhile.

Any sender on the network can put text into an event (``raw_data``, ``description``,
``error_message``), and a spreadsheet runs a cell starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return as a formula. So in CSV such a text cell gets a leading apostrophe
(OWASP's advice; spreadsheets show the text as it was). JSON Lines keeps every value exact.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import secrets
import stat
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

from pydantic import StringConstraints

from restrike.host.commands import runs_as_job
from restrike.host.errors import (
    CommandError,
    Conflict,
    InvalidArgument,
    PermissionDenied,
    StorageFull,
)

from .running import service_of

if TYPE_CHECKING:
    from restrike.host.app import App

    from .service import DatabaseService
from .queries import EventFilters, iter_events

COLUMNS = ("id", "timestamp", "session_id", "match_id", "round", "time", "type", "event_code",
           "athlete", "is_valid", "error_message", "description", "raw_data")
"""The CSV header, in order (JSON Lines objects have the same keys)."""

FilePath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_NEW_FILE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                   | getattr(os, "O_CLOEXEC", 0))
EXISTS = "the file exists; pass overwrite=true to replace it"

# errno -> (typed error, reason). A table, so every OS error an export can meet has one answer.
_OS_ERRORS: dict[int, tuple[type[CommandError], str]] = {
    # StorageFull's message starts "The disk is full: "; these say what was not done
    errno.ENOSPC: (StorageFull, "the export was not written (an existing file is unchanged)"),
    errno.EDQUOT: (StorageFull, "the disk quota is used up; the export was not written"),
    errno.EFBIG: (StorageFull, "the file is larger than the file system allows: not written"),
    errno.EACCES: (PermissionDenied, "writing there is not permitted"),
    errno.EPERM: (PermissionDenied, "writing there is not permitted"),
    errno.EROFS: (PermissionDenied, "the file system is read-only"),
    errno.EEXIST: (Conflict, EXISTS),
    errno.ELOOP: (InvalidArgument, "path contains a symbolic link; links are never followed"),
    errno.ENOTDIR: (InvalidArgument, "a directory in path is not a directory"),
    errno.ENOENT: (InvalidArgument, "the directory does not exist"),
    errno.ENAMETOOLONG: (InvalidArgument, "a name in path is too long"),
    errno.EISDIR: (InvalidArgument, "path is a directory"),
}


def os_error(exc: OSError) -> CommandError:
    """The typed error (field ``path``) for an OS error met while exporting."""
    unknown = f"the file could not be written: {exc.strerror or 'error'}"
    kind, reason = _OS_ERRORS.get(exc.errno or 0, (CommandError, unknown))
    return kind(reason, field="path")


def _split(path: str) -> tuple[tuple[str, ...], str]:
    """The directories (from the root) and the file name of ``path``; ``InvalidArgument`` if the
    text is not an absolute path to a file (see the module docstring)."""
    if "\x00" in path:
        raise InvalidArgument("path must not contain a NUL byte", field="path")
    target = PurePosixPath(path)
    if not target.is_absolute():
        raise InvalidArgument(f"path must be absolute, got {path!r}", field="path")
    if ".." in target.parts:
        raise InvalidArgument(f"path must not contain '..' components, got {path!r}",
                              field="path")
    if path.endswith("/") or target.name in ("", ".", ".."):
        raise InvalidArgument("path must name a file", field="path")
    return target.parent.parts[1:], target.name


@contextmanager
def _directory(parts: tuple[str, ...]):
    """An fd of the directory ``/parts...``, opened one component at a time without following
    a symbolic link (a link → ``ELOOP``), so the directory the file lands in is the one named."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR and _is_link(part, fd):
                    exc.errno = errno.ELOOP  # O_DIRECTORY can win over O_NOFOLLOW
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _check_existing(name: str, dir_fd: int, overwrite: bool) -> None:
    """Refuse a link, a directory or a special file at the target; an existing regular file is
    a ``Conflict`` unless ``overwrite``."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise InvalidArgument("path is a symbolic link; it is not followed", field="path")
    if stat.S_ISDIR(mode):
        raise InvalidArgument("path is a directory", field="path")
    if not stat.S_ISREG(mode):
        raise InvalidArgument("path is a special file (device, pipe, socket), not a file",
                              field="path")
    if not overwrite:
        raise Conflict(EXISTS, field="path")


def _place(temp: str, name: str, dir_fd: int, overwrite: bool) -> None:
    """Move the finished temporary file to ``name`` in one step (see the module docstring)."""
    if overwrite:
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    try:
        os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        # A file system without hard links (FAT on a USB stick): check, then rename.
        _check_existing(name, dir_fd, overwrite=False)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    else:
        os.unlink(temp, dir_fd=dir_fd)


def _write_rows(out, pool, filters: EventFilters, fmt: str) -> int:
    rows = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for event in iter_events(pool, filters):
            writer.writerow([csv_cell(event[c]) for c in COLUMNS])
            rows += 1
    else:
        for event in iter_events(pool, filters):
            out.write(json.dumps({c: event[c] for c in COLUMNS}, ensure_ascii=False))
            out.write("\n")
            rows += 1
    return rows


def export(pool, filters: EventFilters, fmt: str, path: str, overwrite: bool) -> int:
    """Write the selected events to the file ``path``; returns the number of rows written.

    Raises the typed errors of the module docstring; on any failure the target is as before.
    """
    def write(binary: BinaryIO) -> int:
        out = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        rows = _write_rows(out, pool, filters, fmt)
        out.flush()
        out.detach()  # write_file closes the file, after its fsync
        return rows

    return write_file(path, overwrite, write)


def write_file(path: str, overwrite: bool, write: Callable[[BinaryIO], int]) -> int:
    """Write a file at ``path`` the safe way of the module docstring: ``write(binary file)``
    fills a temporary file beside the target (returning what it counted), which is then moved
    into place. Raises the typed errors of the module docstring; on any failure the target is
    as before. Every file restrike writes where the operator chose goes through here."""
    parts, name = _split(path)
    try:
        with _directory(parts) as dir_fd:
            _check_existing(name, dir_fd, overwrite)
            temp = f".restrike-export-{secrets.token_hex(6)}.part"
            fd = os.open(temp, _NEW_FILE_FLAGS, 0o644, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as out:
                    rows = write(out)
                    out.flush()
                    os.fsync(out.fileno())
                _place(temp, name, dir_fd, overwrite)
            except BaseException:
                try:
                    os.unlink(temp, dir_fd=dir_fd)
                except OSError:
                    pass  # already moved into place, or the directory went away
                raise
            os.fsync(dir_fd)  # the rename itself survives a power cut
    except OSError as exc:
        raise os_error(exc) from None
    except ValueError as exc:  # a name the OS cannot encode
        raise InvalidArgument(f"path cannot be used: {exc}", field="path") from None
    return rows


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell a spreadsheet shows as text, never runs (see the module docstring)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def commands(app: App) -> dict[str, Callable[..., Any]]:
    """The export command, bound to the running service."""

    def get_service() -> DatabaseService:
        return service_of(app)


    @runs_as_job  # a long read: one at a time, off the quick pool (host/jobs.py)
    def export_events(filters: EventFilters | None, format: Literal["csv", "jsonl"],  # noqa: A002
                      path: FilePath, overwrite: bool = False) -> dict:
        """Write the events ``filters`` selects (cursor, limit and order ignored: all of them,
        oldest first) to the file ``path`` as ``csv`` or ``jsonl``; returns ``{path, rows}``.

        ``path`` must be absolute in an existing directory, without ``..`` components, NUL
        bytes or any symbolic link (in the file name or any directory above it); directories
        and special files are refused. The file is written beside the target and moved into
        place when complete: an existing file is a ``conflict`` unless ``overwrite`` is true,
        and is never lost when the export fails. OS errors are typed: ``storage_full`` (disk
        or quota full), ``permission_denied``, ``conflict``, ``validation_error``; all name
        ``path``. CSV text cells that a spreadsheet would run as a formula start with an
        apostrophe; JSON Lines values are exact.
        """
        rows = export(get_service().pool, filters or EventFilters(), format, path, overwrite)
        return {"path": path, "rows": rows}

    return {"export_events": export_events}
