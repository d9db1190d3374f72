"""Benchmarks of archival and of the read pool, on real SQLite files with the real schema.

    .venv/bin/python bench/database_archive.py [EVENTS] [READERS ...]

defaults: 1 000 000 events (2 details each), readers 1, 10, 50. Targets (issue 4): archiving 1M
events in under 15 s, restoring them in under 15 s; the pool's checkout p99 with 50 concurrent
readers is reported. ``cpu s`` is this process's CPU time: on a machine busy with other work it
tells what the wall time would be on an idle one (the operations are single-threaded).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restrike.plugins.plugin_database import archive
from restrike.plugins.plugin_database.maintenance import connect_writer
from restrike.plugins.plugin_database.migrations import apply_migrations
from restrike.plugins.plugin_database.pool import ConnectionPool

TARGET_S_PER_MILLION = 15.0
DETAILS_PER_EVENT = 2
START_EPOCH = 1_700_000_000  # 2023-11-14: every event is "old"


def fill(conn, n: int, details: int = DETAILS_PER_EVENT) -> None:
    """``n`` events one second apart with ``details`` details each, stored next to their event
    as the writer stores them (one SQL statement per table)."""
    type_id = conn.execute("SELECT id FROM pss_event_types WHERE code = 'pt1'").fetchone()[0]
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        """
        WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?)
        INSERT INTO pss_events_v2 (event_type_id, timestamp, raw_data, parsed_data,
            event_sequence, processing_time_ms, is_valid, created_at, recognition_status,
            protocol_version, parser_confidence)
        SELECT ?, t, 'pt1;' || (i % 5), json_object('type', 'points', 'points', i % 5), i,
               0.05, 1, t, 'recognized', '2.3', 1.0
        FROM (SELECT i, printf('%s.%06dZ', strftime('%Y-%m-%dT%H:%M:%S', ? + i, 'unixepoch'),
                               i % 1000000) AS t FROM seq)
        """,
        (n, type_id, START_EPOCH),
    )
    conn.execute(
        """
        WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j + 1 < ?)
        INSERT INTO pss_event_details (event_id, detail_key, detail_value, detail_type, created_at)
        SELECT e.id, 'key' || k.j, CAST(e.id % 7 AS TEXT), 'int', e.created_at
        FROM pss_events_v2 AS e, k ORDER BY e.id, k.j
        """,
        (details,),
    )
    conn.execute("COMMIT")


def bench_archive(n_events: int) -> list[dict]:
    """Archive ``n_events`` events (all old), read the statistics, restore them all, purge
    them, optimize; one row per operation with its time and rate."""
    with tempfile.TemporaryDirectory(prefix="restrike-bench-") as tmp:
        path = os.path.join(tmp, "bench.db")
        conn = connect_writer(path)
        apply_migrations(conn)
        started, cpu = time.perf_counter(), time.process_time()
        fill(conn, n_events)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = [_row("fill (setup)", n_events, time.perf_counter() - started, None)]
        rows[0]["cpu"] = time.process_time() - cpu
        target = TARGET_S_PER_MILLION * n_events / 1_000_000

        def timed(name: str, fn, limit: float | None) -> object:
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            rows.append(_row(name, n_events, time.perf_counter() - t0, limit))
            rows[-1]["cpu"] = time.process_time() - c0
            return result

        moved = timed("archive_old_events", lambda: archive.archive_old_events(conn, 0), target)
        assert moved == n_events, moved
        stats = timed("get_archive_statistics", lambda: archive.get_archive_statistics(conn), None)
        rows[-1]["note"] = f"{stats['archive_size_bytes'] / 1e6:.0f} MB archive"
        restored = timed(
            "restore_from_archive",
            lambda: archive.restore_from_archive(conn, "1970-01-01", "2999-12-31"), target,
        )
        assert restored == n_events, restored
        archive.archive_old_events(conn, 0)
        deleted = timed("cleanup_old_archive_data",
                        lambda: archive.cleanup_old_archive_data(conn, 0), None)
        assert deleted == n_events, deleted
        size = os.path.getsize(path)
        timed("optimize_archive_tables", lambda: archive.optimize_archive_tables(conn), None)
        rows[-1]["note"] = f"file {size / 1e6:.1f} -> {os.path.getsize(path) / 1e6:.1f} MB"
        conn.close()
    return rows


def bench_pool(readers: int, checkouts_per_reader: int = 200, max_size: int = 10) -> list[dict]:
    """``readers`` threads each check out a connection ``checkouts_per_reader`` times and run a
    small indexed query; one row with checkout wait p50/p99/max and query throughput."""
    with tempfile.TemporaryDirectory(prefix="restrike-bench-") as tmp:
        path = os.path.join(tmp, "pool.db")
        conn = connect_writer(path)
        apply_migrations(conn)
        fill(conn, 20_000)
        conn.close()
        pool = ConnectionPool(path, max_size=max_size, timeout=30.0)
        waits: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(readers)

        def reader(index: int) -> None:
            local = []
            barrier.wait()
            for i in range(checkouts_per_reader):
                t0 = time.perf_counter()
                with pool.connection() as c:
                    local.append(time.perf_counter() - t0)
                    first = (index * 997 + i * 31) % 19_000 + 1
                    c.execute("SELECT * FROM pss_events_v2 WHERE id BETWEEN ? AND ?",
                              (first, first + 20)).fetchall()
            with lock:
                waits.extend(local)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        stats = pool.get_stats()
        pool.close()
    waits.sort()
    ms = [w * 1000 for w in waits]
    return [{
        "case": f"pool checkout, {readers} readers / {max_size} connections",
        "n": len(ms),
        "seconds": elapsed,
        "rate": len(ms) / elapsed,
        "p50_ms": ms[len(ms) // 2],
        "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max_ms": ms[-1],
        "target": "report",
        "ok": stats["timeouts"] == 0 and stats["created"] <= max_size,
        "note": f"waited {stats['wait_count']}, created {stats['created']}",
    }]


def _row(case: str, n: int, seconds: float, limit: float | None) -> dict:
    return {
        "case": case,
        "n": n,
        "seconds": seconds,
        "rate": n / seconds if seconds else float("inf"),
        "target": f"< {limit:.1f} s" if limit is not None else "",
        "ok": None if limit is None else seconds < limit,
        "note": "",
    }


def print_table(rows: list[dict]) -> None:
    """The rows as a fixed-width table on stdout."""
    print(f"{'case':<46} {'n':>9} {'seconds':>8} {'cpu s':>7} {'per s':>11} {'p50 ms':>7} "
          f"{'p99 ms':>7} "
          f"{'max ms':>7} {'target':>9} {'ok':>4}  note")
    for r in rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        extra = "".join(
            f" {r[k]:7.2f}" if k in r else f" {'':>7}" for k in ("p50_ms", "p99_ms", "max_ms")
        )
        cpu = f"{r['cpu']:7.2f}" if "cpu" in r else f"{'':>7}"
        print(f"{r['case']:<46} {r['n']:>9} {r['seconds']:8.2f} {cpu} {r['rate']:11.0f}{extra} "
              f"{r['target']:>9} {ok:>4}  {r.get('note', '')}")


def main(argv: list[str]) -> int:
    n_events = int(argv[0]) if argv else 1_000_000
    readers = [int(a) for a in argv[1:]] or [1, 10, 50]
    rows = bench_archive(n_events)
    for count in readers:
        rows += bench_pool(count)
    print_table(rows)
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
