"""SIGKILL in the middle of an archive or a restore leaves a consistent database.

A subprocess (``archive_worker.py``) moves every event of a real file and stops at a point the
test chose - after a (seeded) random number of chunks inside the transaction, after the last
chunk just before COMMIT, or just after COMMIT - and says so (``PAUSED``); the test waits for that
line and kills it with SIGKILL, so the kill lands exactly there on any machine. Then:
``PRAGMA integrity_check`` is ok, every event is in
exactly one of ``pss_events_v2`` / ``pss_events_v2_archive`` with all its details beside it and
its values unchanged, and the operation happened all or nothing.

Sizes: ``RESTRIKE_CRASH_EVENTS`` (default 50 000 events, 2 details each; the issue's 200 000
pass too, in about a minute), ``RESTRIKE_CRASH_CHUNK`` (default 2 500 events per chunk),
``RESTRIKE_CRASH_SEED`` (default random; printed in every failure message).
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.database import archive_worker as helpers

HERE = Path(__file__).resolve().parent

N_EVENTS = int(os.environ.get("RESTRIKE_CRASH_EVENTS", "50000"))
CHUNK = int(os.environ.get("RESTRIKE_CRASH_CHUNK", "2500"))
SEED = int(os.environ.get("RESTRIKE_CRASH_SEED", str(random.SystemRandom().randrange(10**9))))
LINE_TIMEOUT = 120.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]


def same_rows_as(conn: sqlite3.Connection, source: Path) -> bool:
    """True if main + archive tables hold exactly the events and details of ``source``'s main
    tables (same ids and values): equal counts and no source row missing."""
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    try:
        for main, arch in (("pss_events_v2", "pss_events_v2_archive"),
                           ("pss_event_details", "pss_event_details_archive")):
            union = f"SELECT * FROM main.{main} UNION ALL SELECT * FROM main.{arch}"
            ours = conn.execute(f"SELECT count(*) FROM ({union})").fetchone()[0]
            theirs = conn.execute(f"SELECT count(*) FROM src.{main}").fetchone()[0]
            missing = conn.execute(
                f"SELECT count(*) FROM (SELECT * FROM src.{main} EXCEPT SELECT * FROM ({union}))"
            ).fetchone()[0]
            if ours != theirs or missing:
                return False
        return True
    finally:
        conn.execute("DETACH DATABASE src")


class Worker:
    """The archive subprocess, its stdout lines read by a thread into a queue."""

    def __init__(self, path: Path, op: str, pause: str | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "archive_worker.py"), str(path), op, str(CHUNK),
             *([pause] if pause is not None else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self) -> str:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(
                f"worker silent for {LINE_TIMEOUT} s; saw {self.seen[-3:]}") from None
        if line is None:
            self.proc.wait(10)
            raise AssertionError(
                f"worker ended (rc {self.proc.returncode}) after {self.seen[-3:]}: "
                f"{self.proc.stderr.read()[-2000:]}"
            )
        self.seen.append(line)
        return line

    def wait_for(self, prefix: str) -> str:
        while True:
            line = self.next_line()
            if line.startswith(prefix):
                return line

    def kill(self) -> bool:
        """SIGKILL now; True if the worker had not finished (no ``DONE`` line yet)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc.stderr.close()
        while True:
            try:
                line = self.lines.get(timeout=10)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return not any(line.startswith("DONE") for line in self.seen)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A file with every event in the main table, and the same after one complete archive."""
    root = tmp_path_factory.mktemp("crash")
    fresh = root / "fresh.db"
    conn = helpers.create_database(fresh)
    helpers.fill_events(conn, N_EVENTS)
    conn.close()

    archived = root / "archived.db"
    shutil.copy(fresh, archived)
    worker = Worker(archived, "archive")
    assert worker.wait_for("DONE") == f"DONE {N_EVENTS}"
    assert worker.proc.wait(60) == 0
    worker.proc.stderr.close()
    return {"archive": fresh, "restore": archived, "root": root}


def check_consistent(path: Path, fresh: Path, op: str, context: str) -> str:
    """Assert the invariants after a kill; returns which state the operation left."""
    conn = sqlite3.connect(path)  # recovers the WAL of the killed writer
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], context
        main = conn.execute("SELECT count(*) FROM pss_events_v2").fetchone()[0]
        arch = conn.execute("SELECT count(*) FROM pss_events_v2_archive").fetchone()[0]
        both = conn.execute(
            "SELECT count(*) FROM pss_events_v2 AS m JOIN pss_events_v2_archive AS a USING (id)"
        ).fetchone()[0]
        assert both == 0, f"{context}: {both} events in both tables"
        assert main + arch == N_EVENTS, f"{context}: {main} + {arch} events"
        for events, details in (("pss_events_v2", "pss_event_details"),
                                ("pss_events_v2_archive", "pss_event_details_archive")):
            stray = conn.execute(
                f"SELECT count(*) FROM {details} AS d LEFT JOIN {events} AS e ON e.id = d.event_id"
                " WHERE e.id IS NULL"
            ).fetchone()[0]
            assert stray == 0, f"{context}: {stray} rows of {details} away from their event"
            n_events = conn.execute(f"SELECT count(*) FROM {events}").fetchone()[0]
            n_details = conn.execute(f"SELECT count(*) FROM {details}").fetchone()[0]
            assert n_details == helpers.DETAILS_PER_EVENT * n_events, context
        assert same_rows_as(conn, fresh), f"{context}: rows differ from the original ones"
    finally:
        conn.close()
    # All or nothing: the operation either never happened or happened whole.
    source_count = main if op == "archive" else arch
    assert source_count in (0, N_EVENTS), f"{context}: partial {op}: {main} main / {arch} archive"
    return "before" if source_count == N_EVENTS else "after"


@pytest.mark.parametrize("op", ["archive", "restore"])
@pytest.mark.parametrize("moment", ["chunk", "commit", "committed"])
def test_sigkill_mid_operation_leaves_every_event_in_exactly_one_table(bases, op, moment):
    rng = random.Random(f"{SEED}-{op}-{moment}")
    path = bases["root"] / f"{op}-{moment}.db"
    shutil.copy(bases[op], path)
    chunks = -(-N_EVENTS // CHUNK)
    # where the worker stops: after a random number of chunks (none up to all but the last),
    # after the last one (COMMIT comes next), or after the COMMIT
    pause = {"chunk": str(rng.randrange(chunks) * CHUNK), "commit": str(N_EVENTS),
             "committed": "done"}[moment]
    worker = Worker(path, op, pause)
    assert worker.wait_for("STARTED") == f"STARTED {N_EVENTS}"
    paused = worker.wait_for("PAUSED")
    unfinished = worker.kill()
    context = f"seed {SEED}, {op} killed at {moment}: {paused!r}"
    assert unfinished == (moment != "committed"), context
    assert paused == f"PAUSED {N_EVENTS if moment != 'chunk' else pause}", context
    state = check_consistent(path, bases["archive"], op, context)
    assert state == ("after" if moment == "committed" else "before"), (
        f"{context}: the database is {state} the {op}")


def test_complete_archive_run_moved_everything(bases):
    conn = sqlite3.connect(bases["restore"])
    try:
        assert conn.execute("SELECT count(*) FROM pss_events_v2").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pss_events_v2_archive").fetchone()[0] == N_EVENTS
        assert same_rows_as(conn, bases["archive"])
    finally:
        conn.close()
