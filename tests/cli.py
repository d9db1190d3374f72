"""The real ``restrike`` command line as a subprocess: to its end (``run_cli``, and
``assert_one_line`` for a refusal), or ``--headless`` until its HTTP server answers
(``start_headless``)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.conftest import REPO, free_port, wait_for

TOKEN = "test-token-123"


def start_headless(data_dir, *args: str, command=(sys.executable, "-m", "restrike"),
                   cwd=REPO) -> tuple[subprocess.Popen, str]:
    """``python -m restrike --headless`` (or ``command``) on ``data_dir`` with ``args``; returns
    it and its URL once its HTTP server answers."""
    http_port = free_port()
    proc = subprocess.Popen(
        [*map(str, command), "--headless", "--data-dir", str(data_dir), *args,
         "--http-port", str(http_port), "--token", TOKEN],
        cwd=cwd, env=dict(os.environ, RESTRIKE_LOAD_PLUGINS=""),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{http_port}"

    def up():
        assert proc.poll() is None, proc.stdout.read()
        try:
            return httpx.get(f"{base}/api/events", timeout=0.2).status_code == 401
        except httpx.HTTPError:
            return False

    wait_for(up, 30, 0.1, "the HTTP server")
    return proc, base


def stop(proc: subprocess.Popen) -> None:
    """Kill ``proc`` (if it still runs) and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m restrike ARGS`` to its end (no plugins but the built-in ones)."""
    return subprocess.run([sys.executable, "-m", "restrike", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, RESTRIKE_LOAD_PLUGINS=""))


def assert_one_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    """The command refused in one line on stderr (exit 2, no traceback) holding every one of
    ``expected``; returns that line."""
    lines = done.stderr.splitlines()
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
