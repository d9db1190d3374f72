"""A real, small tmpfs for tests that need a full disk or a read-only file system (root on
Linux only; elsewhere the test is skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(mount_point: Path, options: str = "size=1m"):
    """Mount a tmpfs with ``options`` (``mount -o``) on ``mount_point`` (created), unmount at
    the end; skips the test where it cannot be mounted."""
    if not (sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("mount")):
        pytest.skip("needs root on Linux to mount a tmpfs")
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


class SmallFs:
    """A mounted tmpfs at ``path`` that a test fills, then grows: space returns."""

    def __init__(self, path: Path):
        self.path = path

    def grow(self) -> None:
        """Give the file system 64 MiB: space returns."""
        subprocess.run(["mount", "-o", "remount,size=64m", str(self.path)], check=True)


def fill(mount_point: Path) -> None:
    """Use up every free byte of the file system at ``mount_point``."""
    with open(mount_point / "filler", "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: full
