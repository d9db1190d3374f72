"""One running instance per data directory: an exclusive ``flock`` on ``<data dir>/restrike.lock``.

Two instances on one data dir would share the database and the saved settings: the second would
mark the first one's live UDP session interrupted at start-up. The lock is taken before anything
in the data dir is touched; the kernel releases it when the process ends, however it ends, so a
stale file after a crash never blocks the next start. The file holds the pid of the holder, for
the error message of the next one.

A refused instance writes nothing: an existing lock file is opened read-only to probe it (flock
does not need write access), and only the holder writes its pid.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_FILE = "restrike.lock"
_MAX_PID_BYTES = 32  # the file is ours; a larger one is not read beyond this


class DataDirInUse(RuntimeError):
    """Another process holds the data directory; the message names it and that process."""

    def __init__(self, data_dir: Path, pid: int | None):
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{data_dir} is in use by another restrike ({holder}); "
                         "one instance per data directory (use --data-dir for another)")
        self.data_dir, self.pid = data_dir, pid


class DataDirLock:
    """The held lock of one data directory; ``release()`` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        """Free the lock; safe to call twice. The file stays (removing it would race)."""
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1


def acquire(data_dir: Path) -> DataDirLock:
    """Lock ``data_dir`` (created if missing) for this process.

    Raises ``DataDirInUse`` when another process holds it, ``NotADirectoryError`` when the path
    is not a directory, and ``OSError`` when it cannot be created or the lock file opened.
    """
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(data_dir))
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # probe without writing
    except FileNotFoundError:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise DataDirInUse(data_dir, pid) from None
    except BaseException:
        os.close(fd)
        raise
    _write_pid(path)
    return DataDirLock(path, fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _MAX_PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _write_pid(path: Path) -> None:
    # A second descriptor: the lock belongs to the first one's open file, which stays open.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    finally:
        os.close(fd)
