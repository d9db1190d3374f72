"""Database helpers of the archive tests, and the subprocess the crash test kills.

As a script: ``python archive_worker.py DB_PATH archive|restore [CHUNK [PAUSE]]`` opens the file
like the writer does, runs one archive operation over every event, prints ``STARTED <total>`` on
its first progress report (the transaction has begun), ``PROGRESS <done> <total>`` after each
chunk and ``DONE <n>`` after the commit, flushing each line. With ``PAUSE`` (a number of events
moved, or ``done``) it stops there - inside the transaction, in the progress report of that many
events, or after the commit - prints ``PAUSED <done>`` and waits to be killed: the test's
SIGKILL lands at exactly that point, whatever the machine's speed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import threading
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from restrike.plugins.plugin_database import archive
from restrike.plugins.plugin_database.maintenance import connect_writer
from restrike.plugins.plugin_database.migrations import apply_migrations

NOW = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)
"""The archive tests' fixed "now" (cutoffs are counted back from it)."""
BASE_EPOCH = 1_790_000_000  # 2026-09-21T14:13:20Z: fixed, so tests do not depend on today
DETAILS_PER_EVENT = 2


def open_writer(path: str | Path) -> sqlite3.Connection:
    """The app's writing connection (autocommit, WAL, foreign keys on)."""
    return connect_writer(str(path))


def create_database(path: str | Path) -> sqlite3.Connection:
    """A new file at the current schema (the real migrations); returns the writer connection."""
    conn = open_writer(path)
    apply_migrations(conn)
    return conn


def event_type_id(conn: sqlite3.Connection, code: str = "pt1") -> int:
    """The ``pss_event_types`` id of a wire code (seeded by the migrations)."""
    return conn.execute("SELECT id FROM pss_event_types WHERE code = ?", (code,)).fetchone()[0]


def add_event(conn: sqlite3.Connection, created_at: str, details: dict | None = None,
              raw: str | None = None) -> int:
    """One event with every column set and its details, as the writer would store them."""
    cur = conn.execute(
        "INSERT INTO pss_events_v2 (session_id, match_id, round_id, event_type_id, timestamp, "
        "raw_data, parsed_data, event_sequence, processing_time_ms, is_valid, error_message, "
        "created_at, tournament_id, tournament_day_id, recognition_status, protocol_version, "
        "parser_confidence, validation_errors) "
        "VALUES (NULL, NULL, 2, ?, ?, ?, ?, 7, 0.25, 1, NULL, ?, NULL, NULL, 'recognized', '2.3', "
        "0.98, '[]') RETURNING id",
        (event_type_id(conn), created_at, raw or f"pt1;3;at {created_at}",
         '{"type": "points", "points": 3}', created_at),
    )
    event_id = cur.fetchone()[0]
    for key, value in (details if details is not None else {"athlete": 1, "points": 3}).items():
        kind = {int: "int", float: "float", str: "str", bool: "bool"}[type(value)]
        conn.execute(
            "INSERT INTO pss_event_details (event_id, detail_key, detail_value, detail_type, "
            "created_at) VALUES (?, ?, ?, ?, ?)",
            (event_id, key, str(value), kind, created_at),
        )
    return event_id


def rows(conn: sqlite3.Connection, table: str) -> dict:
    """Every row of ``table`` by its identity: event id, or (event_id, detail_key) for details."""
    cur = conn.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cur.description]
    out = {}
    for row in cur.fetchall():
        record = dict(zip(names, row, strict=True))
        key = record["id"] if "id" in record else (record["event_id"], record["detail_key"])
        out[key] = record
    return out


def fill_events(
    conn: sqlite3.Connection,
    n: int,
    *,
    start_epoch: int = BASE_EPOCH,
    step_seconds: int = 1,
    details: int = DETAILS_PER_EVENT,
    raw_size: int = 40,
) -> None:
    """Insert ``n`` events one ``step_seconds`` apart from ``start_epoch`` (created_at), each with
    ``details`` details stored next to their event as the writer stores them, in one SQL
    statement per table (fast enough for 10^6 rows)."""
    type_id = event_type_id(conn)
    conn.execute("BEGIN IMMEDIATE")
    first_id = conn.execute("SELECT coalesce(max(id), 0) FROM pss_events_v2").fetchone()[0]
    conn.execute(
        """
        WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?)
        INSERT INTO pss_events_v2 (event_type_id, timestamp, raw_data, parsed_data,
            event_sequence, processing_time_ms, is_valid, created_at, recognition_status,
            protocol_version, parser_confidence)
        SELECT ?, t, 'pt1;' || i || ';' || substr(hex(randomblob(?)), 1, ?),
               json_object('type', 'points', 'i', i), i, (i % 97) / 10.0, (i % 50) != 0, t,
               'recognized', '2.3', 1.0
        FROM (SELECT i, printf('%s.%06dZ', strftime('%Y-%m-%dT%H:%M:%S', ? + i * ?, 'unixepoch'),
                               (i * 7919) % 1000000) AS t FROM seq)
        """,
        (n, type_id, raw_size, raw_size, start_epoch, step_seconds),
    )
    if details:
        conn.execute(
            """
            WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j + 1 < ?)
            INSERT INTO pss_event_details (event_id, detail_key, detail_value, detail_type,
                created_at)
            SELECT e.id, 'key' || k.j, CAST(e.id * 10 + k.j AS TEXT), 'int', e.created_at
            FROM pss_events_v2 AS e, k
            WHERE e.id > ?
            ORDER BY e.id, k.j
            """,
            (details, first_id),
        )
    conn.execute("COMMIT")


def main(argv: list[str]) -> int:
    path, op = argv[0], argv[1]
    chunk = int(argv[2]) if len(argv) > 2 else archive.CHUNK_EVENTS
    pause = argv[3] if len(argv) > 3 else None
    conn = open_writer(path)
    started = False

    def wait_to_be_killed(done: int) -> None:
        print(f"PAUSED {done}", flush=True)
        threading.Event().wait()

    def progress(_op: str, done: int, total: int) -> None:
        nonlocal started
        if not started:
            started = True
            print(f"STARTED {total}", flush=True)
        print(f"PROGRESS {done} {total}", flush=True)
        if pause is not None and pause != "done" and done == int(pause):
            wait_to_be_killed(done)

    if op == "archive":
        n = archive.archive_old_events(conn, 0, now="2999-01-01T00:00:00Z", progress=progress,
                                       chunk=chunk)
    elif op == "restore":
        n = archive.restore_from_archive(conn, "1970-01-01", "2999-12-31", progress=progress,
                                         chunk=chunk)
    else:
        raise SystemExit(f"unknown operation {op!r}")
    print(f"DONE {n}", flush=True)
    if pause == "done":
        wait_to_be_killed(n)
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
