"""``export_events``: write the events a filter selects to a CSV or JSON Lines file.

The path is one the user picked: it must be absolute (no ``..`` component, no NUL byte), its
directory must exist, an existing file is replaced only with ``overwrite=True``, and a symbolic
link is never followed (the file is opened with ``O_NOFOLLOW``; an existing link is refused).
The rows are those of ``queries.iter_events`` (the UI's event shape), in id order, up to the
newest event stored when the export starts; reads page through the pool, so ingest goes on
meanwhile. A failed export removes the file it was writing.

Any sender on the network can put text into an event (``raw_data``, ``description``,
``error_message``), and a spreadsheet runs a cell starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return as a formula. So in CSV such a text cell gets a leading apostrophe
(OWASP's advice; spreadsheets show the text as it was). JSON Lines keeps every value exact.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import StringConstraints

from restrike.host.errors import Conflict, InvalidArgument

from .queries import EventFilters, iter_events

COLUMNS = ("id", "timestamp", "session_id", "match_id", "round", "time", "type", "event_code",
           "athlete", "is_valid", "error_message", "description", "raw_data")
"""The CSV header, in order (JSON Lines objects have the same keys)."""

FilePath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def check_target(path: str, overwrite: bool) -> Path:
    """Validate the export path; ``InvalidArgument``/``Conflict`` naming ``path`` if unfit.

    Refused: a relative path, a NUL byte, any ``..`` component (the user picks the file itself,
    so a path that climbs out of a directory is crafted, not chosen), a missing directory, a name
    the file system refuses (too long...), a symbolic link, anything but a regular file; an
    existing file without ``overwrite`` is a ``Conflict``.
    """
    if "\x00" in path:
        raise InvalidArgument("path must not contain a NUL byte", field="path")
    target = Path(path)
    if not target.is_absolute():
        raise InvalidArgument(f"path must be absolute, got {path!r}", field="path")
    if ".." in target.parts:
        raise InvalidArgument(f"path must not contain '..' components, got {path!r}",
                              field="path")
    if target.name in ("", ".", ".."):
        raise InvalidArgument("path must name a file", field="path")
    try:
        if not target.parent.is_dir():
            raise InvalidArgument(f"directory {str(target.parent)!r} does not exist",
                                  field="path")
        info = target.lstat()
    except FileNotFoundError:
        return target
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, a name the OS cannot encode
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidArgument(f"path cannot be used: {reason}", field="path") from None
    if stat.S_ISLNK(info.st_mode):
        raise InvalidArgument("path is a symbolic link; it is not followed", field="path")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidArgument("path exists and is not a regular file", field="path")
    if not overwrite:
        raise Conflict("the file exists; pass overwrite=true to replace it", field="path")
    return target


def export(pool, filters: EventFilters, fmt: str, target: Path, overwrite: bool) -> int:
    """Write the selected events to ``target``; returns the number of rows written."""
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _BINARY
    flags |= os.O_TRUNC if overwrite else os.O_EXCL
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise Conflict("the file exists; pass overwrite=true to replace it",
                       field="path") from None
    except OSError as exc:  # ELOOP: a link appeared since the check; EACCES...
        raise InvalidArgument(f"cannot create the file: {exc.strerror}", field="path") from None
    rows = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            if fmt == "csv":
                writer = csv.writer(out)
                writer.writerow(COLUMNS)
                for event in iter_events(pool, filters):
                    writer.writerow([_cell(event[c]) for c in COLUMNS])
                    rows += 1
            else:
                for event in iter_events(pool, filters):
                    out.write(json.dumps({c: event[c] for c in COLUMNS}, ensure_ascii=False))
                    out.write("\n")
                    rows += 1
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return rows


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """A CSV cell a spreadsheet shows as text, never runs (see the module docstring)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def commands(get_service: Callable) -> dict[str, Callable]:
    """The export command, bound to the running service."""

    def export_events(filters: EventFilters | None, format: Literal["csv", "jsonl"],  # noqa: A002
                      path: FilePath, overwrite: bool = False) -> dict:
        """Write the events ``filters`` selects (cursor, limit and order ignored: all of them,
        oldest first) to the file ``path`` as ``csv`` or ``jsonl``; returns ``{path, rows}``.

        ``path`` must be absolute in an existing directory, without ``..`` components or NUL
        bytes; an existing file is a ``conflict`` unless ``overwrite`` is true; a symbolic link
        is refused. CSV text cells that a spreadsheet would run as a formula start with an
        apostrophe; JSON Lines values are exact.
        """
        target = check_target(path, overwrite)
        rows = export(get_service().pool, filters or EventFilters(), format, target, overwrite)
        return {"path": str(target), "rows": rows}

    return {"export_events": export_events}
