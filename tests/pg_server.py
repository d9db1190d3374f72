"""A throwaway PostgreSQL server for the tests (and benchmarks): Debian's ``postgresql``
package, ``initdb`` + ``pg_ctl`` in a temp dir, a free port, stopped at the end. Never a mock.

The server refuses to run as root, so its commands run as the ``postgres`` user the package
creates (``runuser``) when the tests run as root; ``-k DIR`` keeps its socket out of
/var/run/postgresql; ``fsync=off`` is for tests only (a crash of the machine is not tested).
``PgServer.database()`` is a fresh database per test: a copy of a template that was migrated
once (``CREATE DATABASE ... TEMPLATE``, a file copy, milliseconds).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def server_bindir() -> Path | None:
    """Where the server binaries are (``pg_config --bindir``; else Debian's newest
    ``/usr/lib/postgresql/N/bin``), None when not installed."""
    candidates = []
    try:
        candidates.append(Path(subprocess.run(["pg_config", "--bindir"], capture_output=True,
                                              text=True, check=True).stdout.strip()))
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(*cmd, check: bool = True) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *map(str, cmd)], check=check, capture_output=True,
                          text=True)


class PgServer:
    """One running cluster: ``url(dbname)``, ``database()`` (a fresh copy of the template),
    ``stop(mode)``/``start()`` (an outage: ``stop("immediate")`` is a crash to the clients)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="restrike-pg-"))
        os.chmod(self.root, 0o777)
        self.data = self.root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                      "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                      "-c max_connections=200")
        _as_server_user(bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8", "--locale=C")
        self.start()
        self.template: str | None = None

    def _ctl(self, *args) -> subprocess.CompletedProcess:
        return _as_server_user(self.bindir / "pg_ctl", "-D", self.data, "-w", *args)

    def start(self) -> None:
        self._ctl("-l", self.root / "log", "-o", self._opts, "start")

    def ensure_running(self) -> None:
        """Start it again unless it runs (after an outage test, whatever happened in it)."""
        if _as_server_user(self.bindir / "pg_ctl", "-D", self.data, "status",
                           check=False).returncode != 0:
            self.start()

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def database(self) -> str:
        """The URL of a new database: a copy of ``template`` when set, else empty."""
        name = f"t_{next(self._names)}"
        template = f" TEMPLATE {self.template}" if self.template else ""
        self.admin(f"CREATE DATABASE {name}{template}")
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database of ``url`` (made by ``database()``), closing what still uses it."""
        self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def close(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
                       + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


class ServerMissing(RuntimeError):
    """The PostgreSQL server is not installed."""


def start_server(crash_safe: bool = False) -> PgServer:
    """A new throwaway server; ``crash_safe``: what it acknowledged survives its crash
    (``stop("immediate")``), as on a real server - the test cluster's ``synchronous_commit=off``
    would take it back (a role's setting wins over the server's)."""
    bindir = server_bindir()
    if bindir is None:
        raise ServerMissing("the PostgreSQL server is not installed (Debian: apt-get install "
                            "postgresql; make test installs it)")
    server = PgServer(bindir)
    if crash_safe:
        try:
            server.admin("ALTER ROLE postgres SET synchronous_commit = on")
        except BaseException:
            server.close()
            raise
    return server
